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
WORDS_SEEN = "train/words_seen"  # words trained on so far: tokens seen x train_words / train_tokens (BabyLM's count)
TEACHER_WORDS = "train/teacher_words_seen"  # the teachers' own training words, summed (BabyLM counts them for a student)

BLIMP_OVERALL = "blimp/overall"
BLIMP_FIELD_PREFIX = "blimp/field/"
BLIMP_PARADIGM_PREFIX = "blimp/paradigm/"
BLIMP_SUBSET_OVERALL = "blimp_subset/overall"  # per-epoch seeded subset

# BabyLM's zero-shot suite (eval/suite.py), scored at a finalist's end when eval.suite names its data:
# one metric per leaderboard column (suite/blimp, ..., suite/reading_et) and their unweighted mean.
SUITE_PREFIX = "suite/"
SUITE_MACRO = "suite/macro"
SUITE_COLUMNS = ("blimp", "supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "reading_spr", "reading_et")
# The metrics a report's verdict can compare (report.metrics): higher is better for all but eval/loss.
VERDICT_METRICS = (BLIMP_OVERALL, EVAL_LOSS, SUITE_MACRO, *(SUITE_PREFIX + c for c in SUITE_COLUMNS))
DEFAULT_VERDICT_METRICS = (BLIMP_OVERALL, EVAL_LOSS)


def numeric_metrics(result: dict) -> dict[str, float]:
    """The metrics of a reported result: a metric is a key containing "/" whose value is a number
    (Ray's own keys, like training_iteration, have none; booleans are not numbers here)."""
    return {k: float(v) for k, v in result.items() if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}


def blimp_field(field: str) -> str:
    return BLIMP_FIELD_PREFIX + field


def blimp_paradigm(paradigm: str) -> str:
    return BLIMP_PARADIGM_PREFIX + paradigm


def suite_metric(column: str) -> str:
    """suite/<column> for a column of eval.suite.columns(), suite/macro for "macro"."""
    return SUITE_PREFIX + column


def check_verdict_metrics(names) -> tuple[str, ...]:
    """The names as a tuple, each once; a ValueError naming the first unknown one."""
    out = []
    for name in names:
        if name not in VERDICT_METRICS:
            raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(VERDICT_METRICS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("name at least one metric")
    return tuple(out)

# Not metrics: the trainer reports these with each epoch, and the sweep logs them as MLflow params
# (teacher_cache.Plan.params: distill.cache_mode, distill.cache_estimate_gb, distill.cache_reason).
CACHE_PARAMS = "distill.cache_"
