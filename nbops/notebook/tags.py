"""The tag vocabulary: what a cell's tags (or its ``%%stage`` line) mean.

One function, ``read_cell_tags``, turns a cell into a ``CellTags``; Kale's
tags are aliases, read the way Kale reads them, so Kale notebooks need no
edits:
- a role tag (``skip``, ``imports``/``functions``/``setup``,
  ``pipeline-parameters``/``parameters``) wins over the stage, ``prev:``,
  resource, annotation and label tags of the same cell, which are dropped
  with a warning;
- ``block:``/``step:`` with no name is no stage tag: the cell continues the
  stage above (Kale's extension writes such tags);
- ``annotation:KEY:VALUE`` and ``label:KEY:VALUE`` (Kubernetes pod metadata)
  are kept per stage.
Nothing here looks at other cells: stage membership and validation happen in
``nbops.graph``.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass, field

from nbops.notebook.magic_line import PIPELINE_MAGICS, pipeline_magic

__all__ = [
    "CellTags",
    "TagError",
    "TagNote",
    "read_cell_tags",
    "parse_stage_magic",
    "parse_memory",
    "STAGE_NAME_RE",
    "RESOURCE_KEYS",
    "PIPELINE_MAGICS",
]

STAGE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESOURCE_KEYS = ("gpus", "cpus", "memory", "timeout", "retries")
# Kale's pod metadata tags: annotation:KEY:VALUE, label:KEY:VALUE (KEY as Kubernetes allows).
_K8S_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(/[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$")
_METADATA_PREFIXES = ("annotation:", "label:")
# Roles that win over every other tag of their cell (Kale's special tags).
_WINNING_ROLES = ("parameters", "setup", "skip")

_ROLE_ALIASES = {
    "parameters": "parameters",
    "pipeline-parameters": "parameters",
    "setup": "setup",
    "imports": "setup",
    "functions": "setup",
    "skip": "skip",
    "metrics": "metrics",
    "pipeline-metrics": "metrics",
}
_STAGE_PREFIXES = ("stage:", "step:", "block:")
_KALE_STAGE_PREFIXES = ("step:", "block:")
_AFTER_PREFIXES = ("after:", "prev:")
_KALE_GPU = "limit:nvidia.com/gpu:"


class TagError(ValueError):
    """A tag that cannot be read; the graph turns it into a CellIssue."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class TagNote:
    """A tag read the way Kale reads it rather than as written; the graph shows it as a warning."""

    message: str
    fix: str
    code: str


@dataclass
class CellTags:
    role: str | None = None  # parameters | setup | skip | metrics | None
    stage: str | None = None
    after: list[str] = field(default_factory=list)
    resources: dict[str, object] = field(default_factory=dict)
    cache: bool | None = None  # False when cache:off
    annotations: dict[str, str] = field(default_factory=dict)  # Kale's annotation:KEY:VALUE
    labels: dict[str, str] = field(default_factory=dict)  # Kale's label:KEY:VALUE
    magic: str | None = None  # "stage" | "setup" | "skip" when the cell starts with one
    unknown: list[str] = field(default_factory=list)
    notes: list[TagNote] = field(default_factory=list)  # read, but not as written: warnings


def parse_memory(text: str) -> int:
    """'512M', '2Gi', '1.5GB', '1000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not m:
        raise TagError(f"memory size {text!r} is not understood", "write it like memory:512M or memory:4Gi")
    number, unit, _ = m.groups()
    power = " KMGT".index(unit.upper() or " ")
    return int(float(number) * 1024**power)


def _number(key: str, text: str, kind: type) -> object:
    try:
        value = kind(text)
    except ValueError:
        raise TagError(f"{key}:{text} is not a number", f"write it like {key}:{'1' if kind is int else '0.5'}") from None
    if value < 0:
        raise TagError(f"{key}:{text} is negative", f"use {key}:0 or more")
    return value


def _resource(key: str, text: str) -> object:
    if key == "memory":
        return parse_memory(text)
    if key in ("gpus", "retries"):
        return _number(key, text, int)
    return _number(key, text, float)  # cpus (fractions allowed), timeout


def _stage_name(name: str, tag: str) -> str:
    if not STAGE_NAME_RE.fullmatch(name):
        raise TagError(
            f"stage name {name!r} (from {tag!r}) is not a valid identifier",
            "use letters, digits and _ only, not starting with a digit, e.g. stage:train_model",
        )
    return name


def read_cell_tags(tags: list[str], source: str = "") -> CellTags:
    """Interpret one cell's tags and, for code cells, a leading pipeline magic."""
    out = CellTags()
    for raw in tags:
        tag = raw.strip()
        if tag in _ROLE_ALIASES:
            _set_role(out, _ROLE_ALIASES[tag], tag)
        elif tag.startswith(_KALE_STAGE_PREFIXES) and tag.endswith(":"):
            out.notes.append(TagNote(
                f"the tag {tag!r} names no stage: the cell continues the stage above (as in Kale)",
                f"remove the empty {tag!r} tag, or name the stage",
                "empty-stage-tag",
            ))  # fmt: skip
        elif tag.startswith(_STAGE_PREFIXES):
            name = _stage_name(tag.split(":", 1)[1], tag)
            if out.stage and out.stage != name:
                raise TagError(f"the cell has two stage tags ({out.stage!r} and {name!r})", "keep one stage tag per cell")
            out.stage = name
        elif tag.startswith(_AFTER_PREFIXES):
            out.after.append(_stage_name(tag.split(":", 1)[1], tag))
        elif tag.startswith(_KALE_GPU):
            _set_resource(out, "gpus", _resource("gpus", tag[len(_KALE_GPU) :]))
        elif tag.startswith(_METADATA_PREFIXES):
            kind, key, value = _pod_metadata(tag)
            getattr(out, kind)[key] = value
        elif tag == "cache:off":
            out.cache = False
        elif ":" in tag and tag.split(":", 1)[0] in RESOURCE_KEYS:
            key, value = tag.split(":", 1)
            _set_resource(out, key, _resource(key, value))
        else:
            out.unknown.append(tag)  # other tools' tags: kept, ignored
    if out.role is None and out.stage is None and _only_loads_nbops(source):
        out.role = "skip"  # `%load_ext nbops` is how magics users start: never a stage of its own
    magic = pipeline_magic(source)
    if magic is not None:
        out.magic = magic.name
        if magic.name == "stage":
            _merge(out, parse_stage_magic(magic.line))
        else:
            _set_role(out, magic.name, magic.line)
    _role_wins(out)
    return out


