"""The history in SQLite (mbuspico.history): a simulated month with known energy.

March 2026 in Europe/Vienna: summer time begins on the 29th (02:00 -> 03:00,
a day of 23 hours), the meter's import register restarts from zero on the
15th, the service is down for three and a half hours on the 20th (the meter
counts on) and restarts twice, once within a minute. The expected hourly,
daily and monthly energy is computed here from the readings alone (each
reading's increase over the one before, a drop counted as a restart from
zero), bucketed with zoneinfo, and must equal what the history answers, to
the watt-hour.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mbuspico import history
from mbuspico.history import HistoryError, Recorder, query

VIENNA = ZoneInfo("Europe/Vienna")
START = datetime(2026, 3, 1, tzinfo=VIENNA)
END = datetime(2026, 4, 1, tzinfo=VIENNA)
STEP = 30  # seconds between readings
RESET = datetime(2026, 3, 15, 12, 34, 30, tzinfo=VIENNA).timestamp()  # A+ restarts from 0
GAP = (
    datetime(2026, 3, 20, 10, 0, tzinfo=VIENNA).timestamp(),
    datetime(2026, 3, 20, 13, 30, tzinfo=VIENNA).timestamp(),
)  # no readings: the service is down; the meter counts on
RESTART_IN_MINUTE = datetime(2026, 3, 10, 8, 15, 30, tzinfo=VIENNA).timestamp()


def _increase(slot: int) -> int:
    """Wh the meter counts in the 30 s before slot ``slot`` (0..22: up to 2.6 kW)."""
    return (slot * 7919 + 13) % 23


def _export(slot: int) -> int:
    """Wh exported in the 30 s before ``slot``: a little at midday."""
    hour = datetime.fromtimestamp(START.timestamp() + slot * STEP, VIENNA).hour
    return 3 if 11 <= hour < 15 and slot % 4 == 0 else 0


def _month() -> tuple[list[tuple[float, dict[str, Any]]], int]:
    """The readings (time, reading) and the energy the meter counted after the first."""
    readings = []
    plus, minus = 12_345_678, 1_000_000
    counted = 0
    t0, t1 = int(START.timestamp()), int(END.timestamp())
    for slot, t in enumerate(range(t0, t1, STEP)):
        inc = _increase(slot) if slot else 0
        counted += inc
        plus = inc if t == RESET else plus + inc
        minus += _export(slot) if slot else 0
        if GAP[0] <= t < GAP[1]:
            continue
        readings.append(
            (
                float(t),
                {
                    "protocol": "dlms",
                    "meterNumber": "181220002177",
                    "activePowerPlus": inc * 120,  # W: inc Wh in 30 s
                    "activePowerMinus": _export(slot) * 120 if slot else 0,
                    "activeEnergyPlus": plus,
                    "activeEnergyMinus": minus,
                },
            )
        )
    return readings, counted


def _expected(readings: list[tuple[float, dict[str, Any]]], field: str, key: Any) -> dict[Any, int]:
    """Each reading's increase over the one before (a drop: from 0), summed by ``key(time)``."""
    out: dict[Any, int] = defaultdict(int)
    prev = None
    for t, reading in readings:
        value = reading[field]
        if prev is not None:
            out[key(t)] += value - prev if value >= prev else value
        else:
            out[key(t)] += 0
        prev = value
    return dict(out)


def _record(path: Path, readings: list[tuple[float, dict[str, Any]]], **options: Any) -> None:
    """Record as the service does: a flush after each reading, restarts where the month has them."""
    rec = Recorder(path, tz="Europe/Vienna", **options)
    try:
        for t, reading in readings:
            if t == RESTART_IN_MINUTE or t == GAP[1]:
                rec.close()  # stopped: the minute in progress is written
                rec = Recorder(path, tz="Europe/Vienna", **options)
            rec.add(reading, t)
            rec.flush(now=t)
    finally:
        rec.close()


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any], int]:
    readings, counted = _month()
    path = tmp_path_factory.mktemp("history") / "history.sqlite3"
    _record(path, readings)
    return path, readings, counted


