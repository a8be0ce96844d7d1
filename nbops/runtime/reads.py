"""What a running stage reads: files, folder listings, remote sources, local code.

A stage's cache record must change when its data changes, also when the
notebook reads ``pd.read_csv("sales.csv")`` without ``nbops.input``. Python's
audit hooks (PEP 578) see every ``open``, ``os.listdir`` and ``os.scandir`` in
the process, whatever library calls them, at the cost of one set lookup for
the other events. The readers that bypass Python's file layer (pyarrow's C++
IO: ``pq.read_table``, ``pd.read_parquet``, ``pyarrow.csv``/``feather``/
``dataset``) and the sources nobody can fingerprint (``pd.read_sql``,
``requests``) are wrapped lazily by ``read_wrappers`` as their modules load.

The hook only notes raw paths; filtering (site-packages, temp, the kernel's own
files, the artifact dir) and the module and package scans happen once, in
``collect`` at the end of the stage. Records are the ``reads`` kind of the
stage context; the driver turns them into fingerprints (``nbops.plan.fingerprint``).
"""

from __future__ import annotations

import os
import site
import stat
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["ReadTracker", "tracker", "install", "remote_fingerprint", "is_remote", "package_path", "REMOTE_KEYS"]

# Distributions that make up the kernel itself, not the stage's computation:
# upgrading ipykernel should not invalidate every cached stage.
_KERNEL_DISTS = frozenset(
    "ipykernel ipython jupyter-client jupyter-core pyzmq tornado traitlets comm debugpy matplotlib-inline "
    "prompt-toolkit jedi parso pexpect ptyprocess wcwidth stack-data executing asttokens pure-eval decorator "
    "nest-asyncio ipython-pygments-lexers appnope nbops".split()
)
_SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/etc", "/run", "/usr/lib", "/usr/lib64", "/usr/share", "/lib", "/lib64")
_WATCHED = frozenset({"open", "os.listdir", "os.scandir", "os.rename", "os.chdir", "sqlite3.connect", "urllib.Request"})
_WRITE_FLAGS = os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Keys of fsspec ``info()`` that identify a remote object's version, per backend.
REMOTE_KEYS = (
    "ETag",
    "etag",
    "VersionId",
    "version_id",
    "LastModified",
    "last_modified",
    "Last-Modified",  # fsspec's http backend passes the header through
    "Content-MD5",
    "Digest",
    "mtime",
    "updated",
    "generation",
    "md5Hash",
    "crc32c",
    "created",
)


def is_remote(path: str) -> bool:
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() not in ("file", "local")


