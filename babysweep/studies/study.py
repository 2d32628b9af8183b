"""A study: the whole research question in stages, each a normal sweep.

    study = load_study("search_spaces/study.yaml")
    result = run_study(study)        # tuning sweeps in order, then finalists, then the report

study.yaml names the tuning specs (paths relative to the study file, run in the given order, so
students come after the teachers they distil from), the finalists' seeds and the report's name.
Every stage is a sweep with its own folder and MLflow experiment, so `babysweep status` and the
MLflow UI show it like any other. Progress is kept in <storage>/<study>.study.json: a rerun of an
interrupted study skips the stages it finished and continues the interrupted sweep at its trial.

    study = load_study("search_spaces/storybooks/study.yaml", overrides={"train.max_steps": 5, "finalists.seeds": 2})

With `finalists: {equal_flops_baseline: true}` the study adds a stage after the finalists: the baseline's
finalists trained longer, to the student finalists' training FLOPs (equal_flops.py), which the report shows
beside the equal-tokens baseline.

`finalists: {seeds: auto, first_seeds: 3, batch: 2, max_seeds: 11}` runs the finalists in looks: every
sweep's finalists with 3 seeds, then 2 more each (sweeps `<name>.final.b2`, ...) until every comparison
of the verdict is decided (report/verdict.py's verdict_family, report/decide.py's alpha spending) or 11
seeds are reached.

Before the report, a study with a student sweep fits the word-statistics floor once (studies/floor.py: a
trigram on the first student sweep's training tokens, scored as its finalists are), stored as
reports/<name>/ngram_floor.json and shown as the report's row "n-gram floor".

Overrides (`babysweep study --set KEY=VALUE`) of the study's own keys (finalists.*, report.name)
change the study; any other applies to every sweep of it, as `babysweep run --set` does, and so reaches
the finalists too (they retrain the tuning spec as it ran). They are recorded in the study state, and a
rerun with other values is refused: its finished stages were run with the recorded ones.
"""

from __future__ import annotations

import copy
import json
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from babysweep.core import metrics as M, paths
from babysweep.core.atomic import write_text_atomic
from babysweep.core.errors import UserError
from babysweep.spec.messages import yaml_read
from babysweep.report.decide import spending_schedule
from babysweep.studies.finalists import DEFAULT_SEEDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FinalistsConfig(_Strict):
    seeds: Union[int, str] = DEFAULT_SEEDS  # retrainings of each sweep's best config, or auto: in looks (below)
    first_seeds: int = Field(3, ge=2)  # auto: seeds of the first look
    batch: int = Field(2, ge=1)  # auto: seeds added at each later look
    max_seeds: int = Field(11, ge=2)  # auto: the cap; the last look has exactly this many
    # Also train the baseline's finalists longer, to the student finalists' training FLOPs (equal_flops.py),
    # shown in the report beside the equal-tokens baseline. Needs one student and one baseline sweep.
    equal_flops_baseline: bool = False

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("must be a number of seeds (1 or more) or auto")


class ReportConfig(_Strict):
    name: str | None = None  # reports/<name>/; default: the study's name
    # What the verdict compares, each with the same tests, intervals and Holm correction: blimp/overall, eval/loss,
    # and the BabyLM suite's suite/macro or suite/<column> (scored when the specs set eval.suite); higher is better
    # for all but eval/loss.
    metrics: list[str] = Field(default_factory=lambda: list(M.DEFAULT_VERDICT_METRICS))

    @field_validator("metrics", mode="before")
    @classmethod
    def _one(cls, value):  # `--set report.metrics=suite/macro`: one metric
        return [value] if isinstance(value, str) else value

    @field_validator("metrics")
    @classmethod
    def _known(cls, value):
        return list(M.check_verdict_metrics(value))


class StudyConfig(_Strict):
    name: str
    sweeps: list[str] = Field(min_length=1)  # spec files, relative to the study file
    finalists: FinalistsConfig = FinalistsConfig()
    report: ReportConfig = ReportConfig()


@dataclass
class Study:
    name: str
    path: Path
    specs: list[Path]  # absolute
    seeds: int  # fixed seeds; with `design`, the cap
    report: str
    overrides: dict = field(default_factory=dict)  # --set values of the sweeps' keys, applied to every sweep
    settings: dict = field(default_factory=dict)  # every --set value as given, the study's keys too (the state's record)
    design: tuple[int, int, int] | None = None  # finalists.seeds: auto: (first_seeds, batch, max_seeds)
    equal_flops: bool = False  # finalists.equal_flops_baseline
    metrics: tuple[str, ...] = M.DEFAULT_VERDICT_METRICS  # report.metrics: what the verdict compares


