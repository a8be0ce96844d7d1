"""This process's private temp folder: kernel sockets, connection files, kernel logs.

All of it lives under one root, ``$TMPDIR/nbops-<uid>/``, in a folder named
after the process (``<pid>-<start time>``), so a process that was killed
(SIGKILL, power loss) leaves a folder that the next nbops process can tell is
dead and remove. The pid alone is not enough: pids are reused; the start time
from ``/proc`` tells the same process from a new one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from nbops.store.run_store import proc_start

__all__ = ["process_dir", "remove_dead", "temp_root"]

_lock = threading.Lock()
_mine: Path | None = None


def temp_root() -> Path:
    """Short on purpose: an IPC socket path must fit in ~100 characters."""
    return Path(tempfile.gettempdir()) / f"nbops-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _name(pid: int) -> str:
    return f"{pid}-{proc_start(pid) or 'x'}"


def _alive(name: str) -> bool:
    pid, _, start = name.partition("-")
    if not pid.isdigit():
        return True  # not ours to judge
    if start == "x":  # no /proc here: the signal check is all there is
        try:
            os.kill(int(pid), 0)
            return True
        except OSError:
            return False
    return proc_start(int(pid)) == start


def remove_dead(root: Path | None = None) -> list[Path]:
    """Remove the folders of nbops processes that are gone; returns what was removed."""
    root = root or temp_root()
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:  # no root yet: nothing was ever left
        return removed
    for entry in entries:
        if entry.is_dir() and not _alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def process_dir() -> Path:
    """This process's folder (made on first use, after clearing dead ones; removed at exit)."""
    global _mine
    with _lock:
        if _mine is None or not _mine.is_dir():
            root = temp_root()
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            remove_dead(root)
            _mine = root / _name(os.getpid())
            _mine.mkdir(mode=0o700, exist_ok=True)
            atexit.register(shutil.rmtree, _mine, True)
        return _mine


def new_dir(prefix: str) -> str:
    """A fresh folder inside this process's folder."""
    return tempfile.mkdtemp(prefix=prefix, dir=process_dir())
