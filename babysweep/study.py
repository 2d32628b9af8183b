"""A study: the whole research question in stages, each a normal sweep.

    study = load_study("search_spaces/study.yaml")
    result = run_study(study)        # tuning sweeps in order, then finalists, then the report

study.yaml names the tuning specs (paths relative to the study file, run in the given order, so
students come after the teachers they distil from), the finalists' seeds and the report's name.
Every stage is a sweep with its own folder and MLflow experiment, so `babysweep status` and the
MLflow UI show it like any other. Progress is kept in <storage>/<study>.study.json: a rerun of an
interrupted study skips the stages it finished and continues the interrupted sweep at its trial.

    study = load_study("search_spaces/storybooks/study.yaml", overrides={"train.max_steps": 5, "finalists.seeds": 2})

Overrides (`babysweep study --set KEY=VALUE`) of the study's own keys (finalists.seeds, report.name)
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
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from babysweep import paths
from babysweep.atomic import write_text_atomic
from babysweep.errors import UserError
from babysweep.finalists import DEFAULT_SEEDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FinalistsConfig(_Strict):
    seeds: int = Field(DEFAULT_SEEDS, ge=1)  # retrainings of each sweep's best config


class ReportConfig(_Strict):
    name: str | None = None  # reports/<name>/; default: the study's name


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
    seeds: int
    report: str
    overrides: dict = field(default_factory=dict)  # --set values of the sweeps' keys, applied to every sweep
    settings: dict = field(default_factory=dict)  # every --set value as given, the study's keys too (the state's record)


@dataclass
class StudyResult:
    name: str
    interrupted: bool
    report: Path | None = None  # report.md, once written
    stages: list[str] = field(default_factory=list)  # stages run (not skipped) in this call


def is_study_file(path: str | Path) -> bool:
    """A study file names its sweeps under `sweeps:`; a sweep spec has no such key."""
    from babysweep.spec import MAX_FILE_BYTES

    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            return False  # load_spec refuses it in one sentence
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, OverflowError, RecursionError, yaml.YAMLError):  # ValueError: not UTF-8, or a bad !!int
        return False  # load_spec then says what is wrong with it
    return isinstance(raw, dict) and "sweeps" in raw


STUDY_KEYS = ("finalists.seeds", "report.name")  # --set keys of the study file itself; the rest go to every sweep


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
    from babysweep.spec import check_size

    check_size(path, "study")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the study file ({exc}).") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}{at}: YAML syntax error: {exc.problem or exc.context}.") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: YAML syntax error: {exc}.") from None
    except RecursionError:
        raise UserError(f"{path}: the YAML is nested too deeply to read.") from None
    except (ValueError, OverflowError) as exc:  # a tagged scalar YAML cannot convert, e.g. !!int 0b102
        raise UserError(f"{path}: a YAML value cannot be read ({exc}).") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a study must be a mapping with name and sweeps.")
    raw = copy.deepcopy(raw)
    for_sweeps = _override_study(raw, path, overrides)
    try:
        config = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"][:1].lower() + err["msg"][1:]
        raise UserError(f"{path}: {where}: {msg}.") from None
    paths.check_name(config.name, f"{path}: name")
    if config.report.name is not None:  # reports/<name>/: a name such as ../x would write outside the project
        paths.check_name(config.report.name, f"{path}: report.name")
    specs = [(path.parent / s).resolve() for s in config.sweeps]
    for given, spec in zip(config.sweeps, specs):
        if not spec.is_file():
            raise UserError(f"{path}: sweeps: {given} does not exist (paths are relative to the study file).")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1, not {seeds}.")
    return Study(config.name, path, specs, seeds or config.finalists.seeds, config.report.name or config.name,
                 for_sweeps, overrides)


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
            or not isinstance(state.get("settings", {}), dict)):
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


def run_study(study: Study, *, address: str | None = None, storage: str | Path | None = None,
              tracking_uri: str | None = None, live: bool = True, say: Callable[[str], None] = print) -> StudyResult:
    """Run the study's stages in order, skipping those finished before; stops at an interrupted sweep. A
    second driver of the same study on this machine is refused while this one runs (run_lock)."""
    from babysweep import run_lock

    lock = run_lock.lock_path(paths.sweeps_dir(storage), f"{study.name}.study")
    with run_lock.held(lock, f"study '{study.name}'"):
        return _run_study(study, address=address, storage=storage, tracking_uri=tracking_uri, live=live, say=say)


def _run_study(study: Study, *, address: str | None, storage: str | Path | None, tracking_uri: str | None, live: bool,
               say: Callable[[str], None]) -> StudyResult:
    from babysweep.finalists import run_finalists
    from babysweep.report import write_report
    from babysweep.spec import load_spec
    from babysweep.sweep import run_sweep
    from babysweep.tracking import log_report

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
    _save_state(state_path, state)  # recorded before the first trial: an interrupted first sweep keeps them too
    stages = [(f"sweep {s.name}", s.fingerprint(), lambda s=s: run_sweep(s, address=address, storage=storage,
                                                                        tracking_uri=uri, live=live)) for s in specs]
    stages += [(f"finalists {n}", f"seeds={study.seeds}", lambda n=n: run_finalists(n, study.seeds, address=address,
                                                                                    storage=storage, tracking_uri=uri, live=live))
               for n in names]
    total = len(stages) + 1
    for number, (stage, key, run) in enumerate(stages, start=1):
        if state["done"].get(stage) == key:
            say(f"[{number}/{total}] {stage}: done before, skipped")
            continue
        say(f"[{number}/{total}] {stage}")
        outcome = run()
        result.stages.append(stage)
        if outcome.interrupted:
            result.interrupted = True
            return result
        if outcome.counts.get("unfinished"):
            raise UserError(f"{study.path}: stage '{stage}' ended with {outcome.counts['unfinished']} unfinished trials; "
                            f"run the study again to continue it.")
        state["done"][stage] = key
        _save_state(state_path, state)
    say(f"[{total}/{total}] report {study.report}")
    out_dir = paths.report_dir(study.report)
    result.report = write_report(uri, names, out_dir, study.report, log_run=partial(log_report, uri))
    result.stages.append(f"report {study.report}")
    return result


__all__ = ["STUDY_KEYS", "Study", "StudyResult", "load_study", "run_study"]
