"""The driver's side of a sweep kept on object storage (sweep/object_store.py): Ray Tune's state and babysweep's own
files stay in the driver's local sweep folder and are copied to the URI as they change; each trial's
small files (and its final model when it ends) come back from the URI before the driver reads them.

    pull_driver_state(mirror, folder)          # a new driver (another machine): the sweep as the URI holds it
    callback = MirrorCallback(mirror, folder)  # first in RunConfig.callbacks, before the tracker's callback
    push_driver_state(mirror, folder)          # at the end (and every PUSH_EVERY_S while running)
"""

from __future__ import annotations

import time
from pathlib import Path

from ray.tune import Callback

from babysweep.sweep.object_store import CHECKPOINTS, Mirror
from babysweep.core.paths import MODELS
from babysweep.sweep.state import DRIVER_FILE

PUSH_EVERY_S = 10.0  # Ray saves its experiment state every second; the URI gets it at most this late
# The driver's mark names a live process on one machine: a copy elsewhere would say a dead driver runs.
NOT_PUSHED = (MODELS, DRIVER_FILE)


def push_driver_state(mirror: Mirror, folder: Path) -> None:
    mirror.put(folder, folder.name, skip=NOT_PUSHED)
    for card in sorted((folder / MODELS).glob("*/final/README.md")):  # model cards the driver wrote
        mirror.put(card, f"{folder.name}/{card.relative_to(folder).as_posix()}")


def pull_driver_state(mirror: Mirror, folder: Path, with_final: bool = False) -> bool:
    """Copy the sweep from the URI into an empty local folder (its trials' final models too when asked);
    False when the URI holds no such sweep."""
    if not mirror.exists(folder.name):
        return False
    mirror.get(folder.name, folder, skip=(MODELS,))
    for trial in _trials(mirror, folder.name):
        pull_trial(mirror, folder, trial, with_final=with_final)
    return True


def pull_trial(mirror: Mirror, folder: Path, trial_id: str, with_final: bool) -> None:
    skip = (CHECKPOINTS,) if with_final else (CHECKPOINTS, "final")
    mirror.get(f"{folder.name}/{MODELS}/{trial_id}", folder / MODELS / trial_id, skip=skip)


def _trials(mirror: Mirror, name: str) -> list[str]:
    from pyarrow import fs

    if not mirror.exists(f"{name}/{MODELS}"):
        return []
    return [i.base_name for i in mirror.fs.get_file_info(fs.FileSelector(mirror.key(f"{name}/{MODELS}")))]


class MirrorCallback(Callback):
    def __init__(self, mirror: Mirror, folder: Path):
        self.mirror, self.folder, self.pushed, self.reported = mirror, Path(folder), 0.0, set()

    def _push_now(self) -> None:
        push_driver_state(self.mirror, self.folder)
        self.pushed = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        pull_trial(self.mirror, self.folder, trial.trial_id, with_final=False)  # metrics.jsonl for `status`
        if trial.trial_id not in self.reported or time.monotonic() - self.pushed > PUSH_EVERY_S:
            self.reported.add(trial.trial_id)  # a trial's first result: the URI learns of the trial at once
            self._push_now()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        pull_trial(self.mirror, self.folder, trial.trial_id, with_final=True)  # final/ and blimp.json for MLflow
        self._push_now()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        pull_trial(self.mirror, self.folder, trial.trial_id, with_final=False)
        self._push_now()
