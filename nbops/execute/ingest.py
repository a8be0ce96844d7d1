"""Taking a finished stage's folder into the run store.

After a stage, its folder ``<run>/artifacts/<stage>/`` holds the outputs it
saved (with ``manifest.json``), the records it wrote (metrics, checks, files
it read) and the executed notebook beside it. The driver moves every byte
into the content-addressed objects and returns what the stage record keeps.

With shared objects a Ray worker stores a stage's payload files itself and the
driver gets only the records and ``_nbops/objects.json`` (``OBJECT_INDEX``:
{relative path: {sha256, bytes}}). A file named there may be absent from the
folder: it is recorded from the index (after a cheap check that the object is
there with that size), never downloaded, and whoever needs its bytes on this
machine materializes it (``materialize_inputs``).

A stage's outputs arrive hashed: the kernel computed each file's digest while
writing it (sha256, or BLAKE3 ``b3-...``: the digest names its algorithm), and
the driver trusts that digest only for a file of the size the kernel reported,
then links the file into the objects under it (no read, no copy). Full
re-hashing happens where bytes are trusted later: before a cached output is
loaded (``Scheduler.inputs_intact``), in ``materialize`` of remote objects and
in ``nbops store verify``.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from nbops.execute.base import StageOutcome
from nbops.plan.secrets import MASK, Scrubber
from nbops.runtime.context import RECORD_DIR, read_records
from nbops.runtime.files import write_atomic
from nbops.runtime.marshal import MANIFEST, SCALARS
from nbops.spec import StageSpec
from nbops.store import RunStore

__all__ = [
    "StageIngest", "error_record", "write_manifest", "write_returned_files", "read_object_index", "materialize_inputs",
    "is_record_file", "OBJECT_INDEX", "MAX_TRACEBACK",
]  # fmt: skip

MAX_TRACEBACK = 20000  # characters kept in the record; the executed notebook has it all
OBJECT_INDEX = f"{RECORD_DIR}/objects.json"  # in a stage folder: its files that are in the objects


class StageIngest:
    """Reads one stage's folder into the store (the driver is the store's only writer)."""

    def __init__(self, store: RunStore, out_dir: Path, secret_names: list[str], scrub: Scrubber | None = None):
        self.store, self.out_dir, self.secret_names = store, out_dir, secret_names
        self.scrub = scrub or Scrubber(())

    @cached_property
    def in_objects(self) -> dict[str, dict]:
        """The folder's files that a worker stored in the objects itself (read once the
        returned files are written: the scheduler makes this before writing them)."""
        return read_object_index(self.out_dir)

    def records(self, kind: str) -> list[dict]:
        """What the stage recorded (metrics, checks, reads), secret values masked."""
        return self.scrub.json(read_records(self.out_dir, kind))

    def error(self, outcome: StageOutcome) -> dict[str, Any]:
        """:func:`error_record`, secret values masked: it reaches the store, the terminal and reports."""
        return error_record(outcome, self.scrub)

    def notebook(self, outcome: StageOutcome) -> str | None:
        """The executed notebook, secrets masked, as an object; returns its digest."""
        path = outcome.executed_notebook
        if not path or not os.path.exists(path):
            return None
        if self.secret_names or self.scrub:
            _mask_notebook(Path(path), self.secret_names, self.scrub)
        return self.store.objects.put_file(path, move=True)

    def outputs(self, stage: StageSpec) -> dict[str, dict]:
        """var -> {file, serializer, type, sha256, bytes}; raises OSError/ValueError/KeyError if incomplete."""
        manifest = json.loads((self.out_dir / MANIFEST).read_text())["outputs"]
        outputs = {}
        for var in stage.outputs:
            meta = dict(manifest[var])
            meta["sha256"], meta["bytes"] = self._stored(meta["file"], meta)
            outputs[var] = meta
        return outputs

    def _stored(self, rel: str, meta: dict | None = None) -> tuple[str, int]:
        """(digest, bytes) of a file of the stage folder, which is in the objects after this.

        A file only in the objects (a Ray worker stored it) is checked there, not read."""
        file = self.out_dir / rel
        entry = self.in_objects.get(rel)
        if entry is not None and not file.exists():
            problem = self.store.objects.check(entry["sha256"], entry["bytes"])
            if problem:
                raise OSError(f"{rel} was stored by the worker as object {entry['sha256'][:12]}, which is {problem} in {self.store.objects.location}")
            return entry["sha256"], entry["bytes"]
        size = file.stat().st_size
        # A digest the stage computed while writing is trusted only for the same size.
        known = meta.get("sha256") if meta and meta.get("bytes") == size else None
        return self.store.objects.put_file(file, move=True, digest=known), size

    def scalars(self) -> dict[str, Any]:
        try:
            return json.loads((self.out_dir / SCALARS).read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def logged(self) -> list[dict]:
        """Artifacts the stage kept with ``nbops.log_artifact``."""
        logged = []
        for rec in self.records("artifacts"):
            rel = f"_logged/{rec['file']}"
            if rel in self.in_objects or (self.out_dir / rel).exists():
                digest, size = self._stored(rel)
                logged.append({**rec, "sha256": digest, "bytes": size})
        return logged


def error_record(outcome: StageOutcome, scrub: Scrubber | None = None) -> dict[str, Any]:
    """The error of a failed stage, pointing at the cell of the *user's* notebook.

    With ``scrub``, secret values are masked everywhere in it (the message, the
    traceback, a kernel log tail), before the traceback is cut: a cut must not
    leave half a secret that no longer matches."""
    err = outcome.error.to_json() if outcome.error else {"ename": "Error", "evalue": "unknown failure"}
    if scrub is not None:
        err = scrub.json(err)
    if len(err.get("traceback") or "") > MAX_TRACEBACK:
        err["traceback"] = err["traceback"][-MAX_TRACEBACK:]
    path = outcome.executed_notebook
    if not path or not os.path.exists(path):
        return err
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError) as exc:
        err["cell_note"] = f"the executed notebook could not be read: {exc}"
        return err
    for cell in cells:
        meta = cell.get("metadata") or {}
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if failed or meta.get("papermill", {}).get("status") == "running":
            source = cell.get("source") or ""
            source = "".join(source) if isinstance(source, list) else source
            origin = meta.get("nbops", {}).get("source_cell")
            err["cell"] = origin
            first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
            err["first_line"] = scrub.text(first) if scrub is not None else first
            err["generated"] = origin is None
            break
    return err


def write_manifest(folder: Path, stage: str, outputs: dict[str, dict]) -> None:
    """The manifest a consumer reads, for outputs reused from the store, and their
    object index: an executor whose workers read the objects sends digests, not bytes."""
    keep = ("file", "serializer", "type", "series")
    manifest = {"stage": stage, "outputs": {v: {k: m[k] for k in keep if k in m} for v, m in outputs.items()}}
    write_atomic(folder / stage / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    index = {m["file"]: {"sha256": m["sha256"], "bytes": m["bytes"]} for m in outputs.values() if m.get("sha256") and m.get("bytes") is not None}
    write_atomic(folder / stage / OBJECT_INDEX, json.dumps(index, indent=1, sort_keys=True))


def is_record_file(rel: str) -> bool:
    """Files of a stage folder the driver reads itself (small, always sent back as bytes);
    everything else is payload, which a worker with shared objects stores itself."""
    return rel in (MANIFEST, SCALARS) or rel.startswith(f"{RECORD_DIR}/")


def read_object_index(stage_folder: Path) -> dict[str, dict]:
    """{relative path: {sha256, bytes}} of the folder's files that are in the objects ({} if none)."""
    try:
        return json.loads((stage_folder / OBJECT_INDEX).read_text())
    except FileNotFoundError:
        return {}


