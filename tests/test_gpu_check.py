"""bench/gpu_check.sh: one sentence and exit status 2 without a GPU; its code paths run on the CPU (--smoke)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].endswith(".") and lines[0].count(". ") == 0, lines[0]
    return lines[0]


def test_script_without_nvidia_smi_says_so(tmp_path):
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}  # no nvidia-smi in these folders on a CPU machine
    if any(Path(p, "nvidia-smi").exists() for p in ("/usr/bin", "/bin")):
        pytest.skip("this machine has nvidia-smi")
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert "no NVIDIA GPU" in _one_sentence(done.stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_python_check_without_cuda_says_so():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert "no CUDA GPU" in _one_sentence(done.stderr)


@pytest.mark.slow
def test_smoke_runs_every_step_on_the_cpu():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--steps", "2"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for start in ("1. bf16 matmul peak", "2. student", "3. distillation from two teachers", "   from the exact cache", "4. packing"):
        assert any(line.startswith(start) for line in done.stdout.splitlines()), done.stdout
