"""The `babysweep` command line (typer).

    babysweep train SPEC.yaml --out runs/t1 [--resume] [--set train.epochs=1] [--teacher DIR ...]
    babysweep eval MODEL_DIR [--blimp SOURCE] [--json]
    babysweep data SOURCE
    babysweep validate SPEC.yaml

A mistake the user can make ends in one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from babysweep import __version__
from babysweep.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Hyperparameter sweeps and ablations for small-data LM pretraining.")
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"babysweep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    pass


def _overrides(items: list[str]) -> dict:
    from babysweep.spec import parse_override

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
    from babysweep.progress import TrainProgress
    from babysweep.spec import load_spec
    from babysweep.trainer import train as run_training

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
    scorer: str = typer.Option("causal", "--scorer", help="causal (lm-eval's rule) or pll (pseudo-log-likelihood)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Score a saved model on BLiMP minimal pairs."""
    import torch

    from babysweep import blimp as blimp_mod
    from babysweep.config import resolve
    from babysweep.data import blimp_source
    from babysweep.models import load_model

    if scorer not in ("causal", "pll"):
        raise UserError(f"--scorer: expected causal or pll, got {scorer!r}.")
    defaults = resolve({"eval": {"blimp": blimp}})
    source = blimp_source(defaults["eval"], defaults["data"])
    pairs = blimp_mod.load_pairs(source)
    model, tok = load_model(model_dir, "cuda" if torch.cuda.is_available() else "cpu")
    results = blimp_mod.evaluate(model, tok, pairs, batch_size=batch_size, scorer=scorer)
    if as_json:
        print(json.dumps(results, indent=1))
    else:
        console.print(blimp_mod.results_table(results))


@app.command()
def data(
    source: str = typer.Argument("builtin", help="'builtin', a BabyLM folder, a file or a glob."),
    vocab_size: int = typer.Option(8000, "--vocab-size"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Token cache folder (default sweeps/.cache)."),
) -> None:
    """Tokenise a corpus into the cache (once) and print its words, tokens, files and cache location."""
    from rich.table import Table

    from babysweep.config import resolve
    from babysweep.data import prepare

    cfg = resolve({"data": {"train": source, "dev": source, "tokenizer": {"vocab_size": vocab_size},
                            "cache_dir": str(cache_dir) if cache_dir else None}})["data"]
    with console.status("tokenising (once per corpus and tokenizer)..."):
        prepared = prepare(cfg)
    table = Table(title=f"data: {source}")
    for column in ("split", "files", "words", "tokens"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, files, tokens in (("train", prepared.train_files, prepared.train), ("dev", prepared.dev_files, prepared.dev)):
        meta = json.loads(Path(tokens.filename).with_suffix(".json").read_text())
        table.add_row(split, str(len(files)), f"{meta['words']:,}", f"{len(tokens):,}")
    console.print(table)
    console.print(f"tokenizer: {len(prepared.tokenizer):,} tokens; cache: {prepared.tokenizer_dir}")


@app.command()
def validate(
    spec: Path = typer.Argument(..., help="A spec YAML."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Check a spec without running it and print its resolved search space."""
    from babysweep.spec import describe, load_spec

    loaded = load_spec(spec, _overrides(set_))
    console.print(describe(loaded))
    console.print(f"[green]{spec}: valid[/green] ({len(loaded.distributions())} distributions)")


def main() -> None:
    from pydantic import ValidationError

    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        err_console.print(f"error: {where}: {first['msg']}.", markup=False, highlight=False)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
