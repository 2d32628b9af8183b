"""Disk asked, not taken: a study's estimate before it starts, and `status` saying where the space went."""

from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_the_study_estimate_names_the_teacher_cache_and_what_is_free(tmp_path, monkeypatch):
    from babysweep.spec.load import load_spec
    from babysweep.studies import disk_estimate
    from babysweep.train import disk

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    import types

    import babysweep.data

    monkeypatch.setattr(disk, "free_bytes", lambda path: 40e9)
    # the corpus as prepare() returns it (its tokenisation is tested elsewhere): 330,000 training tokens
    monkeypatch.setattr(babysweep.data, "prepare", lambda data_cfg: types.SimpleNamespace(train=[0] * 330_000, chunk_bos=1))
    small = {"data.seq_len": 32, "data.tokenizer.vocab_size": 500}
    specs = [load_spec(ROOT / "search_spaces" / f"{name}.yaml", small) for name in ("teachers", "students")]
    lines = disk_estimate.study_estimate(specs, 5, tmp_path / "sweeps")
    assert lines[0].startswith("disk estimate: at most ") and "40.00 GB free under" in lines[0]
    assert "teacher cache" in lines[0] and "models and checkpoints about" in lines[0]
    # 8 distilled epochs x 10,644 chunks (<s> + 31 tokens each) x 32 x vocab 500 x 2 B per seed, for the tuning seed and 5 finalist seeds
    assert lines[1].startswith("  teacher cache, students: 2.72 GB per seed x 6 seeds")
    assert "the cache budget 10.00 GB (25% of the 40.00 GB it could use, leaving at least 5 GB free" in lines[1]
    monkeypatch.setattr(disk, "free_bytes", lambda path: 3e9)
    lines = disk_estimate.study_estimate(specs, 5, tmp_path / "sweeps")
    assert "distilled on the fly, nothing cached" in lines[1]


def test_status_says_where_the_space_went(tmp_path):
    from babysweep.sweep.status_view import disk_lines

    (tmp_path / "sweeps" / "teachers" / "models").mkdir(parents=True)
    (tmp_path / "sweeps" / "teachers" / "models" / "w.bin").write_bytes(b"\0" * 3000)
    (tmp_path / "sweeps" / ".cache" / "teachers" / "k").mkdir(parents=True)
    (tmp_path / "sweeps" / ".cache" / "teachers" / "k" / "logits.bin").write_bytes(b"\0" * 5000)
    (tmp_path / "sweeps" / ".cache" / "tokens.bin").write_bytes(b"\0" * 700)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"\0" * 200)
    (line,) = disk_lines(tmp_path, tmp_path / "sweeps")
    assert line.startswith("disk: sweeps 3.00 KB (teachers 3.00 KB), teacher cache 5.00 KB, token cache 700 B, mlruns 200 B; ")
    assert line.endswith("free on that disk")
