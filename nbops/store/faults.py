"""What went wrong with the store, said by cause: corruption, a full disk, no permission.

SQLite and the file system report these as generic errors; a user needs the
fix that fits (restore or recover, free space, check permissions). Every
store failure goes through ``store_error`` so the message is the same from the
CLI, the server and the magics (``StoreError``: exit code 3).
"""

from __future__ import annotations

import os
from pathlib import Path

from nbops.errors import StoreError

__all__ = ["store_error"]


def store_error(root: Path, exc: BaseException, doing: str = "the run store failed") -> StoreError:
    """A store failure with the fix that fits its cause: corruption, a full disk, no permission."""
    text = str(exc)
    low = text.lower()
    errno_ = getattr(exc, "errno", None)
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(
            f"{doing}: {root / 'runs.db'} is damaged ({text})",
            f"run 'nbops store verify --store {root}' to see what can be read; restore runs.db from a backup "
            f"or recover it with: sqlite3 {root / 'runs.db'} .recover | sqlite3 recovered.db",
        )
    if "disk is full" in low or "disk full" in low or errno_ == 28 or ("i/o error" in low and _nearly_full(root)):
        return StoreError(f"{doing}: the disk holding {root} is full ({text})", "free space on that disk (or pass --store on another one) and run again")
    if "readonly" in low or "read-only" in low or "permission" in low or errno_ in (1, 13, 30):
        return StoreError(f"{doing}: {root} cannot be written ({text})", f"check the permissions of {root} and its objects/ folder, or pass --store")
    if "unable to open" in low:
        return StoreError(f"{doing}: {root / 'runs.db'} cannot be opened ({text})", f"check that {root} exists and is readable, or pass --store")
    if "i/o error" in low:
        return StoreError(f"{doing}: the disk holding {root} reported an I/O error ({text})", "check the disk (dmesg, SMART), then run 'nbops store verify'")
    return StoreError(f"{doing}: {text}", f"check {root}, or pass --store")


def _nearly_full(root: Path) -> bool:
    """SQLite reports a full disk during a WAL write as a plain "disk I/O error": ask the disk."""
    folder = root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1024 * 1024
