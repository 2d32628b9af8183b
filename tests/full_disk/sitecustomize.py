"""Loaded by every Python process that has this folder on PYTHONPATH (the sweep's driver and its Ray workers):
while the file $BABYSWEEP_TEST_FULL_TRIGGER exists, os.fsync of a file or folder under $BABYSWEEP_TEST_FULL_UNDER
fails as on a full disk (we run as root, so chmod cannot make storage refuse writes)."""

import errno
import os

_UNDER, _TRIGGER = os.environ.get("BABYSWEEP_TEST_FULL_UNDER"), os.environ.get("BABYSWEEP_TEST_FULL_TRIGGER")

if _UNDER and _TRIGGER:
    _fsync = os.fsync

    def _full_fsync(fd):
        number = fd if isinstance(fd, int) else fd.fileno()
        if os.path.exists(_TRIGGER) and os.readlink(f"/proc/self/fd/{number}").startswith(_UNDER):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _fsync(fd)

    os.fsync = _full_fsync
