"""Data triggers: has a watched file's content changed, and has it settled?

``scan`` is called by the scheduler on every tick with the trigger, the state it
returned last time (kept in the schedule row) and the time. It never sleeps and
never raises for a file: problems come back as warnings.

- Content, not mtime: a file is hashed (sha256); an unchanged rewrite does not
  fire. (size, mtime_ns) only says when a file need not be read again, so 1,000
  idle schedules cost a ``stat`` each per tick. A file modified in the last 2 s
  is read anyway (its mtime may not have moved yet for a second write).
- Debounce: a change fires once every changed file kept the same content for
  ``debounce`` seconds, as one firing for all of them (a copy of 3 files is one run).
- Baseline: the first scan records what is there and fires nothing.
- A file that appears is a change (old hash None); one that disappears fires
  nothing (there is nothing to run on) and is forgotten at the next firing.
- fsspec URLs (``s3://``, ``http(s)://``, ``file://``, ...): ``fs.info``'s ETag,
  MD5 or checksum when the backend gives one, else the content's hash.
- A pattern that matches nothing is a warning, once until it matches again.

A firing's key is ``change:`` + 16 hex of sha256 over the sorted (path, hash)
pairs and the number of change firings before it: two schedulers scanning the
same state agree on it, and a file that returns to earlier content fires again.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import UsageError
from nbops.runtime.files import sha256_file

__all__ = ["ScanResult", "scan", "missing", "notebook_inputs", "is_url", "RECENT_S"]

# A file changed this recently (by the wall clock) is re-read even when its stat looks unchanged.
RECENT_S = 2.0
_CHECKSUMS = ("ETag", "etag", "Content-MD5", "md5", "md5Hash", "content_md5", "checksum", "crc32c", "Digest")
_MTIMES = ("mtime", "LastModified", "last_modified", "Last-Modified", "updated", "modified")


@dataclass
class ScanResult:
    fired: list[dict] = field(default_factory=list)  # each {"key", "files": [{"path", "hash", "old"}]}
    state: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def is_url(pattern: str) -> bool:
    return "://" in pattern


def scan(trigger: dict, state: dict, now: float, *, base: str) -> ScanResult:
    """Look at the watched files once; fire the settled changes. ``state`` is not modified."""
    # A copy two levels deep (the state is JSON: dicts of dicts of plain values); deepcopy cost 30 us a call.
    st = {**state, "files": {p: dict(e) for p, e in (state or {}).get("files", {}).items()}, "warned": dict((state or {}).get("warned", {}))}
    files: dict[str, dict] = st.setdefault("files", {})
    warned: dict[str, str] = st.setdefault("warned", {})
    debounce = float(trigger.get("debounce", 0) or 0)
    out = ScanResult(state=st)
    seen_now: set[str] = set()
    unreachable: set[str] = set()
    for pattern in trigger.get("watch") or []:
        try:
            found = _remote(pattern, files) if is_url(pattern) else _local(pattern, base, files)
        except Exception as exc:  # a backend that is down or missing: keep what we knew, say it once
            unreachable.add(pattern)
            _warn_once(out, warned, pattern, f"cannot read {pattern}: {type(exc).__name__}: {exc}" + _install_hint(exc))
            continue
        if not found:
            _warn_once(out, warned, pattern, f"{pattern} matches no file" + ("" if is_url(pattern) else f" (in {base})"))
            continue
        warned.pop(pattern, None)
        for path, (digest, sig) in found.items():
            entry = files.setdefault(path, {"hash": None, "seen": None, "from": pattern})
            if digest != entry.get("seen"):
                entry["seen"], entry["since"] = digest, now
            entry["stat"] = sig
            seen_now.add(path)
    for path, entry in files.items():
        if path not in seen_now and entry.get("from") not in unreachable:
            entry["seen"] = None  # gone: fires nothing
    if not st.get("baseline"):
        for entry in files.values():
            entry["hash"] = entry["seen"]
        st["baseline"] = True
        return out
    changed = sorted(p for p, e in files.items() if e.get("seen") is not None and e["seen"] != e.get("hash"))
    if changed and all(now - files[p]["since"] >= debounce for p in changed):
        fired = [{"path": p, "hash": files[p]["seen"], "old": files[p].get("hash")} for p in changed]
        count = int(st.get("fired", 0))
        material = json.dumps([[f["path"], f["hash"]] for f in fired] + [count])
        out.fired.append({"key": "change:" + hashlib.sha256(material.encode()).hexdigest()[:16], "files": fired})
        for p in changed:
            files[p]["hash"] = files[p]["seen"]
        for p in [p for p, e in files.items() if e.get("seen") is None]:
            del files[p]
        st["fired"] = count + 1
    return out


def _warn_once(out: ScanResult, warned: dict[str, str], pattern: str, message: str) -> None:
    if warned.get(pattern) != message:
        warned[pattern] = message
        out.warnings.append(message)


def _install_hint(exc: Exception) -> str:
    return " (install the fsspec backend for it, e.g. pip install s3fs)" if isinstance(exc, ImportError) else ""


def _cached(files: dict[str, dict], path: str, sig: list) -> str | None:
    """The hash seen last time when the file's stat has not moved (and did not move just now)."""
    entry = files.get(path)
    if not entry or entry.get("seen") is None or entry.get("stat") != sig:
        return None
    mtime = sig[1]  # local: int nanoseconds; remote: float seconds
    mtime_s = mtime / 1e9 if isinstance(mtime, int) else mtime
    if mtime_s is None or time.time() - mtime_s < RECENT_S:
        return None
    return entry["seen"]


