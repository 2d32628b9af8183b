"""The training config: every setting a trial can have, its type and its default, in one place.

A config is a plain nested dict with the sections below; `TrainConfig.model_validate(d)` fills
defaults and rejects unknown keys. Specs (spec/load.py) use the same schema, with distributions allowed
at any leaf. `flatten(cfg)` gives the dotted names used for MLflow params and reports.

    cfg = resolve({"model": {"arch": "gpt2"}, "train": {"epochs": 2}})   # -> dict with defaults
"""

from __future__ import annotations

from typing import Optional, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TokenizerConfig(_Section):
    vocab_size: int = Field(8000, ge=300)  # byte-level BPE; the 256 bytes + 4 specials come first
    min_frequency: int = Field(2, ge=1)


class DataConfig(_Section):
    train: str = "builtin"  # "builtin", a BabyLM folder (train_*/), a file or a glob
    dev: str = "builtin"  # "builtin", a folder (dev/), a file or a glob
    seq_len: int = Field(128, ge=8)  # tokens per training chunk (BabyLlama: 128)
    # Every training chunk begins with <s>, as evaluation reads a sentence (data/batches.py). Sweeps and
    # runs started before this existed keep false when they resume: their batches and caches stay theirs.
    chunk_bos: bool = True
    tokenizer: TokenizerConfig = TokenizerConfig()
    builtin_words: int = Field(250_000, ge=1000)  # built-in corpus size (train); dev is a tenth
    builtin_seed: int = 0  # the built-in grammar's seed: same seed and size, same text
    cache_dir: str | None = None  # token cache; default <project>/sweeps/.cache
    # Held-out tuning slice: this fraction of the training lines (chosen by a seeded hash of each line's
    # text, so a line and its duplicates fall on one side) is not trained on; tune/loss is measured on it,
    # so sweeps can select on data that dev loss and BLiMP, the reported numbers, never saw. 0 = off.
    tune_split: float = Field(0.0, ge=0.0, le=0.5)
    tune_seed: int = 0


class ModelConfig(_Section):
    arch: Literal["llama", "gpt2"] = "llama"
    layers: int = Field(4, ge=1)
    hidden: int = Field(128, ge=8)
    heads: int = Field(4, ge=1)
    kv_heads: int | None = Field(None, ge=1)  # LLaMA grouped-query attention; None = heads
    ffn: int | None = Field(None, ge=1)  # feed-forward width; None = 4 * hidden
    context: int | None = Field(None, ge=8)  # max positions; None = data.seq_len
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # residual/embedding dropout (GPT-2 only)
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    tie_embeddings: bool = True  # small models: tying saves vocab x hidden parameters

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.kv_heads is not None:
            if self.arch != "llama":
                raise ValueError("kv_heads exists only for arch: llama")
            if self.heads % self.kv_heads:
                raise ValueError(f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        return self


DEFAULT_ARCH = ModelConfig.model_fields["arch"].default  # a run that does not log model.arch has it


class TrainingConfig(_Section):
    """The `train` section: the training loop, its optimiser and schedule, seed, device and precision."""

    epochs: int = Field(4, ge=1)
    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1)  # optimiser step every N batches
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 = off
    seed: int = 0
    max_steps: int | None = Field(None, ge=1)  # stop early after this many optimiser steps (smoke runs)
    checkpoint_every: int = Field(0, ge=0)  # also checkpoint every N steps; 0 = once per epoch
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None = the trial's CPU allocation
    # Fused kernels, the same losses to float rounding (tests/test_trainer_speed.py): AdamW's fused step, and in fp32
    # causal-LM steps the output head and cross-entropy in row blocks (objectives.head_causal_lm_loss), with teachers
    # on the CPU the head and the distillation loss (objectives.head_distillation_loss; not top-k caches).
    fused: bool = True
    # torch.compile of the base model for causal-LM training steps of a full batch (an epoch's short last batch, MLM
    # phases, evaluation and teachers stay eager): the same losses to float rounding, fewer passes over memory. Each
    # new process compiles once (tens of seconds the first time on a machine, a few seconds from the on-disk cache,
    # <data.cache_dir>/inductor); docs/speed.md has the measured trade.
    compile: bool = False
    # BabyLM's intermediate checkpoints: model folders chck_1M ... chck_10M, chck_20M ... chck_100M, chck_200M ...
    # chck_1000M in the run folder, saved when the words trained on (train/words_seen) first reach each count.
    # babylm_checkpoint_unit: words per "M" (1,000,000; smaller only for tests on a tiny corpus).
    babylm_checkpoints: bool = False
    babylm_checkpoint_unit: int = Field(1_000_000, ge=1)