NOW = END.timestamp() + 3600


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t, VIENNA)


def test_month_daily_energy_is_exact_over_dst_reset_gap_and_restarts(month) -> None:
    path, readings, counted = month
    got = query(path, "activeEnergyPlus", START, END.timestamp() - 1, "1d", now=NOW)
    expected = _expected(readings, "activeEnergyPlus", lambda t: _local(t).date())
    assert [_local(t).date() for t in got.time] == sorted(expected)
    assert got.columns["activeEnergyPlus"]["delta"] == [expected[d] for d in sorted(expected)]
    # The meter's own count: every watt-hour after the first reading, the reset's
    # and the gap's included.
    assert sum(got.columns["activeEnergyPlus"]["delta"]) == counted
    # The day summer time begins has 23 hours; its energy is its 23 hours'.
    day = datetime(2026, 3, 29, tzinfo=VIENNA)
    hours = query(path, "activeEnergyPlus", day, day + timedelta(days=1), "1h", now=NOW)
    labels = [_local(t).strftime("%H%z") for t in hours.time]
    assert len(labels) == 23
    assert labels[:4] == ["00+0100", "01+0100", "03+0200", "04+0200"]
    assert sum(hours.columns["activeEnergyPlus"]["delta"]) == expected[day.date()]


def test_month_hourly_energy_is_exact(month) -> None:
    path, readings, _ = month
    got = query(path, "activeEnergyPlus", START, END, "1h", now=NOW)
    expected = _expected(readings, "activeEnergyPlus", lambda t: int(t) - int(t) % 3600)
    deltas = dict(zip(got.time, got.columns["activeEnergyPlus"]["delta"]))
    assert {int(t): v for t, v in deltas.items() if v is not None} == expected
    # The gap: no hour without a reading pretends to be 0; what the meter counted
    # meanwhile is in the hour readings came back.
    gap_hours = [t for t, v in deltas.items() if v is None]
    assert [_local(t).strftime("%d %H:%M") for t in gap_hours] == [
        "20 10:00",
        "20 11:00",
        "20 12:00",
    ]
    back = int(GAP[1]) - int(GAP[1]) % 3600
    assert deltas[back] == expected[back] > 0
    assert len(got.time) == 31 * 24 - 1  # March in Vienna has 743 hours


def test_month_monthly_energy_and_the_register(month) -> None:
    path, readings, counted = month
    got = query(path, None, START, END.timestamp() - 1, "1mo", now=NOW)
    assert got.time == [START.timestamp()]
    assert got.columns["activeEnergyPlus"] == {
        "delta": [counted],
        "last": [readings[-1][1]["activeEnergyPlus"]],
    }
    exported = sum(_expected(readings, "activeEnergyMinus", lambda t: 0).values())
    assert got.columns["activeEnergyMinus"]["delta"] == [exported] != [0]


def test_reset_inside_a_minute_loses_nothing(month) -> None:
    """A register that restarts within a minute: the minute holds both sides."""
    path, readings, _ = month
    minute = int(RESET) - int(RESET) % 60
    got = query(path, "activeEnergyPlus", minute - 300, minute + 300, "1m", now=NOW)
    expected = _expected(readings, "activeEnergyPlus", lambda t: int(t) - int(t) % 60)
    assert got.columns["activeEnergyPlus"]["delta"] == [expected[int(t)] for t in got.time]
    at = got.time.index(minute)
    assert (
        got.columns["activeEnergyPlus"]["last"][at]
        < got.columns["activeEnergyPlus"]["last"][at - 1]
    )


