"""The spec's schema: its top-level settings (search, resources, tracking) and the leaves of the training config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from babysweep.core import metrics as M
from babysweep.core.config import RunConfig
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.load.OptunaSpace



# ------------------------------------------------------------------ top-level settings
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchConfig(_Strict):
    algorithm: Literal["optuna", "random", "grid", "points"] = "optuna"
    # algorithm points: named configs, each {dotted key: value} over the spec's values (finalists, ablations)
    points: dict[str, dict[str, Any]] | None = None
    metric: str = M.EVAL_LOSS
    mode: Literal["min", "max"] = "min"
    samples: int = Field(8, ge=1)  # sampled configs (ignored by grid: every point runs)
    scheduler: Literal["asha", "none"] = "asha"  # asha stops weak trials early, by epoch
    concurrent: int = Field(2, ge=1)  # trials at once
    repeats: int = Field(1, ge=1)  # seeds per config (train.seed + 0..repeats-1)
    seed: int = 0  # the searcher's seed
    # optuna: random trials before TPE (Optuna's own default, 10, would leave an 8-sample sweep all random);
    # None = samples // 4, at least 2 and at most 10 (sampler.py). Other algorithms ignore it.
    startup_trials: int | None = Field(None, ge=1)
    # a choice key (e.g. model.arch) whose values take turns: each gets samples / len(values) trials, so
    # TPE cannot spend a whole sweep on the value it liked first; Optuna samples every other key
    stratify: str | None = None
    max_failures: int = Field(1, ge=0)  # retries of a failed trial
    # a trial's worker process runs the next trial too (Ray's reuse_actors): no new process, no imports of torch,
    # transformers and babysweep per trial; results do not depend on it (tests/test_warm_workers.py)
    reuse_workers: bool = True
    grace_period: int = Field(1, ge=1)  # ASHA: epochs before a trial may be stopped
    reduction_factor: float = Field(2, gt=1)  # ASHA: keep 1/reduction_factor at each rung


class ResourcesConfig(_Strict):
    cpu: float = Field(1, gt=0)  # per trial; Ray's gpu-only requests would mean 0 CPUs
    gpu: float = Field(0, ge=0)  # fractional shares a GPU between trials


class TrackingConfig(_Strict):
    models: Literal["best", "all", "none"] = "best"  # which trained models MLflow keeps
    tags: dict[str, str] = Field(default_factory=dict)  # carried by every run of the sweep, e.g. finalist_of


class FromSweep(_Strict):
    sweep: str  # written `from_sweep:` in the spec
    top: int = Field(2, ge=1)  # BabyLlama distils from an ensemble of two teachers
    per_arch: bool = False  # top N of each model.arch (Baby Llama: the best GPT-2 and the best LLaMA)
    metric: str | None = None  # None = that sweep's own search.metric and mode
    mode: Literal["min", "max"] | None = None


# ------------------------------------------------------------------ the schema's leaves
@dataclass
class _Leaf:
    adapter: TypeAdapter
    number: str | None  # "int" / "float" when the field is numeric (None allowed), else None


def _numeric(annotation: Any) -> str | None:
    union = get_origin(annotation) in (Union, type(int | None))
    members = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    if members == [int]:
        return "int"
    if members == [float]:
        return "float"
    return None


def _schema(model: type[BaseModel], prefix: str = "") -> tuple[dict[str, _Leaf], dict[str, type[BaseModel]]]:
    leaves: dict[str, _Leaf] = {}
    sections: dict[str, type[BaseModel]] = {}
    for key, info in model.model_fields.items():
        name = prefix + key
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            sections[name] = info.annotation
            sub_leaves, sub_sections = _schema(info.annotation, name + ".")
            leaves.update(sub_leaves)
            sections.update(sub_sections)
        else:
            # A lone field with its constraints, without the model's cross-field validators.
            ann = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            leaves[name] = _Leaf(TypeAdapter(ann), _numeric(info.annotation))
    return leaves, sections


LEAVES, SECTION_MODELS = _schema(RunConfig)
PATH_SPECIALS = {"data.train": ("builtin",), "data.dev": ("builtin",), "eval.blimp": ("builtin", "none"), "eval.suite": (),
                 "distill.teachers": (), "distill.teacher": (), "data.cache_dir": ()}  # teacher: one entry


