"""Language models (transformers LLaMA and GPT-2), their training objectives (CLM, MLM, distillation) and FLOPs."""
