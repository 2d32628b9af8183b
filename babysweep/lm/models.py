"""LLaMA and GPT-2 language models from the config's `model` section, saved in Hugging Face format.

    model = build_model(cfg.model, vocab_size=len(tok), seq_len=cfg.data.seq_len)   # cfg: core.config.RunConfig
    save_model(model, tok, "out/final")     # AutoModelForCausalLM / AutoTokenizer load it
    model, tok = load_model("out/final")
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from babysweep.core.atomic import replace_dir_durably
from babysweep.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, load_tokenizer
from babysweep.core.config import ModelConfig
from babysweep.core.errors import UserError


def build_model(model_cfg: ModelConfig, vocab_size: int, seq_len: int) -> PreTrainedModel:
    hidden = model_cfg.hidden
    ffn = model_cfg.ffn or 4 * hidden
    context = model_cfg.context or seq_len
    special = dict(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, tie_word_embeddings=model_cfg.tie_embeddings)
    if model_cfg.arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=ffn,
            num_hidden_layers=model_cfg.layers,
            num_attention_heads=model_cfg.heads,
            num_key_value_heads=model_cfg.kv_heads or model_cfg.heads,
            max_position_embeddings=context,
            attention_dropout=model_cfg.attention_dropout,
            **special,
        )
        cls = LlamaForCausalLM
    else:
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=context,
            n_embd=hidden,
            n_layer=model_cfg.layers,
            n_head=model_cfg.heads,
            n_inner=ffn,
            resid_pdrop=model_cfg.dropout,
            embd_pdrop=model_cfg.dropout,
            attn_pdrop=model_cfg.attention_dropout,
            **special,
        )
        cls = GPT2LMHeadModel
    config._attn_implementation = "sdpa"  # fused attention on CPU and GPU
    return cls(config)


def count_params(model: torch.nn.Module) -> int:
    """Trainable parameters, tied embeddings counted once."""
    return sum(p.numel() for p in model.parameters())


def save_model(model: PreTrainedModel, tokenizer, folder: str | Path) -> Path:
    """Write safetensors weights, config and tokenizer files; the folder appears complete or not at all."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in every trial's output
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        return replace_dir_durably(tmp, folder, "a trained model")  # flushed: finalists and students read it later
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_LAYER = re.compile(r"\.(?:layers|h|layer|blocks)\.(\d+)\.")


def _layers_fit(folder: Path) -> None:
    """Refuse a config.json whose layer count differs from the weights' before transformers builds the model:
    it allocates every layer the config names (100,000 layers of a small model: gigabytes and minutes)
    before it finds them missing. Compares the count with the layer indices in model.safetensors' header."""
    import json

    weights = folder / "model.safetensors"
    try:
        config = json.loads((folder / "config.json").read_text())
        layers = config.get("num_hidden_layers", config.get("n_layer"))
        with open(weights, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            names = json.loads(handle.read(size)) if 0 < size <= 100 << 20 else {}
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return  # no readable config or weights header: from_pretrained says what is wrong
    indices = {int(m.group(1)) for name in names if (m := _LAYER.search(name))} if isinstance(names, dict) else set()
    if indices and isinstance(layers, int) and not isinstance(layers, bool) and layers != max(indices) + 1:
        raise UserError(f"{folder}: its config.json names {layers} layers but {weights.name} holds {max(indices) + 1}; "
                        "the config belongs to another model.")


def load_model(folder: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer) from a saved folder, the model in eval mode on `device`. A folder that does not
    load, whose weights do not fit its config.json (another architecture, missing or reshaped tensors),
    or whose tokenizer has more tokens than the model's vocabulary is a UserError: never random weights."""
    from transformers.utils import logging as hf_logging

    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: is not a saved model folder (no config.json).")
    _layers_fit(folder)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its multi-line load report: the refusal below says it in one sentence
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
        if (folder / "tokenizer.json").is_file():
            tokenizer = load_tokenizer(folder)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - any failure to read a folder the user gave is about that folder
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"{folder}: cannot be loaded as a causal LM ({text}).") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    wrong = [*info.get("missing_keys", ()), *(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys", ()))]
    if wrong:
        raise UserError(f"{folder}: its weights do not fit its config.json ({len(wrong)} tensors missing or of another "
                        f"shape, e.g. {sorted(wrong)[0]}); is it another architecture's or a truncated checkpoint?")
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise UserError(f"{folder}: its tokenizer has {len(tokenizer)} tokens, more than the model's {vocab}; "
                        "the tokenizer files belong to another model.")
    return model.to(device).eval(), tokenizer


class RotaryTable(torch.nn.Module):
    """A LLaMA rotary module's cos and sin, computed once by that module for every position the model takes and then
    looked up in compiled code. The same numbers as computing them per call (its angles are one product per position).
    Why: under torch.compile, Inductor folds the cos and sin into each kernel that reads them, so every query and key
    element recomputes them, in the forward and the backward pass (about 6% of a compiled 2 x 64 LLaMA step). Eager
    calls (evaluation, which may read past the training length, as the BabyLM pipeline does) and longer compiled
    sequences go to the module itself."""

    def __init__(self, rotary: torch.nn.Module, positions: int):
        super().__init__()
        self.rotary = rotary
        ids = torch.arange(positions, device=rotary.inv_freq.device)[None]
        cos, sin = rotary(torch.empty(0, device=ids.device, dtype=torch.float32), ids)
        self.register_buffer("cos", cos[0], persistent=False)
        self.register_buffer("sin", sin[0], persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.compiler.is_compiling() and position_ids.size(-1) <= self.cos.size(0):
            return self.lookup(x, position_ids)
        return self.rotary(x, position_ids)

    def lookup(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[position_ids].to(x.dtype), self.sin[position_ids].to(x.dtype)


def tabulate_rotary(model: PreTrainedModel) -> bool:
    """Swap a LLaMA model's default rotary module for a RotaryTable (in place); True if it did. Other position
    schemes (GPT-2's learned positions, scaled rotary variants) are left as they are."""
    base = model.base_model
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None or isinstance(rotary, RotaryTable) or getattr(rotary, "rope_type", "default") != "default":
        return False
    base.rotary_emb = RotaryTable(rotary, model.config.max_position_embeddings)
    return True
