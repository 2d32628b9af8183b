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
Rungs are ASHA's: grace_period * reduction_factor**k epochs, below max_t.
"""

from __future__ import annotations

import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


class WaveHalving(FIFOScheduler):
    def __init__(self, *, metric: str, mode: str, time_attr: str, max_t: int, grace_period: int,
                 reduction_factor: float, wave_size: int):
        super().__init__()
        self._metric, self._mode, self._time_attr = metric, mode, time_attr
        self._sign = 1.0 if mode == "max" else -1.0  # higher is better after the sign
        self._quantile = (1 - 1 / reduction_factor) * 100
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor)) + 1 if max_t >= grace_period else 0
        self._rungs = [m for m in (grace_period * reduction_factor ** k for k in range(count)) if m < max_t]
        self._wave_size = max(1, int(wave_size))
        self._wave: dict[str, int] = {}  # trial id -> its wave
        self._recorded: dict[float, dict[str, tuple[int, float]]] = {m: {} for m in self._rungs}  # rung -> trial -> (wave, value)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # metric and mode are ours, given at construction

    def on_trial_add(self, tune_controller, trial) -> None:
        self._wave.setdefault(trial.trial_id, len(self._wave) // self._wave_size)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._judge(trial.trial_id, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if result:
            self._judge(trial.trial_id, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        pass  # its recorded values stay: later waves were, or will be, judged against them

    def _judge(self, trial_id: str, result: dict) -> str:
        value, now = result.get(self._metric), result.get(self._time_attr)
        if value is None or now is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return TrialScheduler.CONTINUE
        wave = self._wave.setdefault(trial_id, len(self._wave) // self._wave_size)
        for rung in reversed(self._rungs):  # the highest rung reached that has no value of this trial yet
            if now < rung or trial_id in self._recorded[rung]:
                continue
            earlier = [v for w, v in self._recorded[rung].values() if w < wave]
            self._recorded[rung][trial_id] = (wave, self._sign * float(value))
            if earlier and self._sign * float(value) < np.percentile(earlier, self._quantile):
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return "WaveHalving: rungs " + ", ".join(f"{r}: {len(v)} values" for r, v in self._recorded.items())