class ReadTracker:
    """Paths one stage touched, as raw as the hook saw them (cheap to note)."""

    def __init__(self) -> None:
        self.active = False
        self.local = threading.local()  # .quiet: inside a wrapper that records for itself
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, str] = {}  # abspath -> the path as the stage passed it
        self.written: set[str] = set()
        self.dirs: dict[str, str] = {}
        self.trees: dict[str, str] = {}  # folders a reader consumes whole (pyarrow datasets)
        self.remote: dict[str, None] = {}
        self.unseen: dict[str, None] = {}
        # Followed through "os.chdir" events: os.path.abspath per open (a getcwd
        # syscall and a normpath) would be the biggest cost of the hook.
        self.cwd = os.getcwd()
        self.home = self.cwd  # the notebook's folder: where the stage started

    def _abs(self, raw: str) -> str:
        path = raw if raw.startswith(os.sep) else f"{self.cwd}{os.sep}{raw}"
        return os.path.normpath(path) if "/." in path or "//" in path else path

    # -- noting (hot path) ---------------------------------------------------

    def note_read(self, path: Any) -> None:
        if isinstance(path, int) or path is None:
            return
        raw = os.fsdecode(path)
        if is_remote(raw):
            self.remote.setdefault(raw)
            return
        absp = self._abs(raw)
        if absp not in self.written:
            self.files.setdefault(absp, raw)

    def note_write(self, path: Any) -> None:
        if not isinstance(path, int) and path is not None:
            self.written.add(self._abs(os.fsdecode(path)))

    def note_dir(self, path: Any, whole_tree: bool = False) -> None:
        if isinstance(path, int):
            return
        raw = "." if path is None else os.fsdecode(path)
        absp = self._abs(raw)
        if whole_tree and absp not in self.written:
            self.trees.setdefault(absp, raw)
        elif not whole_tree:
            self.dirs.setdefault(absp, raw)

    def note_unseen(self, what: str) -> None:
        if not getattr(self.local, "quiet", False):
            self.unseen.setdefault(what)

    def audit(self, event: str, args: tuple) -> None:
        if event not in _WATCHED or not self.active:
            return
        # The import system lists sys.path folders and opens .py files: that is
        # code, tracked as modules at the end, not data.
        if sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):
            return
        if event == "open":
            path, _mode, flags = args
            if flags & _WRITE_FLAGS or flags & os.O_ACCMODE == os.O_WRONLY:
                self.note_write(path)
            else:
                self.note_read(path)
        elif event == "os.listdir" or event == "os.scandir":
            if not _listed_for_imports(sys._getframe(1)):
                self.note_dir(args[0])
        elif event == "os.chdir":
            if not isinstance(args[0], int):
                self.cwd = self._abs(os.fsdecode(args[0]))
        elif event == "os.rename":  # os.replace too: the target is the stage's own file
            self.note_write(args[1])
        elif event == "sqlite3.connect":
            database = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
            if database.startswith("file:"):
                database = database[5:].partition("?")[0]
            if database and database != ":memory:":
                self.note_read(database)
        elif event == "urllib.Request":
            self.note_unseen(f"urllib.request.urlopen({getattr(args[0], 'full_url', args[0])!s})")

    # -- the end of the stage ------------------------------------------------

    def collect(self, artifact_dir: Path) -> list[dict]:
        """The stage's reads as records, filtered; also its local modules and packages."""
        skip = _excluded_prefixes(artifact_dir, self.home)
        records: list[dict] = []
        modules = _local_modules(skip)
        module_files = {m["abspath"] for m in modules}
        real_dirs: dict[str, str] = {}
        for absp, raw in sorted(self.files.items()):
            if _skipped(absp, skip):
                continue
            real = _realpath(absp, real_dirs)
            if real is None or _skipped(real, skip) or real in module_files:
                continue
            records.append({"kind": "file", "path": raw, "abspath": real})
        for absp, raw in sorted(self.trees.items()):
            records += self._tree_records(absp, raw, skip)
        for absp in sorted(self.dirs):
            real = os.path.realpath(absp)
            if not (_skipped(absp, skip) or _skipped(real, skip)) and os.path.isdir(real):
                records.append({"kind": "dir", "abspath": real})
        for url in self.remote:
            fingerprint, error = remote_fingerprint(url)
            records.append({"kind": "remote", "url": url, **(fingerprint or {}), **({"error": error} if error else {})})
        records += [{"kind": "unseen", "what": what} for what in self.unseen]
        records += modules
        records.append({"kind": "packages", "versions": _imported_packages()})
        return records

    def _tree_records(self, absp: str, raw: str, skip: tuple[str, ...]) -> list[dict]:
        real = os.path.realpath(absp)
        if _skipped(real, skip):
            return []
        if not os.path.isdir(real):
            return [{"kind": "file", "path": raw, "abspath": real}]
        found = []
        for folder, subdirs, names in os.walk(real):
            subdirs.sort()
            found.append({"kind": "dir", "abspath": folder})
            found += [{"kind": "file", "path": os.path.join(folder, n), "abspath": os.path.join(folder, n)} for n in sorted(names)]
        return found


tracker = ReadTracker()
_installed = False


def _listed_for_imports(frame: Any, depth: int = 25) -> bool:
    """Is this folder listed to find code (importlib.metadata, pkgutil, entry
    points) rather than data? Only listings pay for this walk up the stack."""
    while frame is not None and depth:
        name = frame.f_code.co_filename
        if "importlib" in name or name.endswith(("pkgutil.py", "pkg_resources/__init__.py")):
            return True
        frame, depth = frame.f_back, depth - 1
    return False


def install() -> ReadTracker:
    """Add the audit hook and the lazy reader wrappers, once per process."""
    global _installed
    if not _installed:
        from nbops.runtime import read_wrappers

        sys.addaudithook(tracker.audit)
        read_wrappers.install(tracker)
        _installed = True
    return tracker


def remote_fingerprint(url: str) -> tuple[dict | None, str | None]:
    """The version fields fsspec ``info()`` gives for ``url``, or why there are none."""
    try:
        import fsspec.core
    except ImportError:
        return None, "fsspec is not installed (pip install fsspec)"
    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:  # missing backend, no network, no access
        return None, f"{type(exc).__name__}: {exc}"
    found = {k: str(info[k]) for k in REMOTE_KEYS if info.get(k) is not None}
    if not found:  # a size alone does not tell two versions apart: correctness first
        return None, "the server gives no ETag, version id or Last-Modified for it"
    if info.get("size") is not None:
        found["size"] = str(info["size"])
    return found, None


