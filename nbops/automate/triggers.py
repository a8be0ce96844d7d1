"""What makes a schedule fire, as plain data, and when a time trigger is due.

A trigger is a JSON-able dict of one kind:

- ``{"kind": "cron", "cron": "0 3 * * *", "tz": "Europe/Berlin"}``
- ``{"kind": "every", "seconds": 600}`` (anchored at the schedule's ``created_at``)
- ``{"kind": "on_change", "watch": ["data/*.csv", "s3://b/k"], "debounce": 1.0}`` (see ``watch.py``)
- ``{"kind": "after", "schedule": "nightly"}`` (when that schedule's run succeeds)

Cron is evaluated here, not by a package: croniter is in maintenance mode and
has had daylight-saving bugs; cronsim is sound but its fall-back rule (which of
a repeated hour's two instants fire) is not ours to choose. Ours is ~150 lines
with exactly these rules, checked by tests in two zones:

- 5 fields (minute hour day-of-month month day-of-week), ranges, steps, lists,
  names (jan..dec, sun..sat; 0 and 7 are Sunday), ``@hourly/@daily/@weekly/
  @monthly/@yearly``. Day of month and day of week: when both are restricted
  (neither starts with ``*``) a day matches either one (Vixie cron's OR rule).
- Times are local to the trigger's zone (``zoneinfo``).
- Spring forward: a local time that does not exist fires once, at the first
  valid instant after the gap (``30 2 * * *`` in Berlin on the last Sunday of
  March fires at 03:00+02:00); several skipped times make one firing.
- Fall back: a local time that happens twice fires once, at its first
  occurrence (``30 2 * * *`` fires at 02:30+02:00, not again at 02:30+01:00);
  this holds for every repeated minute, so ``0 * * * *`` has one 2-hour gap.

Firing keys are stable across processes (two schedulers compute the same key
for the same firing): ``cron:<ISO local time with offset>``, ``every:<epoch>``.
"""

from __future__ import annotations

import bisect
import calendar
import difflib
import math
import os
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from nbops.errors import UsageError

__all__ = [
    "make_trigger",
    "firings_between",
    "next_times",
    "parse_cron",
    "parse_interval",
    "zone",
    "local_zone_name",
    "describe",
    "iso",
    "TRIGGER_KINDS",
    "DEFAULT_DEBOUNCE",
]

TRIGGER_KINDS = ("cron", "every", "on_change", "after")
# Long enough for a copy or upload to finish, short enough that file change ->
# run started stays within ~2 s with the scheduler's poll.
DEFAULT_DEBOUNCE = 1.0
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, low, high, names)
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_EXAMPLE = "e.g. '0 3 * * *' (03:00 every day), '*/15 * * * 1-5' (every 15 minutes on weekdays), or @daily"


# -- making a trigger ----------------------------------------------------------------


def make_trigger(
    *,
    cron: str | None = None,
    tz: str | None = None,
    every: str | int | float | None = None,
    on_change: list[str] | str | None = None,
    after: str | None = None,
    debounce: float | str | None = None,
) -> dict[str, Any]:
    """A validated trigger dict from exactly one of ``cron``, ``every``, ``on_change``, ``after``.

    A cron trigger without ``tz`` takes this machine's zone, written into the
    trigger so every scheduler sharing the store reads the same times."""
    given = [k for k, v in (("cron", cron), ("every", every), ("on_change", on_change), ("after", after)) if v not in (None, [], "")]
    if len(given) != 1:
        raise UsageError(
            "a schedule needs exactly one trigger" + (f", got {' and '.join('--' + k.replace('_', '-') for k in given)}" if given else ""),
            "pass one of --cron EXPR [--tz ZONE], --every 10m, --on-change GLOB_OR_URL..., --after SCHEDULE",
        )
    if tz is not None and cron is None:
        raise UsageError("--tz applies to --cron only", "drop --tz, or use --cron")
    if debounce is not None and on_change is None:
        raise UsageError("--debounce applies to --on-change only", "drop --debounce, or use --on-change")
    if cron is not None:
        parse_cron(cron)
        return {"kind": "cron", "cron": " ".join(cron.split()), "tz": zone(tz or local_zone_name()).key}
    if every is not None:
        return {"kind": "every", "seconds": parse_interval(every)}
    if on_change is not None:
        watch = [on_change] if isinstance(on_change, str) else list(on_change)
        for w in watch:
            if not isinstance(w, str) or not w.strip():
                raise UsageError(f"--on-change takes file paths, globs or URLs, got {w!r}", "e.g. --on-change 'data/*.csv' or --on-change inputs")
        if "inputs" in watch and len(watch) > 1:
            raise UsageError("--on-change inputs stands alone (it means the files the notebook reads)", "pass either inputs or paths/globs/URLs")
        return {"kind": "on_change", "watch": [w.strip() for w in watch], "debounce": _debounce(debounce)}
    if not isinstance(after, str) or not NAME_RE.match(after):
        raise UsageError(f"--after takes a schedule name, got {after!r}", "see the names with: nbops schedule ls")
    return {"kind": "after", "schedule": after}


