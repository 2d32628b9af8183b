"""Metric names shared by the trainer, BLiMP, sweeps, tracking and reports (one place each)."""

EPOCH = "epoch"
STEP = "step"
TRAIN_LOSS = "train/loss"
EVAL_LOSS = "eval/loss"
EVAL_PPL = "eval/ppl"
TUNE_LOSS = "tune/loss"  # causal loss on the held-out slice of the training lines (data.tune_split)
TOKENS_PER_S = "train/tokens_per_s"
TOKENS_SEEN = "train/tokens_seen"  # tokens trained on so far, all epochs (MLM ones too), one per chunk position
FLOPS = "train/flops"  # training FLOPs so far, the teachers' forward passes included (babysweep/flops.py)
LR = "train/lr"  # the learning rate of the epoch's last optimiser step
ELAPSED_S = "time/elapsed_s"
PHASE = "antlm/phase_is_mlm"  # 1.0 in an MLM epoch, 0.0 in a CLM epoch
PARAMS = "model/params"
TRAIN_WORDS = "data/train_words"  # words in the training lines (the tuning slice left out): parameters per word
TRAIN_TOKENS = "data/train_tokens"  # tokens of those lines (one epoch, before chunking)

BLIMP_OVERALL = "blimp/overall"
BLIMP_FIELD_PREFIX = "blimp/field/"
BLIMP_PARADIGM_PREFIX = "blimp/paradigm/"
BLIMP_SUBSET_OVERALL = "blimp_subset/overall"  # per-epoch seeded subset


def numeric_metrics(result: dict) -> dict[str, float]:
    """The metrics of a reported result: a metric is a key containing "/" whose value is a number
    (Ray's own keys, like training_iteration, have none; booleans are not numbers here)."""
    return {k: float(v) for k, v in result.items() if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}


def blimp_field(field: str) -> str:
    return BLIMP_FIELD_PREFIX + field


def blimp_paradigm(paradigm: str) -> str:
    return BLIMP_PARADIGM_PREFIX + paradigm

# Not metrics: the trainer reports these with each epoch, and the sweep logs them as MLflow params
# (teacher_cache.Plan.params: distill.cache_mode, distill.cache_estimate_gb, distill.cache_reason).
CACHE_PARAMS = "distill.cache_"
