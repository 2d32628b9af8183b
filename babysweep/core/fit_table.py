"""Tables that fit a terminal: short unique headers with a legend, numbers to 3-4 significant
figures, and columns left out (and named) rather than cells cut to ellipses.

    columns = [Column("trial", "trial"), Column("train.lr", header_for("train.lr"), priority=2), ...]
    table, legend, left_out = fit_table(title, columns, rows, width=console.width)

`rows` are lists of plain strings, one per column. Columns are kept in their order; when the table
is wider than `width`, the column with the highest `priority` number goes first (ties: the rightmost),
until it fits. The caller says where the left-out columns can be read (`babysweep status NAME TRIAL`).
No torch, Ray or MLflow here (rich only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

# Short names for the keys a sweep varies most often; any other key shows its last part.
ALIASES = {
    "train.lr": "lr", "train.weight_decay": "wd", "train.warmup_steps": "warmup", "train.batch_size": "batch",
    "train.scheduler": "sched", "train.epochs": "epochs", "train.seed": "seed", "train.grad_clip": "clip",
    "distill.temperature": "T", "distill.alpha": "alpha", "distill.teachers": "teachers",
    "model.arch": "arch", "model.dropout": "drop", "model.attention_dropout": "attn_drop", "model.hidden": "hidden",
    "model.layers": "layers", "model.heads": "heads", "antlm.schedule": "antlm", "antlm.mlm_ratio": "mlm",
    "tune/loss": "tune", "eval/loss": "dev", "eval/ppl": "ppl", "train/loss": "train",
    "blimp/overall": "blimp", "blimp_subset/overall": "blimp_sub",
}


def short_headers(keys: list[str], taken: tuple[str, ...] = ()) -> dict[str, str]:
    """A short header per key, unique among them and `taken`: the alias, else the key's last part;
    where two would read alike, each of them takes more of its key (`a.b.c` -> `b.c`, then `a.b.c`)."""
    def parts(key: str) -> list[str]:
        return [p for p in key.replace("/", ".").split(".") if p]

    depth = {k: 0 for k in keys}  # 0: alias or last part; n: the last n+1 parts
    while True:
        names = {}
        for key in keys:
            if depth[key] == 0 and key in ALIASES:
                names[key] = ALIASES[key]
            else:
                p = parts(key) or [key]
                names[key] = ".".join(p[-(depth[key] + 1):]) if depth[key] < len(p) else key
        counts: dict[str, int] = {}
        for name in [*names.values(), *taken]:
            counts[name] = counts.get(name, 0) + 1
        clashing = [k for k in keys if counts[names[k]] > 1 and names[k] != k]
        if not clashing:
            return names
        for key in clashing:
            depth[key] += 1


def number(value, digits: int = 4) -> str:
    """A number to `digits` significant figures, without trailing noise ("0.00312", "3.456", "1.2e-05")."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


@dataclass
class Column:
    key: str  # the full key (legend) or a plain name
    header: str
    priority: int = 0  # 0: always shown; higher numbers are left out first
    justify: str = "left"


def _render_width(table: Table) -> int:
    console = Console(width=100_000, record=False, color_system=None, legacy_windows=False)
    return console.measure(table).maximum


def _table(title: str | None, columns: list[Column], rows: list[list[str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  title_justify="left", collapse_padding=True)
    for column in columns:
        table.add_column(column.header, justify=column.justify, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def fit_table(title: str | None, columns: list[Column], rows: list[list[str]], width: int
              ) -> tuple[Table, list[Column], list[Column]]:
    """(the table, the columns shown, the columns left out) for a terminal `width` characters wide."""
    shown = list(range(len(columns)))
    while True:
        cols = [columns[i] for i in shown]
        table = _table(title, cols, [[row[i] for i in shown] for row in rows])
        if _render_width(table) <= width:
            return table, cols, [c for i, c in enumerate(columns) if i not in shown]
        droppable = [i for i in shown if columns[i].priority > 0]
        if not droppable:
            return table, cols, [c for i, c in enumerate(columns) if i not in shown]
        drop = max(droppable, key=lambda i: (columns[i].priority, i))
        shown.remove(drop)


def fit_tables(title: str | None, columns: list[Column], rows: list[list[str]], width: int, key: int = 0
               ) -> tuple[list[Table], list[Column], list[Column]]:
    """The table as fit_table makes it, then what it left out in further tables, each led by column `key`
    (the trial id); (tables, the columns shown, the columns that fit nowhere)."""
    table, shown, left_out = fit_table(title, columns, rows, width)
    tables, every = [table], list(shown)
    while left_out:
        index = {id(c): i for i, c in enumerate(columns)}
        rest = [columns[key]] + [Column(c.key, c.header, priority=1 + n, justify=c.justify) for n, c in enumerate(left_out)]
        cells = [[row[index[id(c)]] for c in [columns[key], *left_out]] for row in rows]
        table, more, still = fit_table(None, rest, cells, width)
        if len(more) == 1:  # not even one more column fits beside the key: name the rest instead
            return tables, every, left_out
        tables.append(table)
        every += more[1:]
        left_out = [c for c in left_out if any(c.key == s.key for s in still)]
    return tables, every, []


def legend(columns: list[Column], notes: dict[str, str] | None = None) -> str | None:
    """"lr = train.lr, T = distill.temperature, ...": the columns whose header is not their full key."""
    notes = notes or {}
    items = [f"{c.header} = {c.key}{notes.get(c.key, '')}" for c in columns if c.header != c.key]
    return ", ".join(items) if items else None