def _debounce(value: float | str | None) -> float:
    if value is None:
        return DEFAULT_DEBOUNCE
    try:
        seconds = float(parse_interval(value)) if isinstance(value, str) and value[-1:].isalpha() else float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--debounce takes seconds, got {value!r}", "e.g. --debounce 2 (wait until a file stayed the same for 2 s)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"--debounce must be 0 or more seconds, got {value!r}", "e.g. --debounce 2")
    return seconds


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL_RE = re.compile(r"(\d+)\s*([smhdw])")


def parse_interval(text: str | int | float) -> int:
    """Seconds in an interval: ``30s``, ``10m``, ``2h``, ``1d``, ``1h30m`` (or a whole number of seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = text
    else:
        s = str(text).strip().lower()
        if s.isdigit():
            seconds = int(s)
        else:
            parts = _INTERVAL_RE.findall(s)
            if not parts or _INTERVAL_RE.sub("", s).strip():
                raise UsageError(f"bad interval {text!r}", "write a number and a unit: 30s, 10m, 2h, 1d (or 1h30m)")
            seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds != int(seconds) or seconds < 1:
        raise UsageError(f"bad interval {text!r}: it must be a whole number of seconds, at least 1", "e.g. 30s, 10m, 2h, 1d")
    return int(seconds)


# -- zones ---------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a UsageError suggesting the closest names."""
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name or "", sorted(available_timezones()), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UsageError(f"unknown time zone {name!r}", f"{hint}use an IANA name such as Europe/Berlin, America/New_York or UTC") from None