@dataclass
class StudyResult:
    name: str
    interrupted: bool
    report: Path | None = None  # report.md, once written
    stages: list[str] = field(default_factory=list)  # stages run (not skipped) in this call


def is_study_file(path: str | Path) -> bool:
    """A study file names its sweeps under `sweeps:`; a sweep spec has no such key."""
    from babysweep.spec.load import MAX_FILE_BYTES

    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            return False  # load_spec refuses it in one sentence
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, OverflowError, RecursionError, yaml.YAMLError):  # ValueError: not UTF-8, or a bad !!int
        return False  # load_spec then says what is wrong with it
    return isinstance(raw, dict) and "sweeps" in raw


STUDY_KEYS = ("finalists.seeds", "finalists.first_seeds", "finalists.batch", "finalists.max_seeds",
              "finalists.equal_flops_baseline", "report.name", "report.metrics")  # --set keys of the study file itself; the rest go to every sweep


def _override_study(raw: dict, path: Path, overrides: dict) -> dict:
    """Apply the study's own keys to raw; returns the overrides left for the sweeps."""
    for key in [k for k in overrides if k.split(".")[0] in StudyConfig.model_fields]:
        if key not in STUDY_KEYS:
            raise UserError(f"{path}: --set {key}: the study's own keys that --set can change are {', '.join(STUDY_KEYS)}.")
        section, leaf = key.split(".")
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
        raw[section][leaf] = overrides[key]
    return {k: v for k, v in overrides.items() if k.split(".")[0] not in StudyConfig.model_fields}


def load_study(path: str | Path, seeds: int | None = None, overrides: dict | None = None) -> Study:
    """Read and check a study file; `seeds` overrides finalists.seeds; `overrides` are --set values."""
    path = Path(path)
    overrides = dict(overrides or {})
    if not path.is_file():
        raise UserError(f"{path}: the study file does not exist.")
    from babysweep.spec.load import check_size

    check_size(path, "study")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the study file ({exc}).") from None
    with yaml_read(str(path)):
        raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a study must be a mapping with name and sweeps.")
    raw = copy.deepcopy(raw)
    for_sweeps = _override_study(raw, path, overrides)
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        raise UserError(f"{path}: {where}: {msg}.") from None
    paths.check_name(config.name, f"{path}: name")
    if config.report.name is not None:  # reports/<name>/: a name such as ../x would write outside the project
        paths.check_name(config.report.name, f"{path}: report.name")
    nul = next((s for s in config.sweeps if "\x00" in s), None)
    if nul is not None:  # no file name holds one; resolve() would raise ValueError
        raise UserError(f"{path}: sweeps: {nul!r} holds a NUL character; give the spec file's path.")
    specs = [(path.parent / s).resolve() for s in config.sweeps]
    for given, spec in zip(config.sweeps, specs):
        try:
            found = spec.is_file()
        except OSError as exc:  # a name the file system refuses (too long): is_file raises instead of saying False
            raise UserError(f"{path}: sweeps: {given[:80]}{'...' if len(given) > 80 else ''}: cannot be a spec file "
                            f"({exc.strerror}).") from None
        if not found:
            raise UserError(f"{path}: sweeps: {given} does not exist (paths are relative to the study file).")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1, not {seeds}.")
    fin, design = config.finalists, None
    if seeds is None and fin.seeds == "auto":
        if fin.max_seeds < fin.first_seeds:
            raise UserError(f"{path}: finalists.max_seeds ({fin.max_seeds}) must be at least finalists.first_seeds ({fin.first_seeds}).")
        if fin.equal_flops_baseline:
            raise UserError(f"{path}: finalists.equal_flops_baseline needs a fixed number of finalists.seeds, not auto.")
        design = (fin.first_seeds, fin.batch, fin.max_seeds)
    return Study(config.name, path, specs, seeds or (fin.max_seeds if design else fin.seeds), config.report.name or config.name,
                 for_sweeps, overrides, design=design, equal_flops=fin.equal_flops_baseline, metrics=tuple(config.report.metrics))


def _state_path(study: Study, storage: str | Path | None) -> Path:
    return paths.sweeps_dir(storage) / f"{study.name}.study.json"


