"""How heavily distillation weighs against cross-entropy, in one unit whatever `kd_reduction` is.

    kd_per_ce(alpha=0.5, temperature=2.0, kd_reduction="babyllama", seq_len=128)   # -> 508.0
    token_alpha(0.5, "babyllama", 128)          # -> 0.0078: the per-token alpha with the same balance
    kd_epochs(config)                           # -> (epochs with a KD term, epochs)

Token units: the weight of one position's KL term relative to one target token's CE term. The loss
is alpha * CE + (1 - alpha) * T^2 * KD, where CE is a mean over the S - 1 targets of a sequence.
With kd_reduction "token" KD is a mean over the same targets, so the ratio is (1 - alpha) T^2 / alpha.
With "babyllama" (BabyLlama's KLDivLoss(reduction="batchmean")) KD is a sum over all S positions
divided by the batch size, so each position weighs S - 1 times more: (S - 1)(1 - alpha) T^2 / alpha.
The papers' alpha 0.5 at S = 128 therefore matches a token-unit alpha of 1/128 (T^2 is common to
both and cancels). Padding would change the counts; BabyLM chunks have none.
"""

from __future__ import annotations

from babysweep.core.config import RunConfig
from babysweep.core.schedule import phases


def kd_per_ce(alpha: float, temperature: float, kd_reduction: str, seq_len: int) -> float:
    """Per-position KD weight over per-token CE weight; inf when alpha is 0 (KD only)."""
    if alpha >= 1.0:
        return 0.0
    if alpha <= 0.0:
        return float("inf")
    positions = seq_len - 1 if kd_reduction == "babyllama" else 1
    return positions * (1.0 - alpha) * temperature**2 / alpha


def token_alpha(alpha: float, kd_reduction: str, seq_len: int) -> float:
    """The kd_reduction "token" alpha that gives the same KD:CE balance as `alpha` under `kd_reduction`."""
    if kd_reduction != "babyllama" or alpha in (0.0, 1.0):
        return alpha
    return alpha / (alpha + (seq_len - 1) * (1.0 - alpha))


def kd_epochs(config: RunConfig) -> tuple[int, int]:
    """(epochs that carry a KD term, all epochs) of a run's config: the causal-LM epochs when there are
    teachers and alpha < 1, none otherwise (MLM epochs never distil)."""
    epochs = config.train.epochs
    if not (config.distill.teachers and config.distill.alpha < 1.0):
        return 0, epochs
    return phases(config.antlm.schedule, config.antlm.mlm_ratio, epochs).count("clm"), epochs


def _parse(text: str | None):
    """A param string back to a value: numbers, None, lists (as their text), else the text."""
    if text is None or text in ("None", ""):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def kd_summary(params: dict[str, str]) -> dict:
    """A run's distillation strength from its MLflow params (the flat config, as strings); defaults
    fill keys the run did not log. kd_per_ce is None when the run had no teachers."""
    defaults = RunConfig()

    def get(key: str):
        section, name = key.split(".")
        return _parse(params.get(key)) if params.get(key) is not None else getattr(getattr(defaults, section), name)

    teachers = params.get("distill.teachers", "[]")
    has_teachers = teachers not in ("[]", "", "None")
    alpha, temperature = float(get("distill.alpha")), float(get("distill.temperature"))
    reduction, seq_len = str(get("distill.kd_reduction")), int(get("data.seq_len"))
    config = RunConfig.of({"train": {"epochs": int(get("train.epochs"))},
                           "distill": {"teachers": ["t"] if has_teachers else [], "alpha": alpha},
                           "antlm": {"schedule": get("antlm.schedule"), "mlm_ratio": float(get("antlm.mlm_ratio") or 0.0)}})
    active, epochs = kd_epochs(config)
    return {"alpha": alpha, "temperature": temperature, "kd_reduction": reduction, "seq_len": seq_len,
            "kd_per_ce": kd_per_ce(alpha, temperature, reduction, seq_len) if has_teachers else None,
            "token_alpha": token_alpha(alpha, reduction, seq_len) if has_teachers else None,
            "kd_epochs": active, "epochs": epochs}


__all__ = ["kd_per_ce", "token_alpha", "kd_epochs", "kd_summary"]