def local_zone_name() -> str:
    """This machine's zone as an IANA name: $TZ, /etc/timezone, the /etc/localtime link, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        link = os.readlink("/etc/localtime")
        candidates.append(link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else "")
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name).key
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return "UTC"


# -- cron ----------------------------------------------------------------------------


class Cron:
    """A parsed cron expression: the allowed values of each field."""

    def __init__(self, minutes: frozenset, hours: frozenset, days: frozenset, months: frozenset, weekdays: frozenset, day_or: bool):
        self.minutes, self.hours, self.days, self.months, self.weekdays = minutes, hours, days, months, weekdays
        self.day_or = day_or  # both day fields restricted: a day matches either
        self._minutes, self._hours = sorted(minutes), sorted(hours)  # for bisect: the next allowed value in one step

    def day_matches(self, y: int, m: int, d: int) -> bool:
        dom = d in self.days
        dow = (calendar.weekday(y, m, d) + 1) % 7 in self.weekdays  # cron: 0 = Sunday
        return (dom or dow) if self.day_or else (dom and dow)

    def next_after(self, t: datetime) -> datetime | None:
        """The first matching local (naive) minute strictly after ``t``; None if there is none within 28 years."""
        t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t.year + 28  # the calendar repeats every 28 years (within a century): no match by then is none
        while t.year <= limit:
            if t.month not in self.months:
                y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = datetime(y, m, 1)
            elif not self.day_matches(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                i = bisect.bisect_right(self._hours, t.hour)
                day = datetime(t.year, t.month, t.day)
                t = day.replace(hour=self._hours[i]) if i < len(self._hours) else day + timedelta(days=1)
            elif t.minute not in self.minutes:
                i = bisect.bisect_right(self._minutes, t.minute)
                t = t.replace(minute=self._minutes[i]) if i < len(self._minutes) else datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
            else:
                return t
        return None


def parse_cron(expr: str) -> Cron:
    """A cron expression parsed, or a UsageError naming the bad field and value."""
    return _parse_cron(" ".join(str(expr).split()).lower())


@lru_cache(maxsize=4096)  # 1,000 schedules re-evaluated every tick parse each expression once
def _parse_cron(expr: str) -> Cron:
    text = _MACROS.get(expr, expr)
    if text.startswith("@"):
        raise UsageError(f"invalid cron expression {expr!r}: unknown macro {text!r}", f"use one of {', '.join(_MACROS)}, or 5 fields: {_EXAMPLE}")
    parts = text.split()
    if len(parts) != 5:
        raise UsageError(
            f"invalid cron expression {expr!r}: it has {len(parts)} field{'s' if len(parts) != 1 else ''}, cron has 5 "
            "(minute hour day-of-month month day-of-week)",
            _EXAMPLE,
        )
    sets = [_field(expr, value, *spec) for value, spec in zip(parts, _FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = sets
    weekdays = frozenset(0 if d == 7 else d for d in weekdays)
    day_or = not parts[2].startswith("*") and not parts[4].startswith("*")
    if not day_or and parts[4].startswith("*"):
        # Without the weekday to fall back on, "31 in February" would never fire: refuse it now.
        longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in months}
        if not any(d <= longest[m] for m in months for d in days):
            raise UsageError(
                f"invalid cron expression {expr!r}: day of month {parts[2]!r} never occurs in month {parts[3]!r}",
                "pick a day that the month has (February has 28 or 29)",
            )
    return Cron(minutes, hours, days, months, weekdays, day_or)


def _field(expr: str, value: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset:
    def bad(why: str) -> UsageError:
        allowed = f"{low}-{high}" + (f" or names ({', '.join(list(names)[:3])}, ...)" if names else "")
        return UsageError(
            f"invalid cron expression {expr!r}: {name} {value!r} {why}", f"{name} takes {allowed}, '*', ranges a-b, steps */n, lists a,b; {_EXAMPLE}"
        )

    def number(tok: str) -> int:
        if tok in names:
            return names[tok]
        if not tok.isdigit():
            what = "is" if tok == value else f"has {tok!r}, which is"
            raise bad(f"{what} not a number" + (" or a name" if names else ""))
        n = int(tok)
        if not low <= n <= high:
            raise bad(f"is out of range {low}-{high}")
        return n

    out: set[int] = set()
    for item in value.split(","):
        rng, _, step_text = item.partition("/")
        step = 1
        if step_text or "/" in item:
            if not step_text.isdigit() or int(step_text) < 1:
                raise bad(f"has step {step_text!r}; a step is a whole number of 1 or more")
            step = int(step_text)
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            first, _, last = rng.partition("-")
            a, b = number(first), number(last)
            if a > b:
                raise bad(f"has range {rng!r} that runs backwards")
        elif rng:
            a = number(rng)
            b = high if step_text else a  # "5/15": from 5 to the end, every 15
        else:
            raise bad("has an empty item")
        out.update(range(a, b + 1, step))
    return frozenset(out)


# -- firing times --------------------------------------------------------------------


def _instant(naive: datetime, tz: ZoneInfo) -> float:
    """The epoch of a local wall time: its first occurrence when repeated, the end of the gap when skipped."""
    ts = naive.replace(tzinfo=tz, fold=0).timestamp()
    if datetime.fromtimestamp(ts, tz).replace(tzinfo=None) == naive:
        return ts
    # In a gap fold=1 lands before it, fold=0 after: the transition lies between; find its second.
    lo, hi = int(naive.replace(tzinfo=tz, fold=1).timestamp()), math.ceil(ts)
    before = datetime.fromtimestamp(lo, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return float(hi)


def _cron_firings(trigger: dict, start: float, end: float, limit: int | None):
    tz = zone(trigger.get("tz") or "UTC")
    cron = parse_cron(trigger["cron"])
    cursor = datetime.fromtimestamp(start, tz).replace(tzinfo=None)
    last = None
    while limit is None or limit > 0:
        cursor = cron.next_after(cursor)
        if cursor is None:
            return
        at = _instant(cursor, tz)
        if at <= start or at == last:  # a repeated hour's second pass, or a second skipped time in one gap
            continue
        if at > end:
            return
        last = at
        if limit is not None:
            limit -= 1
        yield f"cron:{datetime.fromtimestamp(at, tz).isoformat()}", at


def _every_firings(trigger: dict, start: float, end: float, anchor: float | None, limit: int | None):
    step = int(trigger["seconds"])
    base = float(math.floor(anchor or 0.0))  # whole seconds: keys and shown times read cleanly
    k = max(1, math.floor((start - base) / step) + 1)
    while limit is None or limit > 0:
        at = base + k * step
        if at > end:
            return
        if at > start:
            if limit is not None:
                limit -= 1
            yield f"every:{int(round(at))}", at
        k += 1


def firings_between(trigger: dict, start: float, end: float, *, anchor: float | None = None, limit: int | None = None) -> list[tuple[str, float]]:
    """The (key, due epoch) of a cron or interval trigger in (start, end], oldest first
    (at most ``limit``). Data and ``after`` triggers have no times: an empty list."""
    kind = trigger.get("kind")
    if kind == "cron":
        return list(_cron_firings(trigger, start, end, limit))
    if kind == "every":
        return list(_every_firings(trigger, start, end, anchor, limit))
    return []


def next_times(trigger: dict, after: float, n: int = 5, anchor: float | None = None) -> list[float]:
    """The next ``n`` due times after ``after`` (none for data and ``after`` triggers)."""
    return [at for _, at in firings_between(trigger, after, math.inf, anchor=anchor, limit=n)]


def describe(trigger: dict) -> str:
    """One line for people: ``cron 0 3 * * * (Europe/Berlin)``, ``every 10m``, ``on change of data/*.csv``."""
    kind = trigger.get("kind")
    if kind == "cron":
        return f"cron {trigger['cron']} ({trigger.get('tz') or 'UTC'})"
    if kind == "every":
        s = int(trigger["seconds"])
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if s % size == 0:
                return f"every {s // size}{unit}"
        return f"every {s}s"
    if kind == "on_change":
        what = "the notebook's inputs" if trigger.get("from_inputs") else ", ".join(trigger.get("watch") or [])
        return f"on change of {what} (debounce {trigger.get('debounce', DEFAULT_DEBOUNCE):g}s)"
    if kind == "after":
        return f"after {trigger['schedule']} succeeds"
    return str(kind)


def iso(epoch: float, tz: str | None = None) -> str:
    """An epoch as ISO 8601 with its offset, in ``tz`` (UTC by default)."""
    return datetime.fromtimestamp(epoch, zone(tz) if tz else timezone.utc).isoformat(timespec="seconds")
