"""Warm workers (search.reuse_workers, Ray's reuse_actors): a trial's results do not depend on which worker ran it.

One tiny sweep runs twice, its five trials in waves of two (random search with early stopping), so that with reuse
two worker processes run them all, and without it each trial gets its own; dropout draws on torch's global RNG, and
early stopping ends a trial of the second wave mid-run in its worker before the last trial starts in one of them.
Every trial's losses of every epoch, and which trials were stopped, must be identical.
"""

import json

import pytest

from babysweep.spec.load import load_spec

pytestmark = pytest.mark.slow

SPEC = """
name: {name}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{layers: 1, hidden: 32, heads: 2, attention_dropout: 0.1}}
train: {{epochs: 2, batch_size: 32, lr: {{loguniform: [1.0e-4, 3.0e-2]}}, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: builtin}}
search: {{algorithm: random, samples: 5, scheduler: asha, concurrent: 2, max_failures: 0, reuse_workers: {reuse}}}
resources: {{cpu: 1}}
"""


def _sweep(project, cache_dir, name: str, reuse: bool) -> list[dict]:
    from babysweep.sweep.driver import PLACEMENT_FILE, run_sweep
    from babysweep.sweep.stops import read_stops

    path = project / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, cache=cache_dir, reuse=str(reuse).lower()))
    result = run_sweep(load_spec(path), live=False)
    assert not result.interrupted and result.counts["errored"] == 0 and result.counts["trials"] == 5
    stops = read_stops(result.folder)
    trials = []
    for record in (result.folder / "models").glob(f"*/{PLACEMENT_FILE}"):
        folder = record.parent
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        placement = json.loads(record.read_text())
        trials.append({"started": placement["started"], "pid": placement["pid"],
                       "lr": json.loads((folder / "run.json").read_text())["config"]["train"]["lr"],
                       "stopped": folder.name in stops,
                       "losses": [{k: row[k] for k in ("train/loss", "eval/loss", "blimp_subset/overall") if k in row}
                                  for row in rows]})
    return sorted(trials, key=lambda t: t["started"])


def test_a_warm_worker_gives_the_same_results_as_fresh_ones(ray_session, project, cache_dir):
    cold = _sweep(project, cache_dir, "cold", reuse=False)
    warm = _sweep(project, cache_dir, "warm", reuse=True)
    assert len({t["pid"] for t in cold}) == 5  # a new worker process per trial
    # Two workers ran all five: Ray alone kept only the first finished worker of a wave, and started the next
    # wave's other trial in a new process (sweep.worker_cache keeps both).
    assert len({t["pid"] for t in warm}) == 2
    assert {t["pid"] for t in warm[2:4]} == {t["pid"] for t in warm[:2]}
    assert any(t["stopped"] for t in warm[2:4])  # a trial ended mid-run by early stopping, then the last in a worker
    by_lr = lambda trials: sorted(trials, key=lambda t: t["lr"])  # a wave's two start in either order
    for a, b in zip(by_lr(cold), by_lr(warm)):
        assert (a["lr"], a["stopped"]) == (b["lr"], b["stopped"])
        assert a["losses"] == b["losses"]  # exact: every epoch's training and dev loss, and the BLiMP subset


def test_the_worker_cache_keeps_up_to_the_trials_at_once():
    """Ray's cache keeps one idle worker when no trial waits; ours keeps `keep`, and gives them all up when asked."""
    from babysweep.sweep.worker_cache import keep_up_to

    cache = keep_up_to(2)
    assert [cache.cache_object("cpu1", w) for w in ("a", "b", "c")] == [True, True, False]
    assert list(cache.flush_cached_objects()) == []  # kept for the next wave
    cache.increase_max("cpu1")  # a trial of the next wave asks for a worker
    assert cache.pop_cached_object("cpu1") == "a" and list(cache.flush_cached_objects(force_all=True)) == ["b"]