def materialize_inputs(artifact_dir: Path, input_files: list[str], objects: Any) -> None:
    """Bring ``<producer>/<file>`` inputs that are only in the objects into ``artifact_dir``,
    for a stage that reads this machine's folder (the local executor); others are left alone."""
    for rel in input_files:
        target = artifact_dir / rel
        if target.exists():
            continue
        producer, _, name = rel.partition("/")
        entry = read_object_index(artifact_dir / producer).get(name)
        if entry is not None:
            objects.materialize(entry["sha256"], target, size=entry["bytes"])


def write_returned_files(folder: Path, files: dict[str, bytes]) -> None:
    """Files a remote executor brought back, written under ``folder`` only."""
    root = folder.resolve()
    for rel, data in files.items():
        target = (folder / rel).resolve()
        if not target.is_relative_to(root) or target == root:
            raise ValueError(f"a remote stage returned a file outside its folder: {rel!r}")
        write_atomic(target, data)


def _mask_notebook(path: Path, secret_names: list[str], scrub: Scrubber) -> None:
    """Secrets never reach the store: mask them in papermill's injected cell and
    metadata, and mask their values wherever else they appear (printed, in a
    traceback, in a rich output, in the code itself)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "injected-parameters" in (cell.get("metadata") or {}).get("tags", []):
            source = _joined(cell.get("source"))
            lines = []
            for line in source.splitlines():
                name = line.split("=", 1)[0].strip()
                lines.append(f'{name} = "{MASK}"' if "=" in line and name in secret_names else line)
            cell["source"] = "\n".join(lines)
    params = nb.get("metadata", {}).get("papermill", {}).get("parameters", {})
    for name in secret_names:
        if name in params:
            params[name] = MASK
    if scrub:
        for cell in nb.get("cells", []):
            cell["source"] = scrub.text(_joined(cell.get("source")))
            if "outputs" in cell:
                cell["outputs"] = [_scrub_output(o, scrub) for o in cell["outputs"]]
        nb["metadata"] = scrub.json(nb.get("metadata", {}))
    write_atomic(path, json.dumps(nb, indent=1, ensure_ascii=False))


def _joined(text: Any) -> str:
    """A notebook's multi-line string (a list of lines on disk) as one string, so a
    secret split across two list items is still found."""
    return "".join(text) if isinstance(text, list) else (text or "")


def _scrub_output(output: dict, scrub: Scrubber) -> dict:
    out = dict(output)
    if "text" in out:
        out["text"] = scrub.text(_joined(out["text"]))
    for key in ("ename", "evalue"):
        if key in out:
            out[key] = scrub.text(out[key])
    if "traceback" in out:
        out["traceback"] = scrub.json(out["traceback"])
    if isinstance(out.get("data"), dict):
        out["data"] = {mime: _scrub_data(mime, value, scrub) for mime, value in out["data"].items()}
    if "metadata" in out:
        out["metadata"] = scrub.json(out["metadata"])
    return out


def _scrub_data(mime: str, value: Any, scrub: Scrubber) -> Any:
    if mime.startswith("image/") and not mime.endswith("+xml"):
        return value  # base64 cannot show a value as text, and masking inside it would break the image
    if mime.startswith("text/") or mime.endswith("+xml"):
        return scrub.text(_joined(value))  # text/plain, text/html, text/markdown, image/svg+xml: lines on disk
    return scrub.json(value)  # application/json and friends: structured data