def _epoch(value: Any) -> float | None:
    """A backend's modification time (number, datetime, ISO or HTTP date) as float epoch seconds."""
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        text = str(value)
        return (parsedate_to_datetime(text) if "," in text else datetime.fromisoformat(text)).timestamp()
    except (TypeError, ValueError):
        return None


def _local_files(pattern: str, base: str) -> dict[str, os.stat_result]:
    """The files ``pattern`` matches (a folder: every file under it), with their stat; one stat per file."""
    pattern = os.path.expanduser(pattern)
    absolute = os.path.isabs(pattern)
    if glob.has_magic(pattern):
        matched = sorted(glob.glob(pattern, root_dir=None if absolute else base, recursive=True))
    else:
        matched = [pattern]  # a plain path: no directory listing
    out: dict[str, os.stat_result] = {}
    for m in matched:
        full = m if os.path.isabs(m) else os.path.join(base, m)
        try:
            st = os.stat(full)
        except OSError:  # not there (or removed since the glob): seen at the next scan
            continue
        if stat.S_ISDIR(st.st_mode):
            for root, _, names in os.walk(full):
                for n in sorted(names):
                    child = os.path.join(root, n)
                    try:
                        out[child if os.path.isabs(m) else os.path.relpath(child, base)] = os.stat(child)
                    except OSError:
                        continue
        elif stat.S_ISREG(st.st_mode):
            out[m] = st
    return out


def _local(pattern: str, base: str, files: dict[str, dict]) -> dict[str, tuple[str, list]]:
    found = {}
    for path, st in _local_files(pattern, base).items():
        sig = [st.st_size, st.st_mtime_ns]
        try:
            found[path] = (_cached(files, path, sig) or "sha256:" + sha256_file(path if os.path.isabs(path) else os.path.join(base, path)), sig)
        except OSError:  # removed between the stat and the read: seen at the next scan
            continue
    return found


def _remote(url: str, files: dict[str, dict]) -> dict[str, tuple[str, list]]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()  # fsspec keeps instances and listings: each scan must ask the backend again
    paths = fs.glob(path) if glob.has_magic(path) else [path]
    found = {}
    for p in paths:
        try:
            info = fs.info(p)
        except FileNotFoundError:
            continue
        if info.get("type") == "directory":
            for child in fs.find(p):
                found.update(_remote_file(fs, child, fs.info(child), files))
        else:
            found.update(_remote_file(fs, p, info, files))
    return found


def _remote_file(fs, path: str, info: dict, files: dict[str, dict]) -> dict[str, tuple[str, list]]:
    url = fs.unstrip_protocol(path)
    for name in _CHECKSUMS:
        if info.get(name):
            return {url: (f"{name.lower()}:{str(info[name]).strip(chr(34))}", [info.get("size"), None])}
    mtime = _epoch(next((info[k] for k in _MTIMES if info.get(k) is not None), None))
    sig = [info.get("size"), mtime]
    cached = _cached(files, url, sig) if mtime is not None else None
    if cached:
        return {url: (cached, sig)}
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {url: ("sha256:" + digest.hexdigest(), sig)}


def missing(trigger: dict, *, base: str) -> list[str]:
    """Warnings for local patterns that match nothing now; a URL whose protocol fsspec does not know is an error."""
    out = []
    for pattern in trigger.get("watch") or []:
        if is_url(pattern):
            _check_protocol(pattern)
        elif not _local_files(pattern, base):
            out.append(f"{pattern} matches no file (in {base}) yet; the schedule fires when one appears")
    return out


def _check_protocol(url: str) -> None:
    from fsspec.registry import known_implementations, registry

    protocol = url.split("://", 1)[0].lower()
    for p in protocol.split("::")[0].split("+"):
        if p not in known_implementations and p not in registry:
            raise UsageError(f"--on-change {url}: unknown protocol {p!r}", "use a path, a glob, or an fsspec URL (s3://, gs://, http(s)://, file://)")


# -- the files a notebook reads ----------------------------------------------------


class _InputAsOpen(ast.NodeTransformer):
    """``nbops.input(x)`` read as ``open(x)``: the static reader then resolves ``x``
    (literals, parameters, names bound to strings, f-strings, joins) as for any reader."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "input" and isinstance(f.value, ast.Name) and f.value.id == "nbops":
            node.func = ast.Name("open", ast.Load())
        return node


def notebook_inputs(notebook: str | os.PathLike, params: dict[str, Any] | None = None) -> list[str]:
    """The data files the notebook's code names (``nbops.input(...)`` and common readers such as
    ``pd.read_csv``), with the parameters' defaults (overlaid with ``params``), in order, once each.
    Paths are as written (relative to the notebook's folder) or URLs."""
    from nbops.api import load_graph
    from nbops.graph.reads import static_reads

    graph = load_graph(notebook)
    values = {p.name: p.default for p in graph.parameters} | dict(params or {})
    found: list[str] = []
    for cell in graph.notebook.cells:
        if cell.cell_type != "code" or "skip" in cell.tags:  # a skip cell never runs in the pipeline
            continue
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        try:
            tree = _InputAsOpen().visit(ast.parse(source))
        except SyntaxError:
            continue
        found += static_reads(ast.unparse(tree), values)
    folder = Path(notebook).resolve().parent
    # Only data: not the notebook itself, nor modules the code imports from the folder.
    return [p for p in dict.fromkeys(found) if is_url(p) or (folder / p).suffix not in (".ipynb", ".py")]
