"""Building babysweep's small C++ kernels for the CPU (lm/*.cpp) at run time, once per machine and source.

    library = build(Path("lm/cpu_head.cpp"), folder)    # a ctypes library, built into `folder` if not there yet

The kernels are plain C++ with GCC/Clang vector extensions, compiled with `-O3 -march=native` by the compiler
torch.compile's CPU backend also uses. A library's file name carries a digest of its source, the compiler, the flags
and the CPU's instruction sets, so a shared cache folder never serves a stale or foreign build. Raises OSError when
it cannot be built; callers fall back to torch's own operations.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")


def cpp_compiler() -> str:
    """The C++ compiler torch.compile's CPU backend calls (and these kernels are built with): $CXX, else the
    platform's."""
    return os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")


def _cpu_signature() -> str:
    """What -march=native depends on: the instruction sets of this CPU (a shared cache may serve other machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def sources_text(source: Path) -> str:
    """The source and the headers beside it that the kernels include (cpu_vector.h): what a build depends on."""
    return "\n".join(path.read_text() for path in [source, *sorted(source.parent.glob("*.h"))])


def build(source: Path, folder: Path) -> ctypes.CDLL:
    """`source` compiled into `folder` once per source, compiler and CPU, and loaded (concurrent builders: the last
    rename wins, every one of them complete)."""
    compiler = cpp_compiler()
    key = hashlib.sha256("\n".join([sources_text(source), compiler, *FLAGS, _cpu_signature()]).encode()).hexdigest()[:16]
    library = folder / f"{source.stem}-{key}.so"
    if not library.exists():
        if shutil.which(compiler) is None:
            raise OSError(f"{compiler} is not installed")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            done = subprocess.run([compiler, *FLAGS, str(source), "-o", tmp], capture_output=True, text=True)
            if done.returncode:
                raise OSError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
            os.replace(tmp, library)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return ctypes.CDLL(str(library))