def _realpath(path: str, real_dirs: dict[str, str]) -> str | None:
    """The resolved path of a regular file (None for folders and vanished files).

    One lstat per file: the folder's real path is resolved once per folder,
    where ``os.path.realpath`` would lstat every component of every file.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return path  # gone already (deleted by the stage): the driver records it missing
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(path)
        return real if os.path.isfile(real) else None
    if not stat.S_ISREG(st.st_mode):
        return None
    folder, name = os.path.split(path)
    if folder not in real_dirs:
        real_dirs[folder] = os.path.realpath(folder)
    return os.path.join(real_dirs[folder], name)


def _excluded_prefixes(artifact_dir: Path, home: str) -> tuple[str, ...]:
    """Folders whose files are not data. A folder holding the notebook's own
    folder (a notebook under /tmp) is not one of them: files beside the
    notebook are always inputs, whatever lies above."""
    paths = {tempfile.gettempdir(), sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *_SYSTEM_DIRS}
    paths.update(sysconfig.get_paths().values())
    paths.update(site.getsitepackages() + [site.getusersitepackages()])
    paths.add(str(Path(__file__).resolve().parent.parent))  # the nbops package
    paths.add(os.path.expanduser("~/.ipython"))
    paths.add(os.path.expanduser("~/.jupyter"))
    ipython_paths = sys.modules.get("IPython.paths")
    if ipython_paths is not None:
        paths.add(ipython_paths.get_ipython_dir())
    jupyter_paths = sys.modules.get("jupyter_core.paths")
    if jupyter_paths is not None:
        paths.add(jupyter_paths.jupyter_runtime_dir())
    paths.add(str(artifact_dir))
    found = set()
    for p in paths:
        if p:
            found.add(os.path.abspath(p))
            found.add(os.path.realpath(p))
    homes = {os.path.abspath(home) + os.sep, os.path.realpath(home) + os.sep}
    prefixes = {p.rstrip(os.sep) + os.sep for p in found if p != os.sep}
    return tuple(p for p in prefixes if not any(h.startswith(p) for h in homes))


def _skipped(path: str, prefixes: tuple[str, ...]) -> bool:
    return (
        path.startswith(prefixes) or path.endswith(".pyc") or f"{os.sep}.nbops{os.sep}" in path or path.endswith(f"{os.sep}.nbops") or path + os.sep in prefixes
    )


def _local_modules(skip: tuple[str, ...]) -> list[dict]:
    """Modules loaded from outside the installed packages and the stdlib: the
    user's own code (beside the notebook, src/, an editable install)."""
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or name == "__main__" or not os.path.isabs(file):
            continue
        if _skipped(file, skip):
            continue
        real = os.path.realpath(file)
        if not _skipped(real, skip) and os.path.isfile(real):
            found.append({"kind": "module", "name": name, "abspath": real})
    return sorted(found, key=lambda m: m["name"])


def package_path() -> list[str]:
    """Where the cache looks for installed packages, in the kernel and in the driver alike:
    sys.path without Ray's vendored copies (``ray/thirdparty_files``, on PYTHONPATH in any
    process started after ``import ray``), which are not what a user installed."""
    return [p for p in sys.path if not p.endswith("thirdparty_files")]


def _imported_packages() -> dict[str, str]:
    """Distribution -> version of every top-level module the kernel has loaded.

    One pass over the installed distributions, reading each one's
    ``top_level.txt`` or the first path parts of its ``RECORD`` as text:
    ``importlib.metadata.packages_distributions()`` builds a Path object per
    RECORD line (~0.2-0.7 s for a data-science venv), paid by every stage since
    a kernel runs one stage.
    """
    from importlib import metadata

    # "_distutils_hack" and the like are loaded by .pth files in every process.
    from nbops.runtime.preloaded import unused

    top = {n.partition(".")[0] for n in list(sys.modules) if not n.startswith("_")} - set(sys.stdlib_module_names) - unused()
    versions: dict[str, str] = {}
    seen: set[str] = set()
    for dist in metadata.distributions(path=package_path()):  # sys.path order: the first of two same-named installs is the one imported
        folder_name = getattr(dist, "_normalized_name", None)
        if folder_name is not None and _normal(folder_name) in seen:
            continue
        if _top_level_names(dist).isdisjoint(top):
            if folder_name is not None:
                seen.add(_normal(folder_name))
            continue
        name, version = _name_and_version(dist)
        if not name or _normal(name) in seen:
            continue
        seen.add(_normal(name))
        if _normal(name) not in _KERNEL_DISTS and version:
            versions[name] = version
    return dict(sorted(versions.items()))


def _name_and_version(dist: Any) -> tuple[str | None, str | None]:
    """Name and Version from the metadata's headers only: ``dist.metadata`` runs the
    email parser over the whole file, long description included, twice as slow."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.partition("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
    return found.get("Name"), found.get("Version")


def _top_level_names(dist: Any) -> set[str]:
    """The importable top-level names a distribution installs (a superset is fine:
    only names the kernel imported are looked up)."""
    declared = dist.read_text("top_level.txt")
    if declared is not None:
        return set(declared.split())
    names = set()
    for line in (dist.read_text("RECORD") or "").splitlines():
        path = line.rsplit(",", 2)[0].strip('"')  # path,hash,size
        head, sep, _ = path.partition("/")
        names.add(head if sep else path.partition(".")[0])  # a package folder, or module.py / module.cpython-311-x86_64.so
    return names


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
