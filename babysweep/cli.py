"""The `babysweep` command line (typer).

    babysweep train SPEC.yaml --out runs/t1 [--resume] [--set train.epochs=1] [--teacher DIR ...]
    babysweep eval MODEL_DIR [--blimp SOURCE] [--rule babylm|lm-eval] [--scorer causal|pll] [--json]
    babysweep eval MODEL_DIR --suite babylm --data DIR [--task NAME] [--json]
    babysweep eval RUN_DIR --suite babylm --data DIR    # each chck_<n>M folder in it (train.babylm_checkpoints)
    babysweep data SOURCE
    babysweep validate SPEC.yaml
    babysweep run SPEC.yaml | resume NAME | status [NAME] | ui [SWEEP] [--open]
    babysweep finalists SWEEP [--seeds 5]
    babysweep report SWEEP... [--name NAME]
    babysweep ablate SWEEP|CONFIG.yaml [--seeds 3]
    babysweep study search_spaces/study.yaml [--seeds 5] [--set train.epochs=1]
    babysweep cache show | clear

A mistake the user can make ends in one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from babysweep import __version__
from babysweep.core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Hyperparameter sweeps and ablations for small-data LM pretraining.")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"babysweep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    pass


def _overrides(items: list[str]) -> dict:
    from babysweep.spec.overrides import parse_override

    return dict(parse_override(item) for item in items)


SET_HELP = "Override a spec key, e.g. --set train.epochs=1 (repeatable)."


@app.command()
def train(
    spec: Path = typer.Argument(..., help="A spec YAML whose values are all fixed (a training config)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints/, final/ (HF model), metrics.jsonl."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    teacher: list[Path] = typer.Option([], "--teacher", help="A teacher model folder (repeatable); replaces distill.teachers."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Train one model without Ray or MLflow, with a progress bar."""
    from babysweep.train.progress import TrainProgress
    from babysweep.spec.load import load_spec
    from babysweep.train.trainer import train as run_training

    loaded = load_spec(spec, _overrides(set_))
    if not loaded.is_fixed():
        names = ", ".join(loaded.distributions())
        raise UserError(f"{spec}: {names} are distributions; `babysweep train` needs fixed values (use `babysweep run` to sweep).")
    teachers = [str(p.expanduser().resolve()) for p in teacher] or None
    if loaded.teachers_from_sweep is not None and teachers is None:
        raise UserError(f"{spec}: distill.teachers names a sweep; give the teacher folders with --teacher DIR.")
    config = loaded.materialize({}, teachers=teachers)
    with TrainProgress(console) as bar:
        final = run_training(config, out, reporter=bar.epoch_done, resume=resume, progress=bar.update)
    console.print(f"[bold]done[/bold]: model in {out / 'final'}, metrics in {out / 'metrics.jsonl'}")
    console.print_json(json.dumps({k: v for k, v in final.items() if not k.startswith("blimp/paradigm/")}))


