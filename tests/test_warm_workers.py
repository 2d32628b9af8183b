"""Warm workers (search.reuse_workers, Ray's reuse_actors): a trial's results do not depend on which worker ran it.

One tiny sweep runs twice, its three trials one at a time (concurrent: 1) so that with reuse all three share one
worker process, and without it each gets its own; dropout draws on torch's global RNG, and early stopping ends a
trial mid-run in the shared worker before the next one starts there. Every trial's losses of every epoch, and
which trials were stopped, must be identical.
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
search: {{algorithm: random, samples: {samples}, scheduler: asha, concurrent: {concurrent}, max_failures: 0, reuse_workers: {reuse}}}
resources: {{cpu: 1}}
"""


def _sweep(project, cache_dir, name: str, reuse: bool, samples: int = 3, concurrent: int = 1) -> list[dict]:
    from babysweep.sweep.driver import PLACEMENT_FILE, run_sweep
    from babysweep.sweep.stops import read_stops

    path = project / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, cache=cache_dir, reuse=str(reuse).lower(), samples=samples, concurrent=concurrent))
    result = run_sweep(load_spec(path), live=False)
    assert not result.interrupted and result.counts["errored"] == 0 and result.counts["trials"] == samples
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
    assert len({t["pid"] for t in cold}) == 3  # a new worker process per trial
    assert len({t["pid"] for t in warm}) == 1  # one worker ran all three, one after the other
    assert any(t["stopped"] for t in warm)  # a trial ended mid-run by early stopping, then the next in its worker
    for a, b in zip(cold, warm):
        assert (a["lr"], a["stopped"]) == (b["lr"], b["stopped"])
        assert a["losses"] == b["losses"]  # exact: every epoch's training and dev loss, and the BLiMP subset


def test_every_worker_of_a_wave_waits_for_the_next_wave(ray_session, project, cache_dir):
    """Trials in waves of two (random search with early stopping): Ray alone kept only the first finished worker
    of a wave and started the next wave's second trial in a new process (sweep.worker_cache)."""
    trials = _sweep(project, cache_dir, "waves", reuse=True, samples=4, concurrent=2)
    first, second = trials[:2], trials[2:]
    assert len({t["pid"] for t in first}) == 2  # the first wave: two workers at once
    assert {t["pid"] for t in second} == {t["pid"] for t in first}  # the second wave: the same two
