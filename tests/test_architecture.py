"""The layer contracts of pyproject.toml (import-linter) hold, and a deliberately wrong import breaks them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


WRONG_IMPORTS = [  # (module, the line appended to it, what lint-imports must say)
    ("core/paths.py", "from babysweep.report import stats  # wrong: core imports a layer above",
     ["Layers: an import only points down BROKEN", "babysweep.core.paths -> babysweep.report.stats"]),
    ("train/trainer.py", "import ray  # wrong: the trainer runs without Ray", ["Ray only in sweep/ BROKEN"]),
]


@pytest.mark.parametrize("module, line, said", WRONG_IMPORTS, ids=["upward", "ray-in-trainer"])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, said):
    tree = _copy(tmp_path)
    path = tree / "babysweep" / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    done = _lint(tree)
    assert done.returncode != 0
    for words in said:
        assert words in done.stdout, done.stdout[-3000:]