@app.command("eval")
def eval_(
    model_dir: Path = typer.Argument(..., help="A Hugging Face causal LM folder (ours or anyone's)."),
    blimp: str = typer.Option("builtin", "--blimp", help="BLiMP jsonl folder or file, or 'builtin'."),
    scorer: str = typer.Option("causal", "--scorer", help="causal (summed log-probabilities, under --rule) or pll (pseudo-log-likelihood, for MLM-trained models)."),
    rule: str = typer.Option("babylm", "--rule", help="causal scoring rule: babylm (the BabyLM 2025 pipeline's: the tokenizer's own special tokens, first token unscored, fields pooled over pairs) or lm-eval (lm-evaluation-harness's blimp tasks: BOS, then ' ' + sentence)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, max=1_000_000),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    suite: Optional[str] = typer.Option(None, "--suite", help="babylm: BabyLM's zero-shot suite (BLiMP, supplement, EWoK, entity tracking, WUG, reading) as the 2025 pipeline's causal backend scores it, from --data."),
    data_dir: Optional[Path] = typer.Option(None, "--data", help="With --suite: a folder in the layout of the pipeline's evaluation_data/full_eval."),
    task: list[str] = typer.Option([], "--task", help="With --suite: score only this task (repeatable)."),
) -> None:
    """Score a saved model on BLiMP minimal pairs, or on BabyLM's zero-shot suite (--suite babylm --data DIR)."""
    import torch

    from babysweep.eval import blimp as blimp_mod
    from babysweep.core.config import RunConfig
    from babysweep.data import blimp_source
    from babysweep.lm.models import load_model

    if suite is not None or data_dir is not None or task:
        from babysweep.eval import suite as suite_mod
        if suite != "babylm":
            raise UserError(f"--suite: expected babylm, got {suite!r}." if suite else "--data and --task need --suite babylm.")
        if data_dir is None:
            raise UserError("--suite babylm needs --data DIR (the pipeline's evaluation_data/full_eval layout).")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        warn = lambda line: err_console.print(escape(line), style="yellow")
        if not (Path(model_dir).expanduser() / "config.json").is_file() and suite_mod.checkpoint_folders(model_dir):
            # a run folder with BabyLM's checkpoints (train.babylm_checkpoints): each, in word order
            results = suite_mod.evaluate_checkpoints(model_dir, data_dir, task or None, batch_size, device, on_skip=warn)
            if as_json:
                print(json.dumps(results, indent=1))
            else:
                console.print(suite_mod.checkpoints_table(results))
            return
        model, tok = load_model(model_dir, device)
        results = suite_mod.evaluate(model, tok, data_dir, task or None, batch_size, on_skip=warn)
        if as_json:
            print(json.dumps(results, indent=1))
        else:
            console.print(suite_mod.summary_table(results))
        return
    if scorer not in ("causal", "pll"):
        raise UserError(f"--scorer: expected causal or pll, got {scorer!r}.")
    if rule not in blimp_mod.RULES:
        raise UserError(f"--rule: expected babylm or lm-eval, got {rule!r}.")
    defaults = RunConfig.of({"eval": {"blimp": blimp}})
    source = blimp_source(defaults.eval, defaults.data)
    pairs = blimp_mod.load_pairs(source)
    model, tok = load_model(model_dir, "cuda" if torch.cuda.is_available() else "cpu")
    results = blimp_mod.evaluate(model, tok, pairs, batch_size=batch_size, scorer=scorer, rule=rule)
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        console.print(blimp_mod.results_table(results))


@app.command()
def data(
    source: str = typer.Argument("builtin", help="'builtin', a BabyLM folder, a file or a glob."),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=300, max=10_000_000),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Token cache folder (default sweeps/.cache)."),
) -> None:
    """Tokenise a corpus into the cache (once) and print its words, tokens, files and cache location."""
    from rich.table import Table

    from babysweep.core.config import RunConfig
    from babysweep.data import prepare

    cfg = RunConfig.of({"data": {"train": source, "dev": source, "tokenizer": {"vocab_size": vocab_size},
                                 "cache_dir": str(cache_dir) if cache_dir else None}}).data
    with console.status("tokenising (once per corpus and tokenizer)..."):
        prepared = prepare(cfg)
    table = Table(title=escape(f"data: {source}"))  # a glob's [..] is text, not rich markup
    for column in ("split", "files", "words", "tokens"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, files, tokens in (("train", prepared.train_files, prepared.train), ("dev", prepared.dev_files, prepared.dev)):
        meta = json.loads(Path(tokens.filename).with_suffix(".json").read_text())
        table.add_row(split, str(len(files)), f"{meta['words']:,}", f"{len(tokens):,}")
    console.print(table)
    console.print(escape(f"tokenizer: {len(prepared.tokenizer):,} tokens; cache: {prepared.tokenizer_dir}"))


@app.command()
def validate(
    spec: Path = typer.Argument(..., help="A spec YAML."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Check a spec, or a study file and every spec it names, without running anything; print the
    resolved search spaces. Data or teacher paths missing on this machine are warnings here (the spec
    may be meant for another machine); `run` refuses them."""
    from babysweep.studies.study import is_study_file, load_study

    overrides = _overrides(set_)
    if not is_study_file(spec):
        _validate_spec(spec, overrides)
        return
    study = load_study(spec, overrides=overrides)
    for path in study.specs:
        _validate_spec(path, study.overrides)
    seeds = (f"seeds added in looks ({study.design[0]}, then {study.design[1]} more each, up to {study.design[2]}) until the "
             f"verdict is decided" if study.design else f"{study.seeds} seeds each")
    console.print(f"[green]{spec}: valid study[/green] '{study.name}': {len(study.specs)} sweeps, then finalists with "
                  f"{seeds} and the report '{study.report}'")


VALIDATE_DRAWS = 50  # random configs materialised by validate: an invalid combination shows before a trial fails on it


def _validate_spec(path: Path, overrides: dict) -> None:
    import random

    from babysweep.core.errors import UserError as Invalid
    from babysweep.spec.space import sample_params
    from babysweep.spec.sweep_spec import describe
    from babysweep.spec.load import load_spec, missing_paths

    loaded = load_spec(path, overrides, check_paths=False)
    for line in missing_paths(loaded):
        err_console.print(f"warning: {path}: {line} on this machine; `babysweep run` needs it", markup=False, highlight=False)
    rng, bad = random.Random(0), []
    for _ in range(VALIDATE_DRAWS if loaded.distributions() else 0):
        try:
            loaded.materialize(sample_params(loaded, rng), teachers=[] if loaded.teachers_from_sweep else None)
        except (Invalid, ValueError) as exc:
            bad.append(str(exc))
    if bad:
        err_console.print(f"warning: {len(bad)} of {VALIDATE_DRAWS} random draws from {path} give an invalid config; "
                          f"those trials will fail, e.g. {bad[0]}", markup=False, highlight=False)
    console.print(describe(loaded))
    console.print(f"[green]{path}: valid[/green] ({len(loaded.distributions())} distributions)")


def _print_result(result) -> None:
    from babysweep.core.config import flatten

    counts = result.counts
    console.print(f"sweep [bold]{result.name}[/bold]: {counts['finished']} finished, {counts['errored']} errored, "
                  f"{counts['unfinished']} unfinished of {counts['trials']} trials; folder {result.folder}")
    if result.best:
        best = result.best
        console.print(f"[bold]best trial[/bold] {best['trial_id']}: model {best['model_dir']}")
        console.print("  sampled: " + ", ".join(f"{k}={v}" for k, v in best["params"].items()))
        shown = {k: round(v, 5) for k, v in best["metrics"].items() if not k.startswith("blimp/paradigm/")}
        console.print("  metrics: " + ", ".join(f"{k}={v}" for k, v in shown.items()), highlight=False)
        console.print("  config: " + ", ".join(f"{k}={v}" for k, v in flatten(best["config"]).items()), highlight=False)
    if result.interrupted:
        err_console.print(f"interrupted: run the same command again, or `babysweep resume {result.name}`, to continue where it stopped.")
        raise typer.Exit(130)


SWEEP_OPTIONS = dict(
    address=typer.Option(None, "--address", help="Ray cluster address (else RAY_ADDRESS, else a local Ray)."),
    storage=typer.Option(None, "--storage", help="Sweep state folder (default <project>/sweeps), shared by every node of a cluster, or an object-store URI (s3://BUCKET/PREFIX)."),
    tracking_uri=typer.Option(None, "--tracking-uri", help="MLflow store (else MLFLOW_TRACKING_URI, else mlruns/)."),
)


@app.command()
def run(
    spec: Path = typer.Argument(..., help="A sweep spec YAML, e.g. search_spaces/teachers.yaml."),
    name: Optional[str] = typer.Option(None, "--name", help="Run under another sweep name than the spec's."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete this sweep's state and start over."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    address: Optional[str] = SWEEP_OPTIONS["address"],
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """Run a sweep with Ray Tune, or continue it if it was interrupted."""
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import run_sweep

    overrides = _overrides(set_)
    if name:
        overrides["name"] = name
    loaded = load_spec(spec, overrides)
    _print_result(run_sweep(loaded, fresh=fresh, address=address, storage=storage, tracking_uri=tracking_uri))


@app.command()
def resume(
    name: str = typer.Argument(..., help="The sweep's name (its folder under sweeps/)."),
    address: Optional[str] = SWEEP_OPTIONS["address"],
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """Continue an interrupted sweep from its folder."""
    from babysweep.core.paths import SPEC_FILE, sweep_folder
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import run_sweep

    saved = sweep_folder(name, storage) / SPEC_FILE
    if not saved.is_file():
        raise UserError(f"{saved.parent}: no sweep named '{name}' to resume.")
    loaded = load_spec(saved)
    _print_result(run_sweep(loaded, address=address, storage=storage, tracking_uri=tracking_uri))


@app.command()
def status(
    name: Optional[str] = typer.Argument(None, help="A sweep name; without it, every sweep is listed."),
    trial: Optional[str] = typer.Argument(None, help="A trial id (or its start): everything known about that trial."),
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
) -> None:
    """Show a sweep's trials (state, epoch, metrics, the values that vary) from its folder, without starting Ray,
    fitted to the terminal's width; with TRIAL, that trial in full; then where the disk space went."""
    from babysweep.core.paths import SPEC_FILE, project_dir, sweeps_dir
    from babysweep.sweep.status_view import disk_lines, sweep_table, trial_lines

    root = sweeps_dir(storage)
    if trial is not None:
        for line in trial_lines(root, name, trial):
            console.print(line, markup=False, highlight=False)
        return
    names = [name] if name else sorted(p.name for p in root.glob("*") if (p / SPEC_FILE).is_file())
    if not names:
        raise UserError(f"{root}: holds no sweep yet (run `babysweep run SPEC`).")
    for sweep_name in names:
        for part in sweep_table(root, sweep_name, console.width):
            console.print(part, highlight=False)
        console.print()
    line = _teacher_cache_line(root / ".cache")
    if line:
        console.print(line, markup=False, highlight=False)
    for line in disk_lines(project_dir(), root):
        console.print(line, markup=False, highlight=False)


def _teacher_cache_line(folder: Path) -> str | None:
    from babysweep.train import teacher_cache_files as files
    root = files.cache_root(folder)
    size, complete = files.usage(root)
    if not size:
        return None
    return f"teacher cache: {files.human(size)} in {complete} complete epoch entries ({root}); free it with `babysweep cache clear`"


cache_app = typer.Typer(no_args_is_help=True, help="The teacher-output cache of student sweeps (docs/teacher-cache.md).")
app.add_typer(cache_app, name="cache")
CACHE_DIR_HELP = "A data.cache_dir given in the specs (default <sweeps>/.cache)."


def _cache_folder(storage: str | None, cache_dir: Path | None) -> Path:
    from babysweep.core.paths import sweeps_dir

    return cache_dir.expanduser().resolve() if cache_dir else sweeps_dir(storage) / ".cache"


@cache_app.command("show")
def cache_show(storage: Optional[str] = SWEEP_OPTIONS["storage"],
               cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP)) -> None:
    """Size and location of the teacher cache."""
    from babysweep.train import teacher_cache_files as files
    folder = _cache_folder(storage, cache_dir)
    console.print(_teacher_cache_line(folder) or f"teacher cache: empty ({files.cache_root(folder)})", markup=False, highlight=False)


@cache_app.command("clear")
def cache_clear(storage: Optional[str] = SWEEP_OPTIONS["storage"],
                cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_DIR_HELP)) -> None:
    """Delete the teacher cache (entries being built are left alone); trials rebuild what they need."""
    from babysweep.train import teacher_cache_files as files
    root = files.cache_root(_cache_folder(storage, cache_dir))
    freed = files.clear(root)
    left = files.usage(root)[0]
    console.print(f"teacher cache: freed {files.human(freed)} in {root}" + (f"; {files.human(left)} still being built" if left else ""),
                  markup=False, highlight=False)


SEEDS_HELP = "Seeds per finalist config (each retrained that many times)."
MAX_SEEDS = 10_000  # a bound, so that a typo is a usage error and not an overflow deep inside


@app.command()
def finalists(
    sweep: str = typer.Argument(..., help="A finished tuning sweep; its finalists run as sweep '<SWEEP>.final'."),
    seeds: int = typer.Option(5, "--seeds", min=1, max=MAX_SEEDS, help=SEEDS_HELP),  # finalists.DEFAULT_SEEDS
    address: Optional[str] = SWEEP_OPTIONS["address"],
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """Retrain the best config of a sweep (of each architecture, for teachers) with fresh seeds."""
    from babysweep.studies.finalists import run_finalists

    _print_result(run_finalists(sweep, seeds, address=address, storage=storage, tracking_uri=tracking_uri))


@app.command()
def report(
    sweeps: list[str] = typer.Argument(..., help="Tuning sweeps, e.g. teachers students baselines."),
    name: Optional[str] = typer.Option(None, "--name", help="Report name: reports/<name>/ (default: the sweeps joined by '-')."),
    metric: list[str] = typer.Option([], "--metric", help="A metric the verdict compares (repeatable; a study's report.metrics): blimp/overall, eval/loss, suite/macro or suite/<column>. Default: blimp/overall and eval/loss."),
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """Does distillation beat tuned teachers? Writes reports/<name>/report.md with figures, logged to MLflow."""
    from babysweep.core import paths
    from babysweep.report.build import write_report
    from babysweep.tracking.runs import log_report

    uri = paths.tracking_uri(tracking_uri)
    name = paths.check_name(name or "-".join(sweeps), "--name" if name else "the report's name (the sweeps joined by '-')")
    path = write_report(uri, sweeps, paths.report_dir(name), name, log_run=partial(log_report, uri), metrics=metric or None)
    console.print(_verdict_line(path))
    console.print(f"report: {path}")


def _verdict_line(path: Path) -> str:
    data = json.loads((path.parent / "report.json").read_text())
    return "\n".join([f"verdict: {data['verdict']}", *(f"warning: {w}" for w in data["warnings"])])


@app.command()
def ablate(
    source: str = typer.Argument(..., help="A sweep (its best config is the base) or a spec file with fixed values."),
    seeds: int = typer.Option(3, "--seeds", min=1, max=MAX_SEEDS, help="Seeds per variant."),
    name: Optional[str] = typer.Option(None, "--name", help="Sweep and report name (default '<base>.ablation')."),
    address: Optional[str] = SWEEP_OPTIONS["address"],
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """One-factor-at-a-time ablations of a base config (no distillation, single teachers, T=1, no AntLM)."""
    from babysweep.studies.ablation_sweep import run_ablation

    result, path = run_ablation(source, seeds, name=name, address=address, storage=storage, tracking_uri=tracking_uri)
    if path is not None:
        console.print(path.read_text(), markup=False, highlight=False)
        console.print(f"ablation table: {path}")
    _print_result(result)


@app.command()
def study(
    study_file: Path = typer.Argument(..., help="A study file, e.g. search_spaces/study.yaml."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, max=MAX_SEEDS, help=SEEDS_HELP + " Default: the study file's finalists.seeds."),
    set_: list[str] = typer.Option([], "--set", help="Override a key of every sweep of the study, e.g. --set train.epochs=1, "
                                   "or the study's finalists.* or report.name or report.metrics (repeatable; a rerun must repeat them)."),
    address: Optional[str] = SWEEP_OPTIONS["address"],
    storage: Optional[str] = SWEEP_OPTIONS["storage"],
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """The whole question in order: tuning sweeps, finalists with seeds, then the report. Rerun to continue."""
    from babysweep.studies.study import load_study, run_study

    loaded = load_study(study_file, seeds, _overrides(set_))
    result = run_study(loaded, address=address, storage=storage, tracking_uri=tracking_uri,
                       say=lambda line: console.print(f"[bold]study {loaded.name}[/bold] {line}"))
    if result.interrupted:
        again = "".join(f" --set {item}" for item in set_)
        err_console.print(f"interrupted: run `babysweep study {study_file}{again}` again to continue where it stopped.")
        raise typer.Exit(130)
    console.print(_verdict_line(result.report))
    console.print(f"report: {result.report}")


@app.command()
def ui(
    sweep: Optional[str] = typer.Argument(None, help="A sweep: print links to its trials and to their comparison."),
    open_: bool = typer.Option(False, "--open", help="Open the links (or the UI) in a web browser."),
    port: int = typer.Option(5000, "--port", min=0, max=65535),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address; loopback unless you mean to share it."),
    tracking_uri: Optional[str] = SWEEP_OPTIONS["tracking_uri"],
) -> None:
    """Open MLflow's UI on the project's store and print deep links: each sweep's trials sorted by its
    metric, and its finished trials charted: parallel coordinates of the metric over the parameters that vary,
    most important first (PED-ANOVA, once enough trials finished), then the metric against the first of them."""
    import webbrowser

    from babysweep.core import paths
    from babysweep.tracking.ui import serve_ui, ui_address, wait_until_up
    from babysweep.tracking.links import sweeps_link, ui_links

    uri = paths.tracking_uri(tracking_uri)
    address = ui_address(host, port)
    try:
        links = ui_links(uri, address, sweep, rank=_importance_order)
    except UserError:
        if sweep is not None:
            raise
        links = []  # no store yet: the UI still opens, empty
    process, address = serve_ui(uri, host=host, port=port)
    try:
        if not wait_until_up(address, timeout=60, process=process):
            raise UserError(f"MLflow's UI did not start on {address} (is the port taken? try --port)")
        console.print(f"MLflow UI on [bold]{address}[/bold] (store {uri}); Ctrl-C to stop.")
        for link in links:
            console.print(f"[bold]{link.sweep}[/bold] trials by its metric: {link.runs}", highlight=False)
            console.print(f"[bold]{link.sweep}[/bold] their charts: {link.charts}", highlight=False)
            console.print(f"[bold]{link.sweep}[/bold] compare {link.trials} finished trials (parallel coordinates of "
                          f"the metric over {', '.join(link.params) or 'no varying parameter'}): {link.compare}", highlight=False)
            console.print(f"[bold]{link.sweep}[/bold] the same in MLflow's compare page (its own choice of axes): "
                          f"{link.compare_page}", highlight=False)
        if len(links) > 1:
            console.print(f"[bold]all sweeps[/bold], their summaries charted: {sweeps_link(address, links)}", highlight=False)
        if open_:
            for url in ([links[0].runs, links[0].compare] if sweep and links else [address]):
                webbrowser.open(url)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate()
        process.wait(timeout=10)


def _importance_order(runs: list[dict], metric: str, mode: str) -> list[str] | None:
    """The sampled keys by PED-ANOVA importance for the sweep's metric, most important first; None when unknown."""
    from babysweep.report.importance import importances

    values, _note = importances(runs, metric, mode)
    return sorted(values, key=lambda k: -values[k]) if values else None


def _click_errors() -> tuple[type, ...]:
    """Click's error class, and typer's own copy of it (typer >= 0.20 ships a vendored click)."""
    import click

    return (click.ClickException, *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))


def _one_line(text: str) -> str:
    """An error message as one printable line: control characters (a user's input may hold any) escaped."""
    import unicodedata

    return "".join(ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" or ch.isprintable() else ascii(ch)[1:-1]
                   for ch in text)


def main() -> None:
    from pydantic import ValidationError

    from babysweep.core.storage_errors import find as find_storage_error

    nul = next((arg for arg in sys.argv[1:] if "\x00" in arg), None)
    if nul is not None:  # no path, name or URI can hold one; the OS calls deep inside would raise ValueError
        err_console.print(_one_line(f"error: {nul}: an argument cannot hold a NUL character."), markup=False, highlight=False)
        sys.exit(2)
    empty = next((i for i, arg in enumerate(sys.argv[1:], start=1) if not arg.strip()), None)
    if empty is not None:  # an unset shell variable: as a path it would mean '.', the project itself
        before = " ".join(sys.argv[1:empty])
        err_console.print(_one_line(f"error: `babysweep {before}` is followed by an empty argument (argument {empty}); "
                                    "give a file, a name or a value."), markup=False, highlight=False)
        sys.exit(2)
    try:
        code = app(standalone_mode=False, prog_name="babysweep")
    except UserError as exc:
        err_console.print(_one_line(f"error: {exc}"), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        err_console.print(_one_line(f"error: {where}: {first['msg']}."), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        found = find_storage_error(exc)  # a full disk met inside Ray or MLflow's calls, wrapped by them
        if found is not None:
            err_console.print(_one_line(f"error: {found}"), markup=False, highlight=False, soft_wrap=True)
            sys.exit(2)
        if isinstance(exc, RuntimeError) and "home directory" in str(exc):  # Path.expanduser on ~NAME: no such user
            given = next((a for a in sys.argv[1:] if a.startswith("~") or "=~" in a), "a path given")
            err_console.print(_one_line(f"error: {given}: its ~ names no home directory on this machine (no such user, "
                                        "or HOME unset); give the path in full."), markup=False, highlight=False, soft_wrap=True)
            sys.exit(2)
        if isinstance(exc, _click_errors()):  # an unknown option, a missing argument: one line, exit 2
            ctx = getattr(exc, "ctx", None)
            hint = f" See `{ctx.command_path} --help`." if ctx is not None else ""
            err_console.print(_one_line(f"error: {exc.format_message().rstrip('.')}.{hint}"), markup=False, highlight=False,
                              soft_wrap=True)
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
