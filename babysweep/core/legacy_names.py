"""Module names from before the package move (babysweep <= 0809ae7 had flat modules), kept importable.

Ray pickles classes and functions by module path into a sweep's saved state (tuner.pkl, the searcher's
state: the callback, searcher, scheduler, search space, spec and trial context), so a sweep folder made
before the move names `babysweep.sweep_view.SweepCallback`, `babysweep.spec.Spec` and the like. `install()`
(called by babysweep/__init__.py) makes each old flat module name an alias of its new module;
`legacy_attribute` serves the old names that now are packages (spec, sweep, tracking, report).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

PREFIX = "babysweep."
# old flat module -> its module now
MOVED = {
    "config": "core.config",
    "errors": "core.errors",
    "metrics": "core.metrics",
    "paths": "core.paths",
    "atomic": "core.atomic",
    "storage_errors": "core.storage_errors",
    "records": "core.records",
    "schedule": "core.schedule",
    "models": "lm.models",
    "objectives": "lm.objectives",
    "flops": "lm.flops",
    "blimp": "eval.blimp",
    "trainer": "train.trainer",
    "checkpoint": "train.checkpoint",
    "progress": "train.progress",
    "teacher_cache": "train.teacher_cache",
    "teacher_cache_files": "train.teacher_cache_files",
    "model_card": "train.model_card",
    "spec": "spec.load",
    "space": "spec.space",
    "sampler": "spec.sampler",
    "tracking": "tracking.tracker",
    "sweep": "sweep.driver",
    "sweep_view": "sweep.callback",
    "sweep_state": "sweep.state",
    "sweep_ray": "sweep.ray_cluster",
    "sweep_scheduler": "sweep.scheduler",
    "sweep_search": "sweep.searcher",
    "sweep_mirror": "sweep.mirror",
    "mirror": "sweep.object_store",
    "trial": "sweep.trial",
    "report": "report.build",
    "report_entries": "report.entries",
    "report_plots": "report.plots",
    "report_search": "report.search",
    "verdict": "report.verdict",
    "stats": "report.stats",
    "importance": "report.importance",
    "kd_weight": "report.kd_weight",
    "study": "studies.study",
    "finalists": "studies.finalists",
    "ablation": "studies.ablation",
    "ablation_sweep": "studies.ablation_sweep",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)  # the same module object under both names

    def exec_module(self, module):
        pass


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        old = fullname[len(PREFIX):] if fullname.startswith(PREFIX) else None
        if old not in MOVED or old in _PACKAGES:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(PREFIX + MOVED[old]))


_PACKAGES = {"spec", "sweep", "tracking", "report"}  # old module names that are packages now


def legacy_attribute(package: str, name: str):
    """An attribute of an old module whose name is a package now (`babysweep.spec.Spec`), or AttributeError."""
    old = package[len(PREFIX):]
    if old in MOVED and not name.startswith("__"):
        module = importlib.import_module(PREFIX + MOVED[old])
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def install() -> None:
    if not any(isinstance(finder, _LegacyFinder) for finder in sys.meta_path):
        sys.meta_path.append(_LegacyFinder())
