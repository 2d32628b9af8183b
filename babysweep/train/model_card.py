"""A Hugging Face model card (README.md) for a trained model folder, written next to its weights.

    write_model_card("sweeps/teachers.final/models/t1/final", config, metrics,
                     sweep="teachers.final", trial_id="t1", role="teacher", run_id="3f2a...",
                     tracking_uri="sqlite:///.../mlflow.db", teacher_runs=["9c1e..."])

The card says what the folder holds (architecture, parameters, data, tokenizer, the training
config, the seed, the final metrics, a student's teachers and the MLflow run) and how to load it
with transformers. Plain text from a RunConfig and plain numbers: no torch, MLflow or Ray here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from babysweep.core.atomic import write_text_atomic
from babysweep.core.config import RunConfig
from babysweep.core.metrics import BLIMP_OVERALL, BLIMP_PARADIGM_PREFIX, BLIMP_SUBSET_OVERALL, EVAL_LOSS, PARAMS, TUNE_LOSS
from babysweep.core.records import group_tags

CARD = "README.md"
SECTIONS = ("model", "data", "train", "distill", "antlm", "eval")  # config sections the card lists


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return "`" + json.dumps(value, separators=(", ", ": ")) + "`"
    return "-" if value is None else str(value)


def _table(rows: dict[str, Any], head: tuple[str, str] = ("key", "value")) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {_value(v)} |" for k, v in rows.items()]
    return lines + [""]


def model_card(config: RunConfig, metrics: dict[str, float], *, sweep: str, trial_id: str, role: str, run_id: str | None = None,
               tracking_uri: str | None = None, teacher_runs: list[str] | None = None) -> str:
    """The card's text. `config` is the trial's complete config, `metrics` its final numbers."""
    model, data, train = config.model.model_dump(), config.data.model_dump(), config.train.model_dump()
    tags = group_tags(config.model_dump())
    n_params = metrics.get(PARAMS)
    size = f"{int(n_params):,} parameters" if n_params else "parameters: see config.json"
    teachers = config.distill.teachers
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation",
             f"tags: [babysweep, {tags['arch']}, {role}]", "---", ""]
    lines = front + [f"# {sweep}/{trial_id}", "",
                     f"A {tags['arch']} causal language model ({size}) trained by babysweep as trial `{trial_id}` of "
                     f"sweep `{sweep}` (role: {role}).", ""]
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
              'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")', "```", ""]
    lines += ["## Architecture", ""] + _table({"arch": tags["arch"], "parameters": int(n_params) if n_params else None, **model})
    builtin = config.data.train == "builtin"
    lines += ["## Data", "", ("The built-in synthetic corpus (a seeded grammar of simple child-directed English; "
                              "not real data)." if builtin else f"Training files: `{config.data.train}`."), ""]
    lines += _table({k: v for k, v in data.items() if k not in ("tokenizer", "cache_dir")})
    lines += ["## Tokenizer", "", "Byte-level BPE trained on the training files, saved in this folder "
              "(`tokenizer.json`).", ""] + _table(data["tokenizer"])
    lines += ["## Training", "", f"Seed {config.train.seed}; AntLM schedule: {tags['schedule']}.", ""]
    lines += _table({k: v for k, v in train.items() if k != "threads"})
    if teachers:
        lines += ["## Teachers", "", "Distilled from an ensemble of:", ""]
        lines += [f"- `{t}`" + (f" (MLflow run `{r}`)" if r else "") for t, r in
                  zip(teachers, (teacher_runs or []) + [None] * len(teachers))] + [""]
        lines += _table({k: v for k, v in config.distill.model_dump().items() if k != "teachers"})
    if config.antlm.schedule or config.antlm.mlm_ratio:
        lines += ["## AntLM", ""] + _table(config.antlm.model_dump())
    shown = {k: v for k, v in sorted(metrics.items()) if not k.startswith(BLIMP_PARADIGM_PREFIX)}
    first = [m for m in (TUNE_LOSS, EVAL_LOSS, BLIMP_OVERALL) if m in shown]
    subset = config.eval.blimp_final == "subset"
    scored = (f"`{BLIMP_SUBSET_OVERALL}`: BLiMP on a seeded subset of {config.eval.blimp_pairs_per_paradigm} pairs "
              "per paradigm only (eval.blimp_final: subset, as tuning trials do; run `babysweep eval` for all of it)"
              if subset else "`blimp/overall`: BLiMP minimal pairs, every pair, mean over paradigms")
    lines += ["## Metrics", "", f"After the last epoch (`eval/loss`: causal loss on the dev files; {scored}).", ""]
    lines += _table({**{m: shown[m] for m in first}, **{k: v for k, v in shown.items() if k not in first}}, ("metric", "value"))
    lines += ["## Tracking", ""]
    lines += _table({"sweep": sweep, "trial": trial_id, "MLflow run id": run_id, "MLflow store": tracking_uri})
    return "\n".join(lines)


def write_model_card(folder: str | Path, config: RunConfig, metrics: dict[str, float], **about) -> Path:
    """Write `folder/README.md` (atomically); `about` as for model_card."""
    path = Path(folder) / CARD
    write_text_atomic(path, model_card(config, metrics, **about) + "\n", "a model card")
    return path