class DistillConfig(_Section):
    teachers: list[str] = []  # saved model folders; empty = no distillation
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the hard-label CE; 1 = no distillation
    temperature: float = Field(2.0, gt=0)
    ensemble: Literal["logits", "probs"] = "logits"  # BabyLlama averages raw logits
    kd_reduction: Literal["token", "babyllama"] = "token"  # babyllama: summed over positions
    # Teachers' outputs: computed once per (teachers, corpus, seq_len, seed, epoch) and read by every trial
    # (docs/teacher-cache.md). auto = exact when its estimate fits cache_budget_gb, else on the fly;
    # none = on the fly; topk:K = the K largest ensemble logits + a tail bucket (changes the objective).
    cache: str = "auto"
    # Disk for exact caches; older entries are evicted to stay under it. None: a quarter of what the cache could
    # use of the free disk, always leaving 5 GB free (disk.cache_budget).
    cache_budget_gb: Optional[float] = Field(None, gt=0)

    @model_validator(mode="after")
    def _cache_mode(self) -> "DistillConfig":
        mode, _, k = self.cache.partition(":")
        if not (self.cache in ("auto", "exact", "none") or (mode == "topk" and k.isdigit() and int(k) >= 1)):
            raise ValueError(f"cache {self.cache!r} is not auto, exact, none or topk:K (K a positive integer)")
        if mode == "topk" and self.ensemble != "logits":
            raise ValueError("cache topk:K needs ensemble: logits (the top K of averaged logits; probs has no single ranking)")
        return self


class AntLMConfig(_Section):
    schedule: str | None = None  # e.g. "4clm+16mlm+4clm"; None with mlm_ratio 0 = all CLM
    mlm_ratio: float = Field(0.0, ge=0, le=1)  # used when schedule is None
    mlm_probability: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_way(self) -> "AntLMConfig":
        if self.schedule is not None and self.mlm_ratio:
            raise ValueError("give either schedule or mlm_ratio, not both")
        return self


class EvalConfig(_Section):
    blimp: str = "builtin"  # "builtin", "none", a BLiMP jsonl folder or file
    blimp_pairs_per_paradigm: int = Field(0, ge=0)  # per-epoch seeded subset; 0 = only at the end
    # After the last epoch: "full" scores every pair (blimp/overall, blimp.json); "subset" scores only the
    # seeded subset again (blimp_subset/overall), for tuning trials that select on a loss anyway. Finalists
    # (studies/finalists.py) always run "full", so the report's BLiMP numbers are full BLiMP.
    blimp_final: Literal["full", "subset"] = "full"
    blimp_scorer: Literal["auto", "causal", "pll"] = "auto"  # auto: pll if the last phase was MLM
    rule: Literal["babylm", "lm-eval"] = "babylm"  # causal BLiMP rule: BabyLM 2025 pipeline's or lm-eval's (eval/blimp.py)
    batch_size: int = Field(64, ge=1)  # sentences per forward pass
    dev_batches: int | None = Field(None, ge=1)  # cap on dev batches per evaluation; None = all
    # BabyLM's zero-shot suite (eval/suite.py) after the last epoch: a folder in the layout of the pipeline's
    # evaluation_data/full_eval ($VARIABLES expanded as for eval.blimp); None = not scored. Logged as suite/<column>
    # and suite/macro. suite_on: finalists = only finalists score it (studies/finalists.py sets "all" for them),
    # all = every run of the spec (tuning trials too).
    suite: str | None = None
    suite_on: Literal["finalists", "all"] = "finalists"

    @model_validator(mode="after")
    def _subset_sized(self) -> "EvalConfig":
        if self.blimp_final == "subset" and not self.blimp_pairs_per_paradigm:
            raise ValueError("blimp_final subset needs blimp_pairs_per_paradigm above 0 (the subset's size)")
        return self


class RunConfig(_Section):
    """Everything one training run is: what a sweep's trial, a finalist or `babysweep train` runs."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainingConfig = TrainingConfig()
    distill: DistillConfig = DistillConfig()
    antlm: AntLMConfig = AntLMConfig()
    eval: EvalConfig = EvalConfig()


    @classmethod
    def of(cls, config: "RunConfig | dict[str, Any] | None" = None) -> "RunConfig":
        """A validated config from its (partial) nested dict; a RunConfig is returned as it is."""
        return config if isinstance(config, cls) else cls.model_validate(config or {})


SECTIONS = tuple(RunConfig.model_fields)


def budget_spent(training: TrainingConfig, epoch: int, step: int) -> bool:
    """The run has trained its planned budget: all its epochs, or train.max_steps optimiser steps.
    The trainer stops on it, and a sweep calls a trial that ended before it "stopped early"."""
    return epoch >= training.epochs or bool(training.max_steps and step >= training.max_steps)


def resolve(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a (partial) nested config and return it complete, as plain data."""
    return RunConfig.of(config).model_dump()


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}; lists are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of flatten."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def set_dotted(config: dict[str, Any], name: str, value: Any) -> None:
    """Set config["a"]["b"] for name "a.b", creating sections as needed."""
    node = config
    *parents, leaf = name.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