def _load_state(path: Path) -> dict:
    """The study's progress; none yet is {"done": {}}. A damaged file is refused, not silently reset: it
    also records the --set values the study was started with."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {"done": {}}
    except (OSError, ValueError) as exc:
        state = exc
    if (not isinstance(state, dict) or not isinstance(state.get("done"), dict)
            or not isinstance(state.get("settings", {}), dict) or not isinstance(state.get("chunk_bos", True), bool)):
        raise UserError(f"{path}: the study's progress file is damaged; delete it and run the study again with the "
                        "same --set values (finished sweeps are not retrained: each continues from its own folder).")
    return state


def _save_state(path: Path, state: dict) -> None:
    write_text_atomic(path, json.dumps(state, indent=1), "the study's progress")  # a kill leaves the old state or the new one


def _check_settings(study: Study, state: dict, state_path: Path) -> None:
    """A study continues only with the --set values it was started with (a state without any: none)."""
    old, new = state.get("settings", {}), study.settings
    if not state["done"] and "settings" not in state:
        return  # nothing run yet
    same = lambda k: json.dumps(old.get(k), sort_keys=True) == json.dumps(new.get(k), sort_keys=True)  # noqa: E731
    changed = sorted(k for k in old.keys() | new.keys() if k not in old or k not in new or not same(k))
    if changed:
        was = ", ".join(f"{k}={json.dumps(old[k])}" for k in sorted(old)) or "no --set"
        raise UserError(f"{study.path}: study '{study.name}' was started with other --set values ({', '.join(changed)} "
                        f"differ; it ran with {was}, recorded in {state_path}); rerun it with those, or delete that file "
                        f"and the study's sweeps to start over.")


def _run_stage(study: Study, state: dict, state_path: Path, result: StudyResult, counter: str, stage: str, key: str,
               run: Callable, say: Callable[[str], None]) -> bool:
    """Run one stage unless the state says it is done with this key; False when it was interrupted."""
    if state["done"].get(stage) == key:
        say(f"{counter} {stage}: done before, skipped")
        return True
    say(f"{counter} {stage}")
    outcome = run()
    result.stages.append(stage)
    if outcome.interrupted:
        result.interrupted = True
        return False
    if outcome.counts.get("unfinished"):
        raise UserError(f"{study.path}: stage '{stage}' ended with {outcome.counts['unfinished']} unfinished trials; "
                        f"run the study again to continue it.")
    state["done"][stage] = key
    _save_state(state_path, state)
    return True


def run_study(study: Study, *, address: str | None = None, storage: str | Path | None = None,
              tracking_uri: str | None = None, live: bool = True, say: Callable[[str], None] = print) -> StudyResult:
    """Run the study's stages in order, skipping those finished before; stops at an interrupted sweep. A
    second driver of the same study on this machine is refused while this one runs (run_lock)."""
    from babysweep.core import run_lock
    from babysweep.sweep.driver import older_chunks
    lock = run_lock.lock_path(paths.sweeps_dir(storage), f"{study.name}.study")
    with run_lock.held(lock, f"study '{study.name}'"):
        state_path = _state_path(study, storage)
        # A study started before data.chunk_bos (a progress file without it) makes its later sweeps with the older
        # chunks too, so that its arms and seeds are trained alike (data/batches.py).
        chunk_bos = _load_state(state_path).get("chunk_bos", not state_path.is_file())
        if not chunk_bos:
            say(f"study '{study.name}' was started before data.chunk_bos: its sweeps keep the older chunk layout")
        with older_chunks(not chunk_bos):
            return _run_study(study, address=address, storage=storage, tracking_uri=tracking_uri, live=live, say=say,
                              chunk_bos=chunk_bos)


def _run_study(study: Study, *, address: str | None, storage: str | Path | None, tracking_uri: str | None, live: bool,
               say: Callable[[str], None], chunk_bos: bool = True) -> StudyResult:
    from babysweep.studies.finalists import few_trials, run_finalists
    from babysweep.report.build import write_report
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import run_sweep
    from babysweep.tracking.runs import log_report

    uri = paths.tracking_uri(tracking_uri)
    state_path = _state_path(study, storage)
    state = _load_state(state_path)
    _check_settings(study, state, state_path)
    result = StudyResult(study.name, interrupted=False)
    specs = [load_spec(p, study.overrides) for p in study.specs]  # every spec checked before the first trial runs
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"{study.path}: sweeps: two specs have the same sweep name ({', '.join(names)}).")
    state["settings"] = study.settings
    state["chunk_bos"] = chunk_bos  # the layout of every sweep this study makes (run_study)
    _save_state(state_path, state)  # recorded before the first trial: an interrupted first sweep keeps them too
    if len(state["done"]) < len(specs) * 2:  # before anything is written: how much disk it takes at most
        from babysweep.studies.disk_estimate import study_estimate

        for line in study_estimate(specs, study.seeds, paths.sweeps_dir(storage)):
            say(line)
    stages = [(f"sweep {s.name}", s.fingerprint(), lambda s=s: run_sweep(s, address=address, storage=storage,
                                                                        tracking_uri=uri, live=live)) for s in specs]
    finalists = partial(run_finalists, address=address, storage=storage, tracking_uri=uri, live=live)

    def warned(outcome, name: str):  # a finalist chosen among fewer than 3 fully trained trials is said
        if not outcome.interrupted:
            for line in few_trials(uri, name):
                say(f"  warning: {line}")
        return outcome

    if study.design is None:
        stages += [(f"finalists {n}", f"seeds={study.seeds}", lambda n=n: warned(finalists(n, study.seeds), n)) for n in names]
    if study.equal_flops:
        from babysweep.studies.equal_flops import run_equal_flops

        roles = {s.role: [t.name for t in specs if t.role == s.role] for s in specs}
        if len(roles.get("student", [])) != 1 or len(roles.get("baseline", [])) != 1:
            raise UserError(f"{study.path}: finalists.equal_flops_baseline needs one student sweep and one baseline "
                            f"sweep; the study has {', '.join(f'{len(v)} {k}' for k, v in sorted(roles.items()))}.")
        (student,), (baseline,) = roles["student"], roles["baseline"]
        stages.append((f"equal-flops {baseline}", f"seeds={study.seeds}",
                       lambda: run_equal_flops(baseline, student, study.seeds, address=address, storage=storage,
                                               tracking_uri=uri, live=live)))
    total = len(stages) + 1 + (len(names) * len(spending_schedule(*study.design)) if study.design else 0)  # auto: at most
    number = 0
    for stage, key, run in stages:
        number += 1
        if not _run_stage(study, state, state_path, result, f"[{number}/{total}]", stage, key, run, say):
            return result
    if study.design is not None:
        from babysweep.report.entries import collect
        from babysweep.report.verdict import verdict_family

        before = 0
        for look, (n, _level) in enumerate(spending_schedule(*study.design)):
            key = f"seeds={before}..{n - 1} of design first={study.design[0]},batch={study.design[1]},cap={study.design[2]}"
            for name in names:
                number += 1
                run = partial(finalists, name, n - before, look=look, first_seed=before, design=study.design)
                if not _run_stage(study, state, state_path, result, f"[{number}/{total}]", f"finalists {name} look {look + 1}",
                                  key, run, say):
                    return result
            before = n
            family = verdict_family(collect(uri, names, study.metrics).entries, study.metrics)["family"]
            arms = len({f["student"].name for f in family})
            open_ = [("" if arms < 2 else f"{f['student'].name}: ") + f"{f['col']} vs {f['other'].name}"
                     for f in family if f["outcome"] == "cannot tell"]
            if not open_:
                say(f"finalists: every comparison of the verdict is decided after {n} seeds")
                break
            say(f"finalists: after {n} seeds, not decided yet: {', '.join(open_)}"
                + ("" if n < study.design[2] else f"; the cap of {n} seeds is reached"))
        for name in names:
            warned(result, name)
        number = total - 1
    say(f"[{total}/{total}] report {study.report}")
    out_dir = paths.report_dir(study.report)
    students = [s.name for s in specs if s.role == "student"]
    if students:  # the word-statistics floor, once, from the student finalists' data (a row of the report, no verdict)
        from babysweep.studies.floor import write_floor

        say(f"  n-gram floor: a Kneser-Ney trigram on the training tokens of {students[0]}'s config")
        try:
            write_floor(uri, students[0], out_dir, say)
        except UserError as exc:  # the report stands without its floor row
            say(f"  n-gram floor left out: {exc}")
    result.report = write_report(uri, names, out_dir, study.report, log_run=partial(log_report, uri), metrics=study.metrics)
    result.stages.append(f"report {study.report}")
    return result


__all__ = ["STUDY_KEYS", "Study", "StudyResult", "load_study", "run_study"]
