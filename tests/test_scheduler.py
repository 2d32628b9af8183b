"""ASHA judges a trial only after its causal-LM epochs (sweep.ASHA_METRIC), without starting Ray."""

from types import SimpleNamespace

import pytest

from babysweep import metrics as M
from babysweep.spec import spec_from_text
from babysweep.sweep import ASHA_METRIC, _scheduler, scheduler_result

SPEC = """
name: asha
model: {layers: 1, hidden: 32, heads: 2}
train: {epochs: 4, lr: {loguniform: [1.0e-3, 1.0e-2]}}
antlm: {schedule: {choice: ["4clm", "1clm+2mlm+1clm"]}}
search: {algorithm: random, samples: 2, metric: eval/loss, mode: min, scheduler: asha, grace_period: 1, reduction_factor: 2}
"""


def _epoch(epoch: int, loss: float, mlm: bool) -> dict:
    return {M.EPOCH: epoch, M.EVAL_LOSS: loss, M.PHASE: float(mlm)}


def test_the_scheduler_metric_is_reported_after_clm_epochs_only():
    assert scheduler_result(_epoch(1, 3.0, mlm=False), M.EVAL_LOSS)[ASHA_METRIC] == 3.0
    assert ASHA_METRIC not in scheduler_result(_epoch(2, 9.0, mlm=True), M.EVAL_LOSS)
    assert ASHA_METRIC not in scheduler_result({M.EPOCH: 1, M.PHASE: 0.0}, M.EVAL_LOSS)  # metric not measured
    assert scheduler_result(_epoch(2, 9.0, mlm=True), M.EVAL_LOSS)[M.EVAL_LOSS] == 9.0  # the real value still goes out


@pytest.mark.parametrize("second_epoch_is_mlm, stopped", [(True, False), (False, True)])
def test_asha_does_not_stop_a_trial_for_its_mlm_epoch(second_epoch_is_mlm, stopped):
    from ray.tune.schedulers import TrialScheduler

    scheduler = _scheduler(spec_from_text(SPEC, "asha.yaml"))
    clm, antlm = SimpleNamespace(trial_id="clm"), SimpleNamespace(trial_id="antlm")
    for trial in (clm, antlm):
        scheduler.on_trial_add(None, trial)
    for epoch, loss in ((1, 3.0), (2, 2.5)):  # the causal trial reaches both rungs first
        scheduler.on_trial_result(None, clm, scheduler_result(_epoch(epoch, loss, mlm=False), M.EVAL_LOSS))
    assert scheduler.on_trial_result(None, antlm, scheduler_result(_epoch(1, 2.9, mlm=False), M.EVAL_LOSS)) == TrialScheduler.CONTINUE
    # epoch 2: the AntLM trial's causal loss is far worse in an MLM epoch; in a CLM epoch it is simply worse
    action = scheduler.on_trial_result(None, antlm, scheduler_result(_epoch(2, 6.0, mlm=second_epoch_is_mlm), M.EVAL_LOSS))
    assert (action == TrialScheduler.STOP) is stopped
