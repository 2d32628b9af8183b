"""Early stopping judges a trial only at epochs where every trial's metric means the same (causal-LM epochs
after a causal-LM epoch, from half the budget on: sweep.ASHA_METRIC, judged_epochs), only against trials of
its own stratum, and in an order-independent way (WaveHalving), without starting Ray."""

from types import SimpleNamespace

import pytest

from babysweep.core import metrics as M
from babysweep.spec.load import spec_from_text
from babysweep.sweep.driver import ASHA_METRIC, _scheduler, scheduler_result

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


def test_the_scheduler_metric_is_reported_at_judged_epochs_only():
    judged = {3}
    assert ASHA_METRIC not in scheduler_result(_epoch(2, 3.0, mlm=False), M.EVAL_LOSS, judged)
    assert scheduler_result(_epoch(3, 3.0, mlm=False), M.EVAL_LOSS, judged)[ASHA_METRIC] == 3.0
    assert ASHA_METRIC not in scheduler_result(_epoch(3, 3.0, mlm=True), M.EVAL_LOSS, judged)


def _spec(epochs: int, antlm: str, extra: str = "") -> str:
    return (f"name: asha\nmodel: {{layers: 1, hidden: 32, heads: 2}}\ntrain: {{epochs: {epochs}, lr: {{loguniform: [1.0e-3, 1.0e-2]}}}}\n"
            f"antlm: {antlm}\nsearch: {{algorithm: random, samples: 2, metric: eval/loss, mode: min, scheduler: asha, "
            f"grace_period: 1, reduction_factor: 2, concurrent: 1}}\n{extra}")


@pytest.mark.parametrize("epochs, antlm, expected", [
    (4, '{schedule: {choice: ["4clm", "1clm+2mlm+1clm"]}}', set()),  # epochs 2, 3 are MLM, 4 is the end
    (8, '{schedule: {choice: ["8clm", "1clm+2mlm+5clm"]}}', {5, 6, 7}),  # 4 follows an MLM epoch
    (8, '{schedule: {choice: ["8clm", "2clm+4mlm+2clm"]}}', set()),
    (8, "{mlm_ratio: {uniform: [0.0, 0.25]}}", {7}),  # 1 MLM epoch (5) or 2 (4, 5): 6 follows one
    (8, "{}", {4, 5, 6, 7}),  # no AntLM: from half the budget
])
def test_judged_epochs_are_causal_after_causal_for_every_schedule_and_past_half(epochs, antlm, expected):
    from babysweep.sweep.driver import judged_epochs, possible_schedules

    spec = spec_from_text(_spec(epochs, antlm), "asha.yaml")
    judged = judged_epochs(spec)
    assert judged == expected
    for phases in possible_schedules(spec):
        for e in judged:
            assert 2 * e >= epochs and phases[e - 1] == "clm" and phases[e - 2] == "clm"


def test_an_antlm_trial_is_never_judged_in_or_right_after_an_mlm_epoch():
    """Fed through the sweep's own scheduler and scheduler_result: the AntLM trial's causal loss is far worse
    in its MLM epochs and the epoch after; it is judged only where both schedules are causal after causal."""
    from ray.tune.schedulers import TrialScheduler

    from babysweep.sweep.driver import judged_epochs

    spec = spec_from_text(_spec(8, '{schedule: {choice: ["8clm", "1clm+2mlm+5clm"]}}'), "asha.yaml")
    judged = judged_epochs(spec)
    scheduler = _scheduler(spec)
    assert scheduler.rungs == [5]  # ASHA's rungs 1, 2, 4 move to the first judged epoch at or after them
    clm, antlm = SimpleNamespace(trial_id="clm", config={}), SimpleNamespace(trial_id="antlm", config={})
    for trial in (clm, antlm):
        scheduler.on_trial_add(None, trial)
    for epoch in range(1, 9):
        scheduler.on_trial_result(None, clm, scheduler_result(_epoch(epoch, 3.0 - 0.1 * epoch, mlm=False), M.EVAL_LOSS, judged))
    phases = ["clm", "mlm", "mlm", "clm", "clm", "clm", "clm", "clm"]
    actions = {}
    for epoch, phase in enumerate(phases, start=1):
        loss = 9.0 if phase == "mlm" or phases[epoch - 2] == "mlm" else 3.0 - 0.1 * epoch + 0.01  # barely worse later
        actions[epoch] = scheduler.on_trial_result(None, antlm, scheduler_result(_epoch(epoch, loss, mlm=phase == "mlm"),
                                                                                 M.EVAL_LOSS, judged))
    assert [e for e, a in actions.items() if a == TrialScheduler.STOP] == [5]  # judged once, at a comparable epoch


