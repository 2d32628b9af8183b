"""Early stopping whose decisions do not depend on the order in which concurrent trials report.

    scheduler = WaveHalving(metric="asha_metric", mode="min", max_t=4, grace_period=1, reduction_factor=2, wave_size=2)

Ray's ASHA compares a trial at a rung with whatever other trials happened to reach that rung
first, so two runs of the same sweep keep different trials when two trials race to a rung. Here
trials run in waves of `wave_size` (the sweep's `search.concurrent`; the searcher hands out the next
wave only when the whole previous one has ended: Ray's ConcurrencyLimiter with batch=True). A trial
at a rung is judged against the values that trials of *earlier* waves recorded at that rung, which
are final by then; trials of its own wave never count. The rule at a rung is ASHA's: stop when the
value is worse than the (1 - 1/reduction_factor) quantile of the values compared with. Trials of
the first wave have nothing to be compared with and run to the end, as ASHA's first trials do.
Rungs are ASHA's: grace_period * reduction_factor**k epochs, below max_t, each moved to the first
`judged` epoch at or after it (sweep.judged_epochs: from half the budget on, and only epochs where every
schedule's metric means the same), and a trial is judged at a rung only when it reports at that very
epoch. With `stratify` (the sweep's search.stratify key), a trial is compared only with trials of its own
stratum (the same value of that key): the 4 + 4 split of a teacher sweep then equalises trials finished
per architecture, not only trials started.

Given a sweep `folder`, each stop is written to its stops.json (stops.py) with the scheduler's name
as the spec gives it (`search.scheduler`), the rung, the value and the cutoff it was compared with;
RecordingASHA does the same for Ray's ASHA (grid and points sweeps).
"""

from __future__ import annotations

import json
import math
from typing import Iterable

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from babysweep.sweep.stops import record_stop


class WaveHalving(FIFOScheduler):
    def __init__(self, *, metric: str, mode: str, time_attr: str, max_t: int, grace_period: int,
                 reduction_factor: float, wave_size: int, stratify: str | None = None,
                 judged: Iterable[int] | None = None, folder: str | None = None, name: str = "asha",
                 reported_metric: str | None = None):
        super().__init__()
        self._folder, self._name, self._reported = folder, name, reported_metric or metric
        self._metric, self._mode, self._time_attr = metric, mode, time_attr
        self._sign = 1.0 if mode == "max" else -1.0  # higher is better after the sign
        self._quantile = (1 - 1 / reduction_factor) * 100
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor)) + 1 if max_t >= grace_period else 0
        rungs = [m for m in (grace_period * reduction_factor ** k for k in range(count)) if m < max_t]
        if judged is not None:  # each rung at the first judged epoch at or after it
            judged = sorted(judged)
            rungs = sorted({next(e for e in judged if e >= r) for r in rungs if any(e >= r for e in judged)})
        self._rungs = rungs
        self._wave_size = max(1, int(wave_size))
        self._stratify = stratify
        self._wave: dict[str, int] = {}  # trial id -> its wave
        self._stratum: dict[str, object] = {}  # trial id -> its value of the stratified key (None without stratify)
        # rung -> trial -> (wave, stratum, value)
        self._recorded: dict[float, dict[str, tuple[int, object, float]]] = {m: {} for m in self._rungs}

    def __setstate__(self, state: dict) -> None:
        """A scheduler pickled before strata and stop records existed (a sweep started with an older babysweep) still loads."""
        self.__dict__.update(state)
        self.__dict__.setdefault("_stratify", None)
        self.__dict__.setdefault("_stratum", {})
        self.__dict__.setdefault("_folder", None)
        self.__dict__.setdefault("_name", "asha")
        self.__dict__.setdefault("_reported", self._metric)
        self._recorded = {r: {t: v if len(v) == 3 else (v[0], None, v[1]) for t, v in rec.items()}
                          for r, rec in self._recorded.items()}

    @property
    def rungs(self) -> list[float]:
        return list(self._rungs)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # metric and mode are ours, given at construction

    def _add(self, trial) -> None:
        self._wave.setdefault(trial.trial_id, len(self._wave) // self._wave_size)
        if self._stratify and trial.trial_id not in self._stratum:
            config = getattr(trial, "config", None) or {}
            self._stratum[trial.trial_id] = json.dumps(config.get(self._stratify), sort_keys=True, default=str)

    def on_trial_add(self, tune_controller, trial) -> None:
        self._add(trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._add(trial)
        return self._judge(trial.trial_id, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._add(trial)
        if result:
            self._judge(trial.trial_id, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        pass  # its recorded values stay: later waves were, or will be, judged against them

    def _judge(self, trial_id: str, result: dict) -> str:
        value, now = result.get(self._metric), result.get(self._time_attr)
        if value is None or now is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return TrialScheduler.CONTINUE
        wave, stratum = self._wave[trial_id], self._stratum.get(trial_id)
        for rung in self._rungs:  # judged only at the rung's own epoch: values of one epoch are compared
            if now != rung or trial_id in self._recorded[rung]:
                continue
            earlier = [v for w, s, v in self._recorded[rung].values() if w < wave and s == stratum]
            self._recorded[rung][trial_id] = (wave, stratum, self._sign * float(value))
            cutoff = np.percentile(earlier, self._quantile) if earlier else None
            if cutoff is not None and self._sign * float(value) < cutoff:
                if self._folder:
                    among = "earlier waves" + (f" with the same {self._stratify}" if self._stratify else "")
                    record_stop(self._folder, trial_id, scheduler=self._name, rung=rung, metric=self._reported,
                                mode=self._mode, value=float(value), cutoff=self._sign * float(cutoff),
                                compared=len(earlier), among=among)
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return "WaveHalving: rungs " + ", ".join(f"{r}: {len(v)} values" for r, v in self._recorded.items())


class RecordingASHA(ASHAScheduler):
    """Ray's ASHA (its decisions depend on the order trials report in), recording each stop as WaveHalving does."""

    def __init__(self, *, folder: str | None = None, name: str = "asha", reported_metric: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._folder, self._name, self._reported = folder, name, reported_metric or kwargs.get("metric")

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        judged = None  # (rung, signed cutoff, how many values) where Ray's bracket is about to judge this result
        try:
            bracket, now = self._trial_info[trial.trial_id], result.get(self._time_attr)
            if now is not None and self._metric in result:
                for milestone, recorded in bracket._rungs:
                    if now >= milestone and trial.trial_id not in recorded:
                        judged = (milestone, bracket.cutoff(recorded), len(recorded))
                        break
        except (KeyError, AttributeError, TypeError):
            judged = None
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and judged and judged[1] is not None and self._folder \
                and result.get(self._time_attr, 0) < self._max_t:
            record_stop(self._folder, trial.trial_id, scheduler=self._name, rung=judged[0], metric=self._reported,
                        mode=self._mode, value=float(result[self._metric]), cutoff=self._metric_op * float(judged[1]),
                        compared=judged[2], among="trials that reached that rung first")
        return action
