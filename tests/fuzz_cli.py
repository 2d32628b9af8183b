"""Generated bad inputs for the command line, and the checks every one of them must pass.

    from fuzz_cli import Project, check
    with Project() as project:                      # a fresh project folder, BABYSWEEP_PROJECT set to it
        path = project.write("bad.yaml", b"name: x\\n\\xff")
        outcome = project.invoke("validate", path)  # main() in process: exit status, stdout, stderr, traceback
        assert check(outcome, names=[path.name], must_fail=True) == []

Used by tests/test_fuzz_inputs.py (a bounded, derandomised number of cases per surface on every CI run)
and bench/fuzz_inputs.py (thousands, counted instead of asserted). A case must end in exit status 2
(or 0 where the generated input may happen to be valid), in at most MAX_LINES lines of stderr that name
the file, without a traceback, within the time limit, and with every file that existed before unchanged.

Heavy work behind an accepted input is not run: `Accepted` is raised where a sweep, a training loop or
the UI server would start (after the spec, the study state, the corpus and the teachers were read).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 3  # an error is one sentence; a warning line or two may come before it
TIME_LIMIT = 20.0  # seconds per case; a hang is a case that reaches it
PROBLEMS = ("traceback", "hang", "exit", "changed", "long", "unnamed")


class Accepted(Exception):
    """Raised by the stubs where real work (Ray, a training loop, a server) would begin."""


class _Hang(BaseException):
    pass


@dataclass
class Outcome:
    args: list[str]
    code: int | None  # None: no exit (a traceback or a hang)
    out: str = ""
    err: str = ""
    traceback: str | None = None
    hung: bool = False
    accepted: bool = False
    changed: list[str] = field(default_factory=list)  # files that existed before and differ (or vanished) after
    seconds: float = 0.0
    cwd: str = ""  # the folder the command ran in: a relative path may be named resolved against it


def tree_hashes(root: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                hashes[str(path)] = "unreadable"
    return hashes


def _stub_heavy_work() -> contextlib.ExitStack:
    """Patch the entry points of Ray sweeps, training loops and the UI server to raise Accepted."""
    import ray.tune  # noqa: F401 - imported here, outside a case's time limit (seconds on a busy machine)

    import babysweep.sweep.driver
    import babysweep.tracking.ui
    import babysweep.train.trainer

    stack = contextlib.ExitStack()
    real_setup = babysweep.train.trainer.setup

    def setup(config, out_dir):
        real_setup(config, out_dir)  # data, tokenizer, model, teachers, BLiMP pairs: every input is read
        raise Accepted("train")

    def refuse(what):
        def stub(*args, **kwargs):
            raise Accepted(what)
        return stub

    for module, name, stub in ((babysweep.train.trainer, "setup", setup), (babysweep.sweep.driver, "init_ray", refuse("sweep")),
                               (babysweep.tracking.ui, "serve_ui", refuse("ui"))):
        original = getattr(module, name)
        setattr(module, name, stub)
        stack.callback(setattr, module, name, original)
    return stack


class Project:
    """A temporary project folder; invoke() runs `babysweep ARGS` in it, in this process."""

    def __init__(self, base: Path | None = None, time_limit: float = TIME_LIMIT):
        self.root = Path(tempfile.mkdtemp(prefix="fuzz-", dir=base)).resolve()
        self.time_limit = time_limit

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def write(self, name: str, content: bytes | str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def invoke(self, *args, watch: Path | None = None) -> Outcome:
        """Run main() with ARGS; `watch` (default the project) is the tree whose files must not change."""
        from babysweep.cli import main

        argv = [str(a) for a in args]
        watched = watch or self.root
        before = tree_hashes(watched)
        out, err = io.StringIO(), io.StringIO()
        outcome = Outcome(argv, None, cwd=str(self.root))
        saved = (sys.argv, os.environ.get("BABYSWEEP_PROJECT"), os.environ.get("COLUMNS"), os.getcwd())

        def alarm(*_):
            raise _Hang()

        stubs = _stub_heavy_work()  # imports torch, Ray and MLflow once: outside the time limit
        previous = signal.signal(signal.SIGALRM, alarm)
        start = time.perf_counter()
        try:
            sys.argv = ["babysweep", *argv]
            os.environ["BABYSWEEP_PROJECT"] = str(self.root)
            os.environ["COLUMNS"] = "200"
            os.chdir(self.root)
            signal.setitimer(signal.ITIMER_REAL, self.time_limit)
            with stubs, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main()
            outcome.code = 0
        except SystemExit as exc:
            outcome.code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Accepted:
            outcome.code, outcome.accepted = 0, True
        except _Hang:
            outcome.hung = True
        except Exception:  # noqa: BLE001 - main() let it through: the user would see this traceback
            outcome.traceback = traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            outcome.seconds = time.perf_counter() - start
            sys.argv = saved[0]
            for key, value in (("BABYSWEEP_PROJECT", saved[1]), ("COLUMNS", saved[2])):
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            os.chdir(saved[3])
        outcome.out, outcome.err = out.getvalue(), err.getvalue()
        after = tree_hashes(watched)
        outcome.changed = [path for path, digest in before.items() if after.get(path) != digest]
        return outcome


# A command that succeeds may write here (report logs a run; a study that runs saves its progress file again,
# reformatted, its content kept); a refusal may not.
WRITES = ("mlruns/mlflow.db", ".study.json")


def check(outcome: Outcome, names: list[str] = (), must_fail: bool = False) -> list[str]:
    """The problems of one case, as (kind: detail) strings; [] when it behaved.

    names: words of which at least one must appear in a refusal (the file's name, a key, an option); an
    argument holding a NUL is refused by name before anything else (cli.main), so it counts as named too."""
    names = [*names, *(arg for arg in outcome.args if "\x00" in arg)]
    changed = [p for p in outcome.changed if outcome.code != 0 or not p.endswith(WRITES)]
    problems = []
    if outcome.traceback is not None or "Traceback" in outcome.err:
        problems.append(f"traceback: {(outcome.traceback or outcome.err).strip().splitlines()[-1][:300]}")
    if outcome.hung:
        problems.append(f"hang: no end within the time limit ({outcome.seconds:.0f} s)")
    if outcome.code is not None and outcome.code not in ((2,) if must_fail else (0, 2)):
        problems.append(f"exit: status {outcome.code}: {outcome.err.strip()[-300:]}")
    if changed:
        problems.append(f"changed: {', '.join(changed[:3])}")
    if outcome.code == 2:
        lines = [line for line in outcome.err.splitlines() if line.strip()]
        if len(lines) > MAX_LINES or not lines or not lines[-1].startswith("error: "):
            problems.append(f"long: {len(lines)} lines on stderr: {outcome.err[:300]!r}")
        elif names and not any(_names(outcome.err, str(name), outcome.cwd) for name in names):
            problems.append(f"unnamed: none of {list(names)[:4]} in {outcome.err.strip()[:300]!r}")
    return problems


def _one_line(text: str) -> str:
    try:
        from babysweep.cli import _one_line as escape  # how the CLI prints what a user typed
    except ImportError:
        return text
    return escape(text)


def _printed(name: str) -> set[str]:
    """How a name the user typed may appear in a message: as typed, escaped, or as a normalised path."""
    variants = {name, _one_line(name)}
    with contextlib.suppress(ValueError):
        variants.add(str(Path(name)))
    return variants


def _names(err: str, name: str, cwd: str = "") -> bool:
    """Whether the message names `name`: as printed (above), or as the whole path it means resolved against the
    command's folder (`--teacher ..` named as that folder, not as any path that merely begins with it)."""
    if any(variant in err for variant in _printed(name)):
        return True
    if not cwd or not name or "\x00" in name:
        return False
    resolved = os.path.normpath(os.path.join(cwd, name))
    return re.search(rf"(?<![\w/.-]){re.escape(resolved)}(?![\w/.-])", err) is not None


def kind(problem: str) -> str:
    return problem.split(":", 1)[0]
