"""Why a stage runs: the difference between two sets of key parts, in the user's terms.

Pure functions over the key parts that ``plan/cache.py`` makes and every
stage record keeps. The reason kinds are the ones a run record, ``nbops why``,
``runs diff``, the dry run and the panel all show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nbops.text import cell_ref, format_number

__all__ = ["Reason", "REASON_KINDS", "explain_change", "reason_from_changes"]

# "damaged": the cached result's objects are missing or corrupt in the store, so it is recomputed.
REASON_KINDS = ("first-run", "code", "params", "upstream", "input", "env", "no-cache", "cache-off", "cached", "resumed", "damaged")
_PRECEDENCE = ("code", "params", "upstream", "input", "env")  # the kind shown when several changed


@dataclass(frozen=True)
class Reason:
    kind: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _value(v: Any) -> str:
    if isinstance(v, str) and v.startswith("secret:"):
        return "***"
    return format_number(v) if not isinstance(v, str) else repr(v)


def _code_changes(old: list[dict], new: list[dict]) -> list[str]:
    before = {c["id"]: c for c in old}
    after = {c["id"]: c for c in new}
    out = []
    for cid, cell in after.items():
        was = before.get(cid)
        where = cell_ref(cell["index"], cell["line"]) if cell["index"] is not None else cell["line"]
        if was is None:
            out.append(f"{where} added")
        elif was["sha"] != cell["sha"]:
            out.append(f"{where} changed")
    for cid, cell in before.items():
        if cid not in after:
            where = cell_ref(cell["index"], cell["line"]) if cell["index"] is not None else cell["line"]
            out.append(f"{where} removed")
    return out


def explain_change(old: Mapping[str, Any], new: Mapping[str, Any], reran: Iterable[str] = ()) -> Reason | None:
    """Why ``new`` differs from ``old`` (key parts); None when they are the same.

    ``reran``: upstream stages that ran (not reused) in this run, so an input
    that changed can say whose re-run changed it."""
    reran = set(reran)
    found: dict[str, list[str]] = {}
    if old.get("code") != new.get("code") or old.get("metrics") != new.get("metrics"):
        details = _code_changes(old.get("cells") or [], new.get("cells") or [])
        if old.get("metrics") != new.get("metrics"):
            details.append("the metrics cell changed")
        found["code"] = details or ["the stage's code changed"]
    p_old, p_new = old.get("params") or {}, new.get("params") or {}
    changed = [n for n in sorted(set(p_old) | set(p_new)) if p_old.get(n) != p_new.get(n)]
    if changed:
        found["params"] = [f"{n}: {_value(p_old[n]) if n in p_old else '(not read)'} → {_value(p_new[n]) if n in p_new else '(not read)'}" for n in changed]
    i_old, i_new = old.get("inputs") or {}, new.get("inputs") or {}
    producers = {**(old.get("producers") or {}), **(new.get("producers") or {})}
    by_producer: dict[str, list[str]] = {}
    for var in sorted(set(i_old) | set(i_new)):
        if i_old.get(var) != i_new.get(var):
            by_producer.setdefault(producers.get(var, "?"), []).append(var)
    if by_producer:
        found["upstream"] = [
            f"stage {p!r} {'re-ran and ' if p in reran else ''}produced a different {', '.join(repr(v) for v in vs)}" for p, vs in sorted(by_producer.items())
        ]
    e_old, e_new = old.get("env") or {}, new.get("env") or {}
    env = [f"{k} {e_old.get(k)} → {e_new.get(k)}" for k in sorted(set(e_old) | set(e_new)) if e_old.get(k) != e_new.get(k)]
    if env:
        found["env"] = env
    if not found:
        return None
    kind = next(k for k in _PRECEDENCE if k in found)
    return Reason(kind, "; ".join(d for k in _PRECEDENCE for d in found.get(k, [])))


def reason_from_changes(changes: list[Mapping[str, str]]) -> Reason:
    """A reason from the dep changes ``plan/fingerprint.changed_deps`` found (input, code, env)."""
    kinds = [c["kind"] for c in changes]
    kind = next((k for k in _PRECEDENCE if k in kinds), kinds[0])
    shown = [c["detail"] for c in changes[:5]]
    if len(changes) > 5:
        shown.append(f"and {len(changes) - 5} more")
    return Reason(kind, "; ".join(shown))
