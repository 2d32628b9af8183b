"""Sweep folders kept on object storage (`--storage s3://bucket/prefix`, or any URI pyarrow's filesystems
take), for clusters without a shared filesystem.

    mirror = Mirror.of("s3://bucket/sweeps")            # None for a plain folder (shared or local)
    mirror.put(local_dir, "teachers/models/t1")           # copy a folder (or file) to <uri>/teachers/models/t1
    mirror.get("teachers/models/t1", local_dir)           # and back; False when the URI holds nothing there
    mirror.sync_trial(out_dir, "teachers/models/t1")      # a trial's folder after a checkpoint

Every node writes to a folder of its own (the driver: <project>/sweeps/, a trial: scratch_dir()) and copies
to and from the URI: a trial after each checkpoint and at its end, the driver its own state as it changes.
So the URI always holds what a new driver, on any machine, needs to continue the sweep. Credentials and
endpoints come from the filesystem's usual environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from babysweep.core.errors import UserError

CHECKPOINTS = "checkpoints"


def is_uri(storage: str | Path | None) -> bool:
    """An object-store URI (s3://, gs://, ...) rather than a folder; file:// counts as a folder."""
    return bool(storage) and "://" in str(storage) and not str(storage).startswith("file://")


def scratch_dir() -> Path:
    """This node's own working folder for trials of mirrored sweeps ($BABYSWEEP_SCRATCH or the temp folder)."""
    return Path(os.environ.get("BABYSWEEP_SCRATCH") or Path(tempfile.gettempdir()) / "babysweep-scratch")


class Mirror:
    def __init__(self, uri: str):
        from pyarrow import fs

        self.uri = uri.rstrip("/")
        self.fs, self.root = fs.FileSystem.from_uri(self.uri)

    @classmethod
    def of(cls, storage: str | Path | None) -> "Mirror | None":
        """The mirror of a --storage URI, checked once here (None for a folder)."""
        if not is_uri(storage):
            return None
        try:
            mirror = cls(str(storage))
            if not mirror.root.strip("/").split("/")[0]:
                raise ValueError("it names no bucket")
            if not mirror.exists_top():
                raise OSError(f"its bucket {mirror.root.split('/')[0]!r} does not exist")
        except (OSError, ValueError) as exc:  # an unknown scheme, a missing bucket, refused credentials
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--storage {storage}: cannot use it ({reason}); give a reachable bucket URI with its "
                            "credentials in the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).") from None
        return mirror

    def key(self, rel: str) -> str:
        return f"{self.root}/{rel}".rstrip("/")

    def exists(self, rel: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.key(rel)).type != fs.FileType.NotFound

    def exists_top(self) -> bool:
        """The bucket (the URI's first path part) exists."""
        from pyarrow import fs

        return self.fs.get_file_info(self.root.split("/")[0]).type != fs.FileType.NotFound

    def put(self, local: str | Path, rel: str, skip: tuple[str, ...] = ()) -> None:
        """Copy a local file or folder (without the top-level entries named in skip) to <uri>/<rel>."""
        local = Path(local)
        if local.is_file():
            self._copy_file(self._local_fs(), str(local), self.fs, self.key(rel))
            return
        for entry in sorted(local.iterdir()) if local.is_dir() else []:
            if entry.name not in skip and not entry.name.startswith(".tmp"):
                self.put(entry, f"{rel}/{entry.name}")

    def get(self, rel: str, local: str | Path, skip: tuple[str, ...] = ()) -> bool:
        """Copy <uri>/<rel> (a file or folder, without top-level entries named in skip) to local."""
        from pyarrow import fs

        info = self.fs.get_file_info(self.key(rel))
        if info.type == fs.FileType.NotFound:
            return False
        local = Path(local)
        if info.type == fs.FileType.File:
            local.parent.mkdir(parents=True, exist_ok=True)
            self._copy_file(self.fs, info.path, self._local_fs(), str(local))
            return True
        base = self.key(rel)
        for item in self.fs.get_file_info(fs.FileSelector(base, recursive=True)):
            inner = item.path[len(base) + 1:]
            if item.type == fs.FileType.File and inner.split("/", 1)[0] not in skip:
                (local / inner).parent.mkdir(parents=True, exist_ok=True)
                self._copy_file(self.fs, item.path, self._local_fs(), str(local / inner))
        return True

    def sync_trial(self, out_dir: Path, rel: str) -> None:
        """A trial's folder after a checkpoint: its small files, checkpoints not yet copied, final/ once;
        checkpoints the trial pruned locally go from the URI too (the newest stays on both sides)."""
        self.put(out_dir, rel, skip=(CHECKPOINTS, "final"))
        local = {p.name for p in (out_dir / CHECKPOINTS).glob("step_*") if p.is_dir()}
        remote = set(self._names(f"{rel}/{CHECKPOINTS}"))
        for name in sorted(local - remote):
            self.put(out_dir / CHECKPOINTS / name, f"{rel}/{CHECKPOINTS}/{name}")
        for name in remote - local:
            self.fs.delete_dir(self.key(f"{rel}/{CHECKPOINTS}/{name}"))
        if (out_dir / "final").is_dir() and not self.exists(f"{rel}/final/config.json"):
            self.put(out_dir / "final", f"{rel}/final")

    def _names(self, rel: str) -> list[str]:
        from pyarrow import fs

        if not self.exists(rel):
            return []
        return [i.base_name for i in self.fs.get_file_info(fs.FileSelector(self.key(rel)))]

    @staticmethod
    def _local_fs():
        from pyarrow import fs

        return fs.LocalFileSystem()

    @staticmethod
    def _copy_file(src_fs, src: str, dst_fs, dst: str) -> None:
        # Written whole, then renamed where the target is a local file, so a reader never sees half a file.
        if isinstance(dst_fs, type(Mirror._local_fs())):
            tmp = f"{dst}.part"
            with src_fs.open_input_stream(src) as inp, open(tmp, "wb") as out:
                out.write(inp.read())
            os.replace(tmp, dst)
            return
        with src_fs.open_input_stream(src) as inp, dst_fs.open_output_stream(dst) as out:
            out.write(inp.read())
