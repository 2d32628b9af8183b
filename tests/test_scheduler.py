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
search: {algorithm: random, samples: 2, metric: eval/loss, mode: min, scheduler: asha, grace_period: 1, reduction_factor: 2, concurrent: 1}
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


def _decisions(order: list[tuple[str, int, float]], wave_size: int = 2) -> dict[str, str]:
    """Feed (trial, epoch, loss) results in the given order; the first STOP of each trial, else CONTINUE."""
    from babysweep.sweep_scheduler import WaveHalving

    scheduler = WaveHalving(metric=ASHA_METRIC, mode="min", time_attr=M.EPOCH, max_t=4, grace_period=1,
                            reduction_factor=2, wave_size=wave_size)
    for trial in ("a", "b", "c", "d"):  # trials are added in creation order: waves {a, b}, {c, d}
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial))
    decisions: dict[str, str] = {}
    for trial, epoch, loss in order:
        if trial in decisions:
            continue  # stopped: reports no more
        action = scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial), {M.EPOCH: epoch, ASHA_METRIC: loss})
        if action != "CONTINUE":
            decisions[trial] = f"{action}@{epoch}"
    return {t: decisions.get(t, "CONTINUE") for t in "abcd"}


def test_wave_halving_decisions_do_not_depend_on_arrival_order():
    # Losses per trial and epoch; wave 1 (c, d) is judged against wave 0 (a, b) only.
    losses = {"a": [3.0, 2.5, 2.2], "b": [3.4, 3.0, 2.9], "c": [3.6, 3.1, 3.0], "d": [2.9, 2.4, 2.1]}
    wave0 = [(t, e + 1, losses[t][e]) for e in range(3) for t in "ab"]
    wave1 = [(t, e + 1, losses[t][e]) for e in range(3) for t in "cd"]
    swapped0 = [(t, e + 1, losses[t][e]) for e in range(3) for t in "ba"]
    swapped1 = [(t, e + 1, losses[t][e]) for t in "dc" for e in range(3)]  # d runs ahead of c
    first = _decisions(wave0 + wave1)
    assert first == _decisions(swapped0 + swapped1)
    # The first wave has nothing to be compared with; c is worse than wave 0's median at epoch 1, d is not.
    assert first == {"a": "CONTINUE", "b": "CONTINUE", "c": "STOP@1", "d": "CONTINUE"}
    # Ray's ASHA compares with whoever reached the rung first: the same results in two orders differ.
    from ray.tune.schedulers import ASHAScheduler

    def asha(order):
        scheduler = ASHAScheduler(time_attr=M.EPOCH, metric=ASHA_METRIC, mode="min", max_t=4, grace_period=1, reduction_factor=2)
        for trial in "abcd":
            scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial))
        return [scheduler.on_trial_result(None, SimpleNamespace(trial_id=t), {M.EPOCH: e, ASHA_METRIC: v}) for t, e, v in order]

    one = [("a", 1, 3.0), ("b", 1, 3.4)]
    assert asha(one)[1] == "STOP" and asha(one[::-1])[0] == "CONTINUE"  # b's fate depends on who reported first


def test_a_stop_is_recorded_with_the_scheduler_as_the_spec_names_it_its_rung_and_cutoff(tmp_path):
    from babysweep.stops import read_stops, stop_note, stop_sentence
    from babysweep.sweep_scheduler import WaveHalving

    scheduler = WaveHalving(metric=ASHA_METRIC, mode="min", time_attr=M.EPOCH, max_t=4, grace_period=1, reduction_factor=2,
                            wave_size=2, folder=str(tmp_path), name="asha", reported_metric="tune/loss")
    for trial in "abcd":
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial))
    for trial, loss in (("a", 3.0), ("b", 3.4), ("c", 3.6), ("d", 2.9)):
        scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial), {M.EPOCH: 1, ASHA_METRIC: loss})
    stops = read_stops(tmp_path)
    assert set(stops) == {"c"}
    assert stops["c"] == {"scheduler": "asha", "rung": 1, "metric": "tune/loss", "mode": "min", "value": 3.6,
                          "cutoff": 3.2, "compared": 2, "among": "earlier waves"}
    assert stop_sentence(stops["c"]) == ("stopped early by asha at its rung of epoch 1: tune/loss 3.6, above the cutoff "
                                         "3.2 set by 2 trials of earlier waves")
    assert stop_note(stops["c"]) == "asha@1"


def test_rays_asha_records_its_stops_too(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from babysweep.stops import read_stops

    spec = spec_from_text(SPEC.replace("algorithm: random", "algorithm: grid").replace("loguniform: [1.0e-3, 1.0e-2]", "grid: [0.001, 0.01]"), "asha.yaml")
    scheduler = _scheduler(spec, tmp_path)
    assert type(scheduler).__name__ == "RecordingASHA"
    first, second = SimpleNamespace(trial_id="first"), SimpleNamespace(trial_id="second")
    for trial in (first, second):
        scheduler.on_trial_add(None, trial)
    scheduler.on_trial_result(None, first, scheduler_result(_epoch(1, 3.0, mlm=False), M.EVAL_LOSS))
    assert scheduler.on_trial_result(None, second, scheduler_result(_epoch(1, 3.5, mlm=False), M.EVAL_LOSS)) == TrialScheduler.STOP
    stop = read_stops(tmp_path)["second"]
    assert (stop["scheduler"], stop["rung"], stop["value"], stop["cutoff"], stop["compared"]) == ("asha", 1, 3.5, 3.0, 1)