def _pod_metadata(tag: str) -> tuple[str, str, str]:
    """'annotation:KEY:VALUE' -> ("annotations", KEY, VALUE); the value may hold colons."""
    kind, _, rest = tag.partition(":")
    key, sep, value = rest.partition(":")
    if not sep or not _K8S_KEY.match(key):
        raise TagError(
            f"{tag!r} is not a {kind} tag Kale reads",
            f"write it as {kind}:KEY:VALUE, KEY like example.com/owner (letters, digits, - _ . and one /)",
        )
    return f"{kind}s", key, value


def _role_wins(out: CellTags) -> None:
    """Kale: skip, imports, functions and pipeline-parameters win over the rest of the cell's tags."""
    if out.role not in _WINNING_ROLES:
        return
    dropped = [name for name, present in (
        ("stage", out.stage), ("after", out.after), ("resource", out.resources),
        ("annotation", out.annotations), ("label", out.labels), ("cache", out.cache is not None),
    ) if present]  # fmt: skip
    if not dropped:
        return
    out.notes.append(TagNote(
        f"a {out.role} cell ignores its {', '.join(dropped)} tags (the {out.role} tag wins, as in Kale)",
        f"move those tags to a cell of the stage, or remove the {out.role} tag",
        "ignored-tags",
    ))  # fmt: skip
    out.stage, out.after, out.resources, out.cache = None, [], {}, None
    out.annotations, out.labels = {}, {}


def _only_loads_nbops(source: str) -> bool:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return bool(lines) and all(ln in ("%load_ext nbops", "%reload_ext nbops") for ln in lines)


def _set_role(out: CellTags, role: str, tag: str) -> None:
    if out.role and out.role != role:
        raise TagError(f"the cell is tagged both {out.role!r} and {role!r}", "keep one of them")
    out.role = role


def _set_resource(out: CellTags, key: str, value: object) -> None:
    if key in out.resources and out.resources[key] != value:
        raise TagError(f"the cell has two {key} tags", f"keep one {key}: tag")
    out.resources[key] = value


class _MagicParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print and exit
        raise TagError(f"%%stage: {message}", STAGE_USAGE)


STAGE_USAGE = "%%stage NAME [--after A [B ...]] [--gpus N] [--cpus N] [--memory SIZE] [--timeout SECONDS] [--retries N] [--no-cache]"


def _magic_parser() -> argparse.ArgumentParser:
    p = _MagicParser(prog="%%stage", add_help=False)
    p.add_argument("name")
    p.add_argument("--after", nargs="+", default=[])
    for key in RESOURCE_KEYS:
        p.add_argument(f"--{key}")
    p.add_argument("--no-cache", action="store_true")
    return p


def parse_stage_magic(line: str) -> CellTags:
    """Parse a ``%%stage NAME --after A --gpus 1`` line (or just its arguments) into tags."""
    magic = pipeline_magic(line)
    body = magic.args if magic is not None and magic.name == "stage" else line.strip()
    try:
        argv = shlex.split(body)
    except ValueError as exc:
        raise TagError(f"%%stage: {exc}", STAGE_USAGE) from None
    args = _magic_parser().parse_args(argv)
    out = CellTags(stage=_stage_name(args.name, f"%%stage {args.name}"))
    out.after = [_stage_name(a, f"--after {a}") for a in args.after]
    for key in RESOURCE_KEYS:
        value = getattr(args, key)
        if value is not None:
            out.resources[key] = _resource(key, value)
    if args.no_cache:
        out.cache = False
    out.magic = "stage"
    return out


def _merge(out: CellTags, magic: CellTags) -> None:
    if out.stage and magic.stage and out.stage != magic.stage:
        raise TagError(
            f"the cell is tagged stage {out.stage!r} but its %%stage line says {magic.stage!r}",
            "make the tag and the magic agree, or drop one",
        )
    out.stage = magic.stage or out.stage
    out.after += [a for a in magic.after if a not in out.after]
    for key, value in magic.resources.items():
        _set_resource(out, key, value)
    if magic.cache is False:
        out.cache = False
