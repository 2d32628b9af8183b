"""Figures of a report as PNG files (matplotlib's Agg canvas; no pyplot, so no global state or GUI).

    factor_plots("students", runs, "eval/loss", out / "factors_students.png")  # metric vs T, alpha, MLM share
    learning_curves(entries, out / "learning_curves.png")                       # eval/loss per epoch, teachers' best marked
    blimp_bars(rows, out / "blimp_overall.png")                                 # mean ± std per entry

Each returns the path it wrote, or None when there is nothing to draw (no run varies a factor,
no histories, no BLiMP values).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from babysweep.core.records import stopped_early
from babysweep.core.schedule import parse_schedule, schedule_from_ratio
from babysweep.report.regime import best_point

ROLE_COLOURS = {"teacher": "tab:blue", "student": "tab:orange", "baseline": "tab:grey"}
FACTORS = (("distill.temperature", "distillation temperature"),
           ("distill.alpha", "alpha (weight of the hard-label loss)"),
           ("antlm.mlm_share", "AntLM: share of MLM epochs"))


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def mlm_share(params: dict[str, str]) -> float | None:
    """The share of MLM epochs a run's AntLM settings give (0 = all CLM); None if unreadable."""
    schedule = params.get("antlm.schedule")
    try:
        if schedule not in (None, "", "None"):
            phases = parse_schedule(schedule)
        else:
            ratio, epochs = _float(params.get("antlm.mlm_ratio", 0)) or 0.0, _float(params.get("train.epochs"))
            if not epochs:
                return ratio
            phases = schedule_from_ratio(int(epochs), ratio)  # what the trainer ran, after rounding
    except ValueError:
        return None
    return phases.count("mlm") / len(phases) if phases else None


def _factor_value(run: dict, key: str) -> float | None:
    return mlm_share(run.get("params", {})) if key == "antlm.mlm_share" else _float(run.get("params", {}).get(key))


def factor_plots(sweep: str, runs: list[dict], metric: str, path: Path) -> Path | None:
    """The sweep's metric against each distillation / AntLM factor that its trials vary."""
    panels = []
    for key, label in FACTORS:
        points = [(_factor_value(r, key), r.get("metrics", {}).get(metric), stopped_early(r))
                  for r in runs if r.get("status") == "FINISHED"]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if len({x for x, _, _ in points}) > 1:
            panels.append((label, points))
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, points) in zip(axes, panels):
        for stopped, style in ((False, dict(color="tab:orange", label="ran every epoch")),
                               (True, dict(facecolors="none", edgecolors="tab:orange", label="stopped early by the scheduler"))):
            xs = [x for x, _, s in points if s == stopped]
            ys = [y for _, y, s in points if s == stopped]
            if xs:
                ax.scatter(xs, ys, **style)
        xs = [x for x, _, _ in points]
        if min(xs) > 0 and max(xs) >= 10 * min(xs):  # log-uniform alpha (students.yaml): spread the small values
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{sweep}: {metric} per trial")
    return _save(fig, path)


def learning_curves(entries, path: Path) -> Path | None:
    """Dev loss per epoch of each entry's runs: one colour per entry, one line per seed."""
    drawn = [(e, [s.history for s in e.seeds if s.history]) for e in entries]
    drawn = [(e, h) for e, h in drawn if h]
    if not drawn:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    colours = [f"C{i}" for i in range(10)]
    marked = False
    for i, (entry, histories) in enumerate(drawn):
        for j, history in enumerate(histories):
            ax.plot([s for s, _ in history], [v for _, v in history], marker="o", markersize=3, alpha=0.8,
                    color=colours[i % 10], label=f"{entry.name} (n={len(histories)})" if j == 0 else None)
            if entry.role == "teacher":  # its best epoch: before the last one, the teacher overfit (as the papers' did)
                step, value = best_point(history)
                ax.scatter([step], [value], marker="*", s=90, color=colours[i % 10], edgecolors="black", linewidths=0.6,
                           zorder=3, label=None if marked else "a teacher's best epoch (lowest dev loss)")
                marked = True
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("Learning curves of the compared runs")
    return _save(fig, path)


def blimp_bars(rows: list[dict], path: Path) -> Path | None:
    """BLiMP overall (%) per entry, mean with ± std error bars, coloured by role."""
    rows = [r for r in rows if r.get("blimp_mean") is not None]
    if not rows:
        return None
    fig = Figure(figsize=(max(4.0, 1.3 * len(rows)), 3.8))
    ax = fig.subplots()
    xs = range(len(rows))
    ax.bar(xs, [r["blimp_mean"] for r in rows], yerr=[r["blimp_std"] or 0.0 for r in rows], capsize=4,
           color=[ROLE_COLOURS.get(r["role"], "tab:green") for r in rows])
    # "sweep/arch" entries break after the slash: two long teacher names side by side overlapped.
    names = [r["entry"].replace("/", "/\n") for r in rows]
    ax.set_xticks(list(xs), [f"{name}\n(n={r['n']})" for name, r in zip(names, rows)], fontsize="small")
    low = min(r["blimp_mean"] - (r["blimp_std"] or 0.0) for r in rows)
    top = max(r["blimp_mean"] + (r["blimp_std"] or 0.0) for r in rows)
    ax.set_ylim(50.0 if low > 50.0 else 0.0, min(100.0, top + 3.0))  # a minimal pair is a coin flip at 50%
    ax.axhline(50.0, color="black", linestyle="--", linewidth=0.8, label="chance")
    ax.set_ylabel("BLiMP overall (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("BLiMP overall, mean ± std over seeds")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


__all__ = ["factor_plots", "learning_curves", "blimp_bars", "mlm_share"]
