"""The layer contracts of pyproject.toml (import-linter) hold, and a deliberately wrong import breaks them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy's babysweep before the installed one
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "babysweep", tree / "babysweep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_the_layers_hold(tmp_path):
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "BROKEN" not in done.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    tree = _copy(tmp_path)
    paths = tree / "babysweep" / "core" / "paths.py"
    paths.write_text(paths.read_text() + "\nfrom babysweep.report import stats  # wrong: core imports a layer above\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "Layers: an import only points down BROKEN" in done.stdout
    assert "babysweep.core.paths -> babysweep.report.stats" in done.stdout


def test_ray_outside_the_sweep_layer_breaks_a_contract(tmp_path):
    tree = _copy(tmp_path)
    trainer = tree / "babysweep" / "train" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\nimport ray  # wrong: the trainer runs without Ray\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "Ray only in sweep/ BROKEN" in done.stdout
