"""Triggers: cron parsing and evaluation (fields, names, the day OR rule, daylight saving), intervals, bad input."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nbops.automate.triggers import describe, firings_between, make_trigger, next_times, parse_cron, parse_interval
from nbops.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=tz, fold=fold).timestamp()


def local(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def cron(expr: str, tz: str = "UTC") -> dict:
    return make_trigger(cron=expr, tz=tz)


UTC = ZoneInfo("UTC")


def test_trigger_dicts_are_plain_data():
    assert make_trigger(cron="0 3 * * *", tz="Europe/Berlin") == {"kind": "cron", "cron": "0 3 * * *", "tz": "Europe/Berlin"}
    assert make_trigger(every="10m") == {"kind": "every", "seconds": 600}
    assert make_trigger(on_change=["data/*.csv"], debounce=2) == {"kind": "on_change", "watch": ["data/*.csv"], "debounce": 2.0}
    assert make_trigger(after="nightly") == {"kind": "after", "schedule": "nightly"}
    assert make_trigger(cron="@daily", tz="UTC")["cron"] == "@daily"
    assert describe(make_trigger(every="2h")) == "every 2h"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "exactly one trigger"),
        ({"cron": "0 3 * * *", "every": "1h"}, "--cron and --every"),
        ({"every": "1h", "tz": "UTC"}, "--tz applies to --cron"),
        ({"every": "1h", "debounce": 2}, "--debounce applies to --on-change"),
        ({"after": "Not A Name"}, "schedule name"),
        ({"on_change": ["inputs", "x.csv"]}, "stands alone"),
        ({"on_change": ["x.csv"], "debounce": -1}, "0 or more"),
    ],
)
def test_bad_trigger_combinations(kwargs, words):
    with pytest.raises(UsageError, match=words):
        make_trigger(**kwargs)


def test_cron_fields_lists_steps_ranges_names():
    start = at(UTC, 2026, 12, 1)  # a Tuesday
    got = [local(t, UTC) for _, t in firings_between(cron("*/20 9-10 * * *"), start, at(UTC, 2026, 12, 1, 23))]
    assert got == [f"2026-12-01T{h}:{m}:00+00:00" for h in ("09", "10") for m in ("00", "20", "40")]
    got = [local(t, UTC)[:10] for t in next_times(cron("0 9 * * mon,wed-fri"), start, n=5)]
    assert got == ["2026-12-02", "2026-12-03", "2026-12-04", "2026-12-07", "2026-12-09"]
    got = [local(t, UTC)[:10] for t in next_times(cron("0 0 1 jan,jul *"), start, n=3)]
    assert got == ["2027-01-01", "2027-07-01", "2028-01-01"]
    # 0 and 7 are both Sunday; "5/20" runs from 5 to the end in steps of 20
    assert next_times(cron("0 0 * * 7"), start, n=2) == next_times(cron("0 0 * * sun"), start, n=2) == next_times(cron("0 0 * * 0"), start, n=2)
    assert [local(t, UTC)[14:16] for t in next_times(cron("5/20 * * * *"), start, n=3)] == ["05", "25", "45"]


def test_cron_macros():
    start = at(UTC, 2026, 12, 1, 10, 30)
    assert [local(t, UTC) for t in next_times(cron("@hourly"), start, n=2)] == ["2026-12-01T11:00:00+00:00", "2026-12-01T12:00:00+00:00"]
    assert local(next_times(cron("@daily"), start, n=1)[0], UTC) == "2026-12-02T00:00:00+00:00"
    assert local(next_times(cron("@weekly"), start, n=1)[0], UTC) == "2026-12-06T00:00:00+00:00"  # Sunday
    assert local(next_times(cron("@monthly"), start, n=1)[0], UTC) == "2027-01-01T00:00:00+00:00"


def test_day_of_month_or_day_of_week():
    start = at(UTC, 2026, 12, 1)
    # both restricted: the 13th OR any Friday (Dec 2026: Fridays 4, 11, 18; the 13th a Sunday)
    got = [local(t, UTC)[:10] for t in next_times(cron("0 0 13 * fri"), start, n=4)]
    assert got == ["2026-12-04", "2026-12-11", "2026-12-13", "2026-12-18"]
    # one is '*': the other alone decides ('*/2' in day of month counts as '*' for the rule, as in Vixie cron)
    got = [local(t, UTC)[:10] for t in next_times(cron("0 0 * * fri"), start, n=2)]
    assert got == ["2026-12-04", "2026-12-11"]
    got = [local(t, UTC)[:10] for t in next_times(cron("0 0 */10 * fri"), start, n=2)]
    assert got == ["2026-12-11", "2027-01-01"]  # day 1, 11, 21, 31 AND a Friday


@pytest.mark.parametrize(
    "expr, field, value",
    [
        ("61 3 * * *", "minute", "'61'"),
        ("0 24 * * *", "hour", "'24'"),
        ("0 3 0 * *", "day of month", "'0'"),
        ("0 3 * 13 *", "month", "'13'"),
        ("0 3 * * 8", "day of week", "'8'"),
        ("0 3 * foo *", "month", "'foo'"),
        ("0 3 * * fri-mon", "day of week", "runs backwards"),
        ("*/0 3 * * *", "minute", "step"),
        ("0 3 1,,2 * *", "day of month", "empty item"),
    ],
)
def test_invalid_cron_names_the_field(expr, field, value):
    with pytest.raises(UsageError) as err:
        parse_cron(expr)
    assert f"{field} " in err.value.message and value in err.value.message and err.value.fix


def test_invalid_cron_shape():
    with pytest.raises(UsageError, match="it has 3 fields, cron has 5"):
        parse_cron("0 3 *")
    with pytest.raises(UsageError, match="unknown macro"):
        parse_cron("@often")
    with pytest.raises(UsageError, match="never occurs"):
        parse_cron("0 0 30 2 *")


def test_unknown_time_zone_suggests_a_fix():
    with pytest.raises(UsageError) as err:
        make_trigger(cron="0 3 * * *", tz="Europe/Berln")
    assert "unknown time zone 'Europe/Berln'" in err.value.message and "Europe/Berlin" in err.value.fix
    with pytest.raises(UsageError, match="unknown time zone"):
        make_trigger(cron="0 3 * * *", tz="../../etc/passwd")


def test_cron_without_tz_records_this_machines_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    assert make_trigger(cron="0 3 * * *")["tz"] == "America/New_York"


@pytest.mark.parametrize(
    "tz, day, expected",
    [
        # spring forward: 02:30 does not exist; it fires once at the first instant after the gap
        (BERLIN, (2026, 3, 29), "2026-03-29T03:00:00+02:00"),
        (NEW_YORK, (2026, 3, 8), "2026-03-08T03:00:00-04:00"),
    ],
)
def test_spring_forward_fires_once_after_the_gap(tz, day, expected):
    trig = make_trigger(cron="30 2 * * *", tz=tz.key)
    got = firings_between(trig, at(tz, *day) - 86400, at(tz, *day) + 2 * 86400)
    keys = [k for k, _ in got]
    assert keys[1] == f"cron:{expected}" and len(got) == 3
    assert local(got[1][1], tz) == expected
    # every minute of the skipped hour is one firing, not 12 (and 03:00 itself is the same instant)
    many = firings_between(make_trigger(cron="*/5 2,3 * * *", tz=tz.key), at(tz, *day, 1), at(tz, *day, 3, 30))
    assert [local(t, tz) for _, t in many] == [
        expected,
        expected.replace("03:00", "03:05"),
        *[expected.replace("03:00", f"03:{m}") for m in ("10", "15", "20", "25", "30")],
    ]


@pytest.mark.parametrize("tz, day, first", [(BERLIN, (2026, 10, 25), "+02:00"), (NEW_YORK, (2026, 11, 1), "-04:00")])
def test_fall_back_fires_a_repeated_time_once(tz, day, first):
    hour = 2 if tz is BERLIN else 1  # the repeated hour: Berlin 02:xx, New York 01:xx
    trig = make_trigger(cron=f"30 {hour} * * *", tz=tz.key)
    got = firings_between(trig, at(tz, *day) - 86400, at(tz, *day) + 2 * 86400)
    assert [k for k, _ in got][1] == f"cron:{day[0]}-{day[1]:02d}-{day[2]:02d}T{hour:02d}:30:00{first}"
    assert len(got) == 3  # not 4: the second 02:30 (01:30) is not a firing
    # starting inside the repeated hour's second pass: its 30 already fired in the first pass
    second_pass = at(tz, *day, hour, 10, fold=1)
    assert firings_between(trig, second_pass, second_pass + 3600) == []
    # hourly: the repeated hour fires once; the keys stay unique
    hourly = firings_between(make_trigger(cron="0 * * * *", tz=tz.key), at(tz, *day), at(tz, *day) + 6 * 3600)
    assert len(hourly) == 5 and len({k for k, _ in hourly}) == 5


def test_firings_across_a_week_are_stable_and_unique():
    trig = make_trigger(cron="0 3 * * *", tz="Europe/Berlin")
    start, end = at(BERLIN, 2026, 12, 1), at(BERLIN, 2026, 12, 8)
    week = firings_between(trig, start, end)
    assert [k for k, _ in week] == [f"cron:2026-12-{d:02d}T03:00:00+01:00" for d in range(1, 8)]
    # (start, end]: a firing at exactly `end` is in, one at exactly `start` is not; split windows give the same keys
    assert firings_between(trig, week[0][1], week[2][1]) == week[1:3]
    mid = start + 3.5 * 86400
    assert firings_between(trig, start, mid) + firings_between(trig, mid, end) == week
    assert firings_between(trig, start, end, limit=2) == week[:2]


def test_intervals():
    assert [parse_interval(x) for x in ("30s", "10m", "2h", "1d", "1h30m", "90", 45)] == [30, 600, 7200, 86400, 5400, 90, 45]
    for bad in ("10x", "m", "", "0s", "-5m", "1.5h", "ten minutes"):
        with pytest.raises(UsageError, match="interval"):
            parse_interval(bad)
    trig = make_trigger(every="10m")
    anchor = 1_000_000.0
    got = firings_between(trig, anchor, anchor + 3600, anchor=anchor)
    assert [k for k, _ in got] == [f"every:{int(anchor) + 600 * k}" for k in range(1, 7)]
    # windows inside the span see the same keys (so two schedulers agree), never the anchor itself
    assert firings_between(trig, anchor + 601, anchor + 1800, anchor=anchor) == got[1:3]
    assert firings_between(trig, anchor - 5000, anchor + 600, anchor=anchor) == got[:1]
    assert next_times(trig, anchor + 100, n=2, anchor=anchor) == [anchor + 600, anchor + 1200]


def test_data_and_after_triggers_have_no_times():
    assert firings_between(make_trigger(after="nightly"), 0, 1e10) == []
    assert next_times(make_trigger(on_change=["x.csv"]), 0) == []
