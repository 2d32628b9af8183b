"""Rich progress display for `babysweep train`: a bar over optimiser steps and a line per epoch.

    with TrainProgress(console) as bar:
        train(config, out, reporter=bar.epoch_done, progress=bar.update)
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from babysweep.core import metrics as M
class TrainProgress:
    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}[/bold] {task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  {task.fields[tps]:,.0f} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> "TrainProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def update(self, info: dict) -> None:
        fields = dict(epoch=info["epoch"] + 1, phase=info["phase"], loss=info["loss"], tps=info["tokens_per_s"])
        if self.task is None:
            self.task = self.bar.add_task("train", total=info["total_steps"], **fields)
        self.bar.update(self.task, completed=info["step"], **fields)

    def epoch_done(self, metrics: dict, checkpoint) -> None:
        line = f"epoch {metrics[M.EPOCH]}: train loss {metrics[M.TRAIN_LOSS]:.4f}, dev loss {metrics[M.EVAL_LOSS]:.4f}"
        if M.BLIMP_OVERALL in metrics:
            line += f", BLiMP {metrics[M.BLIMP_OVERALL]:.3f}"
        self.bar.console.print(line + f", {metrics[M.TOKENS_PER_S]:,.0f} tok/s")