def test_power_min_mean_max(month) -> None:
    path, readings, _ = month
    hour = datetime(2026, 3, 12, 18, tzinfo=VIENNA).timestamp()
    got = query(path, "activePowerPlus", hour, hour + 3600, "1h", now=NOW)
    values = [r["activePowerPlus"] for t, r in readings if hour <= t < hour + 3600]
    assert got.columns["activePowerPlus"] == {
        "min": [min(values)],
        "mean": [round(sum(values) / len(values), 3)],
        "max": [max(values)],
    }
    assert got.value("activePowerPlus") == got.columns["activePowerPlus"]["mean"]


def test_restart_within_a_minute_adds_to_it(month) -> None:
    path, _, _ = month
    minute = int(RESTART_IN_MINUTE) - int(RESTART_IN_MINUTE) % 60
    with sqlite3.connect(path) as db:
        (n,) = db.execute("SELECT n FROM minute WHERE t = ?", (minute,)).fetchone()
    assert n == 2  # 08:15:00 before the restart, 08:15:30 after


def test_restart_keeps_the_plots(tmp_path: Path) -> None:
    readings, _ = _month()
    days = [r for r in readings if r[0] < START.timestamp() + 2 * 86400]
    path = tmp_path / "h.sqlite3"
    _record(path, days[: len(days) // 2])
    before = query(path, None, START, START + timedelta(days=2), "1h", now=NOW)
    _record(path, days[len(days) // 2 :])
    after = query(path, None, START, START + timedelta(days=2), "1h", now=NOW)
    whole = tmp_path / "whole.sqlite3"
    _record(whole, days)
    once = query(whole, None, START, START + timedelta(days=2), "1h", now=NOW)
    assert after.columns == once.columns
    half = len([t for t in before.time if t + 3600 <= days[len(days) // 2][0]])
    for name, columns in before.columns.items():
        for key, values in columns.items():
            assert values[:half] == after.columns[name][key][:half], (name, key)


def test_fall_back_day_has_25_hours(tmp_path: Path) -> None:
    day = datetime(2026, 10, 25, tzinfo=VIENNA)
    path = tmp_path / "h.sqlite3"
    register = 1000
    with Recorder(path, tz="Europe/Vienna") as rec:
        for t in range(int(day.timestamp()) - 600, int(day.timestamp()) + 25 * 3600 + 600, 60):
            register += 10
            rec.add({"protocol": "dlms", "activeEnergyPlus": register}, t)
            rec.flush(now=t)
    hours = query(path, "activeEnergyPlus", day, day + timedelta(days=1), "1h", now=NOW + 1e8)
    labels = [_local(t).strftime("%H%z") for t in hours.time]
    assert len(labels) == 25
    assert labels[1:5] == ["01+0200", "02+0200", "02+0100", "03+0100"]
    assert hours.columns["activeEnergyPlus"]["delta"] == [600] * 25
    days = query(path, "activeEnergyPlus", day, day + timedelta(hours=25), "1d", now=NOW + 1e8)
    assert days.columns["activeEnergyPlus"]["delta"] == [25 * 600, 100]  # then 10 minutes


def test_half_hour_zone_days_from_the_minutes(tmp_path: Path) -> None:
    """India's days start at 18:30 UTC: not hours of the file, so the minutes give them."""
    zone = ZoneInfo("Asia/Kolkata")
    start = datetime(2026, 3, 1, tzinfo=zone)
    path = tmp_path / "h.sqlite3"
    readings = []
    register = 0
    for t in range(int(start.timestamp()), int(start.timestamp()) + 2 * 86400, 60):
        register += t % 7
        readings.append((t, register))
    with Recorder(path, tz="Asia/Kolkata") as rec:
        for t, value in readings:
            rec.add({"protocol": "dlms", "activeEnergyPlus": value}, t)
            rec.flush(now=t)
    got = query(path, "activeEnergyPlus", start, start + timedelta(days=2), "1d", now=NOW + 1e8)
    assert got.tz == "Asia/Kolkata"
    day1 = sum(t % 7 for t, _ in readings[1:1440])
    day2 = sum(t % 7 for t, _ in readings[1440:])
    assert got.columns["activeEnergyPlus"]["delta"] == [day1, day2]


def test_another_meter_adds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        for i, (meter, value) in enumerate([("A", 100), ("A", 150), ("B", 90_000), ("B", 90_020)]):
            rec.add(
                {"protocol": "dlms", "meterNumber": meter, "activeEnergyPlus": value}, t0 + i * 60
            )
    got = query(path, "activeEnergyPlus", t0, t0 + 240, "1m", now=NOW, tz="UTC")
    assert got.columns["activeEnergyPlus"]["delta"] == [0, 50, 0, 20]


def test_clock_going_back_is_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        assert rec.add({"protocol": "dlms", "activeEnergyPlus": 10}, t0 + 600)
        rec.flush(now=t0 + 700)
    with Recorder(path) as rec:  # a Raspberry Pi at boot: the clock before NTP
        assert not rec.add({"protocol": "dlms", "activeEnergyPlus": 11}, t0)
        assert rec.backwards == 1
        assert rec.add({"protocol": "dlms", "activeEnergyPlus": 12}, t0 + 900)
    got = query(path, "activeEnergyPlus", t0, t0 + 960, "5m", now=NOW, tz="UTC")
    assert got.columns["activeEnergyPlus"]["last"] == [None, None, 10, 12]
    assert got.columns["activeEnergyPlus"]["delta"] == [None, None, 0, 2]


def test_retention(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = int(START.timestamp())
    with Recorder(path, days=1, raw_days=0.5) as rec:
        for t in range(t0, t0 + 3 * 86400, 60):
            rec.add({"protocol": "dlms", "activePowerPlus": 5, "activeEnergyPlus": t // 60}, t)
            rec.flush(now=t)
    with sqlite3.connect(path) as db:
        first_minute = db.execute("SELECT min(t) FROM minute").fetchone()[0]
        first_raw = db.execute("SELECT min(t) FROM raw").fetchone()[0] / 1000
        hours = db.execute("SELECT count(*), min(t) FROM hour").fetchone()
    last = t0 + 3 * 86400 - 60
    assert last - 86400 - 3600 <= first_minute <= last - 86400 + 3600
    assert last - 43200 - 3600 <= first_raw <= last - 43200 + 3600
    assert hours == (71, t0)  # kept; the last hour is rolled up once the next one begins
    got = query(path, "activeEnergyPlus", t0, t0 + 3 * 86400 - 1, "1d", now=NOW, tz="Europe/Vienna")
    assert got.columns["activeEnergyPlus"]["delta"] == [1439, 1440, 1440]


def test_raw_readings(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        for i in range(5):
            rec.add({"protocol": "dlms", "activePowerPlus": 100 + i, "activeEnergyPlus": i}, t0 + i)
        pending = rec.pending()
        in_memory = query(path, "activePowerPlus", t0, t0 + 10, "raw", pending=pending, now=NOW)
        assert in_memory.time == [t0 + i for i in range(5)]
        assert in_memory.columns["activePowerPlus"] == {"value": [100, 101, 102, 103, 104]}
        with pytest.raises(HistoryError, match="a total is kept per minute"):
            query(path, "activeEnergyPlus", t0, t0 + 10, "raw", pending=pending)
    written = query(path, "activePowerPlus", t0, t0 + 10, "raw", now=NOW)
    assert (written.time, written.columns) == (in_memory.time, in_memory.columns)
    assert history.to_json(written)["value"] == [100, 101, 102, 103, 104]


def test_pending_minute_is_in_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        rec.add({"protocol": "dlms", "activeEnergyPlus": 7, "activePowerPlus": 3}, t0)
        rec.add({"protocol": "dlms", "activeEnergyPlus": 9, "activePowerPlus": 5}, t0 + 10)
        got = query(path, None, t0, t0 + 60, "1m", pending=rec.pending(), now=NOW)
        assert [s.name for s in got.series] == ["activePowerPlus", "activeEnergyPlus"]
        assert got.columns == {
            "activePowerPlus": {"min": [3], "mean": [4], "max": [5]},
            "activeEnergyPlus": {"delta": [2], "last": [9]},
        }
        assert [s.name for s in history.fields(path, rec.pending())] == [
            "activePowerPlus",
            "activeEnergyPlus",
        ]


def test_csv_and_json(month) -> None:
    path, _, _ = month
    day = datetime(2026, 3, 29, tzinfo=VIENNA)
    end = day.timestamp() + 3 * 3600
    got = query(path, "activePowerPlus,activeEnergyPlus", day, end, "1h", now=NOW)
    lines = history.to_csv(got).splitlines()
    assert lines[0] == (
        "time,activePowerPlus_min,activePowerPlus_mean,activePowerPlus_max,"
        "activeEnergyPlus_delta,activeEnergyPlus_last"
    )
    assert [line.split(",")[0] for line in lines[1:]] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert lines[1].split(",")[4] == str(got.columns["activeEnergyPlus"]["delta"][0])
    with pytest.raises(HistoryError, match="JSON answers one field"):
        history.to_json(got)
    one = query(path, "activeEnergyPlus", day, end, "1h", now=NOW)
    doc = json.loads(json.dumps(history.to_json(one)))
    assert doc["field"] == "activeEnergyPlus"
    assert (doc["kind"], doc["unit"], doc["medium"], doc["tz"]) == (
        "total",
        "Wh",
        "electricity",
        "Europe/Vienna",
    )
    assert doc["t"] == one.time
    assert doc["value"] == doc["delta"] == one.columns["activeEnergyPlus"]["delta"]


def test_pandas(month) -> None:
    pytest.importorskip("pandas")
    path, _, counted = month
    df = history.read(path, step="1d", start=START, end=END.timestamp() - 1)
    assert len(df) == 31
    assert str(df.index.tz) == "Europe/Vienna"
    assert df.index[28].isoformat() == "2026-03-29T00:00:00+01:00"
    assert df.attrs["units"]["activeEnergyPlus_delta"] == "Wh"
    assert df["activeEnergyPlus_delta"].sum() == counted
    assert list(df.columns) == [
        "activePowerPlus_min",
        "activePowerPlus_mean",
        "activePowerPlus_max",
        "activePowerMinus_min",
        "activePowerMinus_mean",
        "activePowerMinus_max",
        "activeEnergyPlus_delta",
        "activeEnergyPlus_last",
        "activeEnergyMinus_delta",
        "activeEnergyMinus_last",
    ]


@pytest.mark.parametrize(
    ("start", "end", "step", "error"),
    [
        (None, None, "1M", "unknown step '1M'"),
        (None, None, "7m", "unknown step"),
        ("yesterday", None, "1h", "from 'yesterday' is no time"),
        (None, "2026-13-01", "1h", "to '2026-13-01' is no time"),
        ("-1d", "-2d", "1h", "from is after to"),
        ("-20y", None, "1m", "too many points"),
        ("1e308", None, "1h", "from '1e308' is out of range: a time from 1970 to 9999"),
        ("-99999y", None, "1d", "from '-99999y' is out of range"),
        (None, "9999-12-31T23:59", "1h", "to is out of range: a time before the year 9999"),
    ],
)
def test_bad_queries(month, start, end, step, error) -> None:
    path, _, _ = month
    with pytest.raises(HistoryError, match=error):
        query(path, "activeEnergyPlus", start, end, step, now=NOW)


def test_unknown_field_and_zone(month) -> None:
    path, _, _ = month
    with pytest.raises(HistoryError, match=r"no field 'gas' in the history \(recorded: act"):
        query(path, "gas", now=NOW)
    with pytest.raises(HistoryError, match="unknown time zone 'Mars/Olympus'"):
        query(path, "activeEnergyPlus", tz="Mars/Olympus", now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1774738800", 1774738800.0),
        ("now", NOW),
        ("-48h", NOW - 48 * 3600),
        ("-90m", NOW - 90 * 60),
        ("2026-03-29", datetime(2026, 3, 29, tzinfo=VIENNA).timestamp()),
        ("2026-03-29T03:30", datetime(2026, 3, 29, 3, 30, tzinfo=VIENNA).timestamp()),
        ("2026-03-29T01:30Z", datetime(2026, 3, 29, 3, 30, tzinfo=VIENNA).timestamp()),
        ("-2mo", datetime(2026, 2, 1, 1, tzinfo=VIENNA).timestamp()),
    ],
)
def test_times(text: str, expected: float) -> None:
    assert history._parse_time(text, VIENNA, NOW, "from") == expected


def test_default_spans(month) -> None:
    path, _, _ = month
    end = END.timestamp()
    assert query(path, "activeEnergyPlus", None, end, "1h", now=NOW).start == end - 48 * 3600
    daily = query(path, "activeEnergyPlus", None, end, "1d", now=NOW)
    assert _local(daily.start).date().isoformat() == "2026-01-29"  # 62 days back
    monthly = query(path, "activeEnergyPlus", None, end, "1mo", now=NOW)
    assert _local(monthly.start).date().isoformat() == "2024-04-01"


# -- the file -----------------------------------------------------------------------


def test_not_a_history(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t(x)")
    with pytest.raises(HistoryError, match="is not an mbuspico history"):
        Recorder(other)
    with pytest.raises(HistoryError, match="is not an mbuspico history"):
        query(other)
    with pytest.raises(HistoryError, match="no history at"):
        query(tmp_path / "missing.sqlite3")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    Recorder(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {history.SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError, match="written by a newer mbuspico"):
        Recorder(path)
    with pytest.raises(HistoryError, match="written by a newer mbuspico"):
        history.fields(path)


def test_tables_unlike_the_schema_version_are_refused(tmp_path: Path) -> None:
    # A file whose version matches but whose tables do not (seen: a file of a
    # development build): a HistoryError naming the file, never a KeyError.
    readings, _ = _month()
    path = tmp_path / "h.sqlite3"
    _record(path, readings[:300])
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(minute)")]
        increase = next(c for c in columns if c.endswith("_inc"))
        db.execute(f"ALTER TABLE minute DROP COLUMN {increase}")
    with pytest.raises(HistoryError, match="does not hold the tables of history schema"):
        Recorder(path)


def test_migration_keeps_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        rec.add({"protocol": "dlms", "activeEnergyPlus": 5}, t0)
        rec.add({"protocol": "dlms", "activeEnergyPlus": 8}, t0 + 60)

    def to_v2(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE meta ADD COLUMN note TEXT")

    monkeypatch.setitem(history.MIGRATIONS, history.SCHEMA_VERSION, to_v2)
    monkeypatch.setattr(history, "SCHEMA_VERSION", history.SCHEMA_VERSION + 1)
    with pytest.raises(HistoryError, match="start mbuspico serve once to upgrade"):
        query(path)  # a reader does not write
    Recorder(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION
        assert "note" in [c[1] for c in db.execute("PRAGMA table_info(meta)")]
    got = query(path, "activeEnergyPlus", t0, t0 + 120, "1m", now=NOW, tz="UTC")
    assert got.columns["activeEnergyPlus"] == {"delta": [0, 3], "last": [5, 8]}


def test_one_recorder_per_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with Recorder(path), pytest.raises(HistoryError, match="another process records into"):
        Recorder(path)
    Recorder(path).close()  # free again


def test_a_failing_disk_keeps_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = START.timestamp()
    with Recorder(path) as rec:
        rec.add({"protocol": "dlms", "activeEnergyPlus": 5}, t0)
        good = rec._write

        def full(*args: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(rec, "_write", full)
        rec.add({"protocol": "dlms", "activeEnergyPlus": 6}, t0 + 60)
        assert rec.flush(now=t0 + 61) == 0
        rec.add({"protocol": "dlms", "activeEnergyPlus": 9}, t0 + 120)
        assert rec.flush(now=t0 + 121) == 0
        assert rec.failures == 2
        monkeypatch.setattr(rec, "_write", good)
        assert rec.flush(now=t0 + 121) == 2
    got = query(path, "activeEnergyPlus", t0, t0 + 180, "1m", now=NOW, tz="UTC")
    assert got.columns["activeEnergyPlus"] == {"delta": [0, 1, 3], "last": [5, 6, 9]}


def test_default_path() -> None:
    assert history.default_path(env={"STATE_DIRECTORY": "/var/lib/mbuspico:/x"}) == Path(
        "/var/lib/mbuspico/history.sqlite3"
    )
    assert history.default_path(demo=True, env={"XDG_STATE_HOME": "/s"}) == Path(
        "/s/mbuspico/history-demo.sqlite3"
    )
    assert history.default_path(env={}) == Path.home() / ".local/state/mbuspico/history.sqlite3"


_KILLED = textwrap.dedent(
    """
    import sys, time
    from mbuspico.history import Recorder
    rec = Recorder(sys.argv[1])
    t0 = 1774738800
    for i in range(10 * 6 + 3):  # ten minutes of a reading every 10 s, then 3 more
        t = t0 + 10 * i
        rec.add({"protocol": "dlms", "activePowerPlus": i, "activeEnergyPlus": 1000 + i}, t)
        rec.flush(now=t)  # as the service's writer: a minute once it is complete
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_kill_9_loses_at_most_the_minute_in_progress(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    with child.stdout:
        try:
            assert child.stdout.readline() == "ready\n"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    t0 = 1774738800
    got = query(path, "activeEnergyPlus", t0, t0 + 660, "1m", now=NOW, tz="UTC")
    assert got.columns["activeEnergyPlus"]["last"] == [1005 + 6 * m for m in range(10)] + [None]
    assert got.columns["activeEnergyPlus"]["delta"] == [5] + [6] * 9 + [None]
    raw = query(path, "activePowerPlus", t0, t0 + 660, "raw", now=NOW)
    assert raw.columns["activePowerPlus"]["value"] == list(range(60))


# -- every protocol -------------------------------------------------------------------


def test_dlms_push_values(kaifa: dict[str, Any]) -> None:
    import mbuspico

    reading = mbuspico.Decoder(kaifa["key"]).decode(bytes.fromhex(kaifa["hex"]))
    # The published example: 12937 Wh imported, nothing exported, no power
    # (Tobias0110/EVN_Kaifa_ESP_MQTT's README states the values of this frame).
    assert history.values_of(reading) == {
        "activePowerPlus": (0.0, "measurement", "W", "electricity"),
        "activePowerMinus": (0.0, "measurement", "W", "electricity"),
        "activeEnergyPlus": (12937.0, "total", "Wh", "electricity"),
        "activeEnergyMinus": (0.0, "total", "Wh", "electricity"),
    }


def _p1_readings(count: int) -> list[dict[str, Any]]:
    import mbuspico
    from mbuspico.simulate.p1 import P1Simulator

    decoder = mbuspico.Decoder(protocol="dsmr")
    telegrams = P1Simulator("dsmr5", interval=60.0).telegrams()
    return [decoder.decode(next(telegrams).telegram) for _ in range(count)]


def test_p1_values_tariffs_in_wh_and_gas() -> None:
    (reading,) = _p1_readings(1)
    values = history.values_of(reading)
    obis = reading["obis"]
    assert values["1-0:1.8.1"] == (
        round(obis["1-0:1.8.1"]["value"] * 1000, 6),
        "total",
        "Wh",
        "electricity",
    )
    assert values["1-0:2.8.2"][0] == round(obis["1-0:2.8.2"]["value"] * 1000, 6)
    assert values["mbus_1"] == (reading["mbus"]["1"]["value"], "total", "m³", "gas")
    assert values["activeEnergyPlus"] == (
        float(reading["activeEnergyPlus"]),
        "total",
        "Wh",
        "electricity",
    )
    assert set(values) == {
        "activePowerPlus",
        "activePowerMinus",
        "activeEnergyPlus",
        "activeEnergyMinus",
        "1-0:1.8.1",
        "1-0:1.8.2",
        "1-0:2.8.1",
        "1-0:2.8.2",
        "mbus_1",
    }


def test_p1_gas_by_day(tmp_path: Path) -> None:
    """A P1 meter's gas channel: the daily volume from its register, as sent."""
    readings = _p1_readings(3 * 24 * 6)  # 3 days, a telegram every 10 minutes
    path = tmp_path / "h.sqlite3"
    t0 = datetime(2026, 1, 5, tzinfo=VIENNA).timestamp()
    with Recorder(path, tz="Europe/Vienna") as rec:
        for i, reading in enumerate(readings):
            rec.add(reading, t0 + 600 * i)
            rec.flush(now=t0 + 600 * i)
    gas = [r["mbus"]["1"]["value"] for r in readings]
    assert gas[-1] > gas[0]
    got = query(path, "mbus_1", t0, t0 + 3 * 86400 - 1, "1d", now=NOW)
    per_day = [round(gas[144 * (d + 1) - 1] - gas[max(0, 144 * d - 1)], 6) for d in range(3)]
    assert got.columns["mbus_1"]["delta"] == pytest.approx(per_day, abs=1e-6)
    assert [s.as_json()["medium"] for s in history.fields(path) if s.name == "mbus_1"] == ["gas"]


def _mbus_frame(name: str) -> dict[str, Any]:
    import mbuspico

    text = (Path(__file__).parent / "data/libmbus/test-frames" / f"{name}.hex").read_text()
    return mbuspico.Decoder(protocol="mbus").decode(bytes.fromhex("".join(text.split())))


def test_wired_mbus_heat_meter_values() -> None:
    reading = _mbus_frame("SLB_CF-Compact-Integral-MK-MaXX")
    assert history.values_of(reading) == {
        "energy_0_0_0": (0.0, "total", "Wh", "heat"),
        "volume_0_0_0": (0.02, "total", "m³", "heat"),
        "volume_flow_0_0_0": (0.0, "measurement", "m³/h", "heat"),
        "flow_temperature_0_0_0": (21.8, "measurement", "°C", "heat"),
        "return_temperature_0_0_0": (22.0, "measurement", "°C", "heat"),
        "temperature_difference_0_0_0": (-0.18, "measurement", "K", "heat"),
        "volume_0_0_1": (1.23, "total", "m³", "heat"),
        "volume_0_0_2": (3.21, "total", "m³", "heat"),
    }


def test_wired_mbus_error_state_and_stored_values_are_not_recorded() -> None:
    reading = _mbus_frame("SEN_Sensus-PolluTherm")  # temperatures "during error state"
    assert set(history.values_of(reading)) == {
        "energy_0_0_0",
        "volume_0_0_0",
        "volume_flow_0_0_0",
        "power_0_0_0",
    }
    water = _mbus_frame("EFE_Engelmann-WaterStar")  # stored values: storage 1, 2
    assert history.values_of(water) == {
        "volume_0_0_0": (0.332, "total", "m³", "water"),
        "volume_flow_0_0_0": (0.0, "measurement", "m³/h", "water"),
    }


def test_wired_mbus_meter_is_its_id(tmp_path: Path) -> None:
    reading = _mbus_frame("EFE_Engelmann-WaterStar")
    path = tmp_path / "h.sqlite3"
    with Recorder(path) as rec:
        rec.add(reading, START.timestamp())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM meter").fetchall() == [("4990254",)]