def _decisions(order: list[tuple[str, int, float]], wave_size: int = 2, strata: dict[str, str] | None = None,
               max_t: int = 4) -> dict[str, str]:
    """Feed (trial, epoch, loss) results in the given order; the first STOP of each trial, else CONTINUE."""
    from babysweep.sweep.scheduler import WaveHalving

    scheduler = WaveHalving(metric=ASHA_METRIC, mode="min", time_attr=M.EPOCH, max_t=max_t, grace_period=1,
                            reduction_factor=2, wave_size=wave_size, stratify="model.arch" if strata else None)
    names = sorted({t for t, _, _ in order})
    for trial in names:  # trials are added in creation order: waves {a, b}, {c, d}, ...
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial, config={"model.arch": (strata or {}).get(trial)}))
    decisions: dict[str, str] = {}
    for trial, epoch, loss in order:
        if trial in decisions:
            continue  # stopped: reports no more
        action = scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial), {M.EPOCH: epoch, ASHA_METRIC: loss})
        if action != "CONTINUE":
            decisions[trial] = f"{action}@{epoch}"
    return {t: decisions.get(t, "CONTINUE") for t in names}


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


def test_wave_halving_compares_a_trial_only_with_its_own_stratum():
    # wave 0: a (llama, good), b (gpt2, worse); wave 1: c (gpt2, between them), d (llama)
    losses = {"a": [2.0, 1.8, 1.7], "b": [3.4, 3.0, 2.9], "c": [3.0, 2.7, 2.6], "d": [2.1, 1.9, 1.8]}
    order = [(t, e + 1, losses[t][e]) for t in "abcd" for e in range(3)]
    strata = {"a": "llama", "b": "gpt2", "c": "gpt2", "d": "llama"}
    assert _decisions(order)["c"] == "STOP@1"  # without strata, gpt2's c loses to llama's a
    assert _decisions(order, strata=strata) == {"a": "CONTINUE", "b": "CONTINUE", "c": "CONTINUE", "d": "STOP@1"}


def test_wave_halving_never_compares_across_strata():
    """A stratum's decisions are the same whatever the other stratum's trials report: random sweeps of three
    waves, the gpt2 trials' losses replaced by very good, very bad or shuffled ones."""
    import random

    rng = random.Random(0)
    stops = 0
    for _ in range(40):
        names = [f"t{i:02d}" for i in range(8)]
        strata = {t: rng.choice(["llama", "gpt2"]) for t in names}
        losses = {t: sorted((rng.uniform(1, 4) for _ in range(7)), reverse=True) for t in names}
        runs = []
        for variant in ("same", "good", "bad", "shuffled"):
            changed = {t: (v if strata[t] == "llama" or variant == "same" else
                           [0.1] * 7 if variant == "good" else [99.0] * 7 if variant == "bad" else rng.sample(v, len(v)))
                       for t, v in losses.items()}
            order = [(t, e + 1, changed[t][e]) for t in names for e in range(7)]
            runs.append(_decisions(order, strata=strata, max_t=8))
        for t in names:
            if strata[t] == "llama":
                assert len({r[t] for r in runs}) == 1
        stops += sum(runs[0][t].startswith("STOP") for t in names if strata[t] == "llama")
    assert stops > 10  # the rule did stop trials: the sameness is not for want of decisions
def test_a_stop_is_recorded_with_the_scheduler_as_the_spec_names_it_its_rung_and_cutoff(tmp_path):
    from babysweep.sweep.stops import read_stops, stop_note, stop_sentence
    from babysweep.sweep.scheduler import WaveHalving

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

    from babysweep.sweep.stops import read_stops

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
