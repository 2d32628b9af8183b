"""GPU paths without a GPU: Ray's declared (fake) GPU resources pack fractional trials onto one GPU.

`ray.init(num_gpus=1)` on a CPU machine declares one GPU that Ray schedules like a real one: it assigns
GPU ids and sets CUDA_VISIBLE_DEVICES in each trial's worker, while torch finds no CUDA and the trainer
runs on the CPU. Four trials at `resources.gpu: 0.25` must then run at once, each with its own
assignment recorded in its folder (placement.json), and finish as CPU runs.
"""

import json

import pytest

from babysweep.spec.load import load_spec

pytestmark = pytest.mark.slow

SPEC = """
name: packed
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 3, batch_size: 16, lr: {{loguniform: [1.0e-3, 1.0e-2]}}, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: none}}
search: {{algorithm: random, samples: 4, scheduler: none, concurrent: 4, max_failures: 0}}
resources: {{cpu: 0.5, gpu: 0.25}}
"""


@pytest.fixture(scope="module")
def fake_gpu_ray():
    import ray

    # 2 logical CPUs (0.5 per trial) and one declared GPU: only the GPU's quarters can limit the packing.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=100 * 1024**2,
             log_to_driver=False)
    yield
    ray.shutdown()


def test_four_quarter_gpu_trials_share_one_declared_gpu(fake_gpu_ray, tmp_path, monkeypatch, cache_dir):
    from babysweep.sweep.driver import PLACEMENT_FILE, run_sweep

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "packed.yaml"
    path.write_text(SPEC.format(cache=cache_dir))
    result = run_sweep(load_spec(path), live=False)
    assert not result.interrupted and result.counts["finished"] == 4
    trials = sorted((result.folder / "models").glob("*/" + PLACEMENT_FILE))
    placements = [json.loads(p.read_text()) for p in trials]
    assert len(placements) == 4
    for placement, record in zip(placements, trials):
        assert placement["gpu_ids"] == ["0"]  # a quarter of the one declared GPU
        assert placement["cuda_visible_devices"] == "0"  # set by Ray in the trial's own worker
        assert json.loads((record.parent / "run.json").read_text())["device"] == "cpu"  # no CUDA: a CPU run
    assert len({p["pid"] for p in placements}) == 4  # four workers, each with its own assignment
    # All four ran at once: each started before any of them finished.
    assert max(p["started"] for p in placements) < min(p["finished"] for p in placements)
