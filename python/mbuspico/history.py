"""The history of a meter's readings in SQLite: recorded by ``mbuspico serve``, read anywhere.

One file (stdlib :mod:`sqlite3`, WAL) holds, for every value worth a plot:

* **per minute** (``history.days``, two years by default): the minimum, mean
  and maximum of each *measurement* (power, W; for wired M-Bus also flow,
  temperatures), and each *total*'s value at the minute's end and its increase
  in the minute (energy registers, Wh and varh; gas, water and heat: m³, GJ,
  J);
* **per hour**, rolled up from the minutes when an hour is complete and kept
  for ever (about 0.5 MB a year): the same;
* **every reading** (``history.raw_days``, seven days by default): each
  measurement as the meter sent it.

What is recorded, by protocol (the names are the fields of
:func:`fields` and :func:`query`):

* DLMS push and DSMR P1: ``activePowerPlus``, ``activePowerMinus`` (W),
  ``activeEnergyPlus``, ``activeEnergyMinus`` (Wh), ``reactiveEnergyPlus``,
  ``reactiveEnergyMinus`` (varh), as far as the meter sends them; further
  energy registers under their OBIS code (the P1 tariff registers
  ``1-0:1.8.1`` ..., converted from kWh to Wh); P1 M-Bus channels (gas, water,
  heat) as ``mbus_<channel>``, medium from the device type (EN 13757-3).
* Wired M-Bus: each current record (storage 0, not a value during an error
  state) under :func:`mbuspico.mbus.record_name` (``energy_0_0_0``,
  ``volume_0_0_0``, ``power_0_0_0``): Wh, J, m³ and kg as totals; W, J/h,
  m³/h, °C, K, bar, V and A as measurements.

Energy is never integrated from power: the energy of an hour, day or month
is the sum of the register's increases from one reading to the next, so

* it is exact to the register's resolution, for buckets of local time
  (days of 23 and 25 hours at the DST changes, months, years) in any time
  zone;
* a register that goes down is a **meter reset**: it started again from
  zero, so the increase across it is the new value (Home Assistant's rule for
  ``total_increasing``); a change of meter (another meter number) adds nothing;
* across a **gap** (the service stopped, the meter silent) what the register
  gained is counted in the bucket where readings resume; a bucket without any
  reading is ``None``, never 0.

Time is when the service received a reading (the system clock), not the
meter's clock; a reading stamped before what is already recorded (the clock
went back, as a Raspberry Pi's at boot before NTP) is not recorded, only
counted.

Kind to SD cards: :meth:`Recorder.add` only adds to the minute in memory; a
finished minute is written in one transaction (WAL, ``synchronous=NORMAL``: no
fsync per transaction), so a ``kill -9`` loses at most the minute in progress.
The schema is versioned (``PRAGMA user_version``, :data:`SCHEMA_VERSION`) and
upgraded in place by :data:`MIGRATIONS` when a newer mbuspico opens the file.

Reading it: :func:`query` (what ``/api/history`` and ``mbuspico history
export`` answer), :func:`read` (a pandas DataFrame, for Jupyter),
:func:`fields`, :func:`info`.

Example::

    >>> import mbuspico.history
    >>> df = mbuspico.history.read("history.sqlite3", step="1d", start="-60d")  # doctest: +SKIP
    >>> df["activeEnergyPlus_delta"].div(1000).plot.bar()                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from .errors import MbusPicoError
from .mbus import record_name

if TYPE_CHECKING:
    import pandas

__all__ = [
    "DEFAULT_SPAN",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STEPS",
    "History",
    "HistoryError",
    "Recorder",
    "Series",
    "default_path",
    "fields",
    "file_bytes",
    "info",
    "query",
    "read",
    "to_csv",
    "to_json",
    "values_of",
]

log = logging.getLogger("mbuspico.history")

PathLike = Union[str, "os.PathLike[str]"]

SCHEMA_VERSION = 1
"""The schema this mbuspico writes (``PRAGMA user_version``)."""

APPLICATION_ID = 0x6D627068
"""``PRAGMA application_id`` of a history file ("mbph"): no other SQLite file is taken for one."""

MEASUREMENT = "measurement"
"""A value at an instant (power): per bucket its minimum, mean and maximum."""

TOTAL = "total"
"""A register that only grows (energy, volume): per bucket its increase and last value."""


class HistoryError(MbusPicoError, ValueError):
    """Raised for a history that cannot be read or written as asked.

    A file that is no history (or one of a newer mbuspico), another recorder
    writing the same file, an unknown field, a step or time that does not
    parse, or a request for too many points. The message says which.
    """


# -- what is recorded -----------------------------------------------------------

_FIELDS: dict[str, tuple[str, str]] = {
    "activePowerPlus": (MEASUREMENT, "W"),
    "activePowerMinus": (MEASUREMENT, "W"),
    "activeEnergyPlus": (TOTAL, "Wh"),
    "activeEnergyMinus": (TOTAL, "Wh"),
    "reactiveEnergyPlus": (TOTAL, "varh"),
    "reactiveEnergyMinus": (TOTAL, "varh"),
}
"""MBusPico's fields the history keeps (DLMS push and DSMR P1 readings carry them)."""

_FIELD_CODES = frozenset(
    ("1-0:1.7.0", "1-0:2.7.0", "1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")
)
"""OBIS codes whose values the fields above already carry."""

_REGISTER_UNITS: dict[str, tuple[str, float]] = {
    "Wh": ("Wh", 1.0),
    "kWh": ("Wh", 1000.0),
    "varh": ("varh", 1.0),
    "kvarh": ("varh", 1000.0),
}
"""Energy registers of an OBIS list: the unit kept and the factor to it."""

_CHANNEL_UNITS: dict[str, tuple[str, float]] = {
    **_REGISTER_UNITS,
    "m3": ("m³", 1.0),
    "m³": ("m³", 1.0),
    "GJ": ("GJ", 1.0),
}
"""Units of a P1 meter's M-Bus channel (gas, water, heat) and the unit kept."""

_DEVICE_MEDIA: dict[int, str] = {
    2: "electricity",
    3: "gas",
    4: "heat",
    12: "heat",
    13: "heat",
    6: "water",
    7: "water",
    21: "water",
    22: "water",
    23: "water",
    10: "cooling",
    11: "cooling",
}
"""EN 13757-3 device types (Table 3) and the medium the history names."""

_MBUS_TOTALS = {"Wh": "Wh", "J": "J", "m^3": "m³", "kg": "kg"}
_MBUS_MEASUREMENTS = {
    "W": "W",
    "J/h": "J/h",
    "m^3/h": "m³/h",
    "m^3/min": "m³/min",
    "m^3/s": "m³/s",
    "kg/h": "kg/h",
    "°C": "°C",
    "K": "K",
    "bar": "bar",
    "V": "V",
    "A": "A",
}
"""Wired M-Bus base units (as decoded) the history keeps, as totals or measurements."""


@dataclass(frozen=True)
class Series:
    """One recorded value.

    Attributes:
        name: The field name (``activePowerPlus``, ``1-0:1.8.1``, ``mbus_1``,
            ``energy_0_0_0``).
        kind: :data:`MEASUREMENT` or :data:`TOTAL`.
        unit: The unit of its values (``W``, ``Wh``, ``varh``, ``m³``, ...).
        medium: ``electricity``, ``gas``, ``water``, ``heat``, ``cooling``, or
            None when the meter does not say.
        first: When it was first recorded (Unix time, s); None while only in
            memory.

    """

    name: str
    kind: str
    unit: str | None
    medium: str | None
    first: float | None = None
    id: int = field(default=0, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        """``{"field", "kind", "unit", "medium", "first"}`` (``/api/history``'s list)."""
        return {
            "field": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "medium": self.medium,
            "first": None if self.first is None else int(self.first),
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _mbus_medium(text: Any) -> str | None:
    medium = str(text or "").lower()
    for word, name in (
        ("electric", "electricity"),
        ("gas", "gas"),
        ("cool", "cooling"),
        ("heat", "heat"),
        ("water", "water"),
    ):
        if word in medium:
            return name
    return None


def values_of(reading: Mapping[str, Any]) -> dict[str, tuple[float, str, str | None, str | None]]:
    """What the history records of ``reading``: ``name -> (value, kind, unit, medium)``.

    Values are converted to the unit given (kWh to Wh); see the module's
    documentation for the names by protocol. Text, None and values that are
    not finite are left out.

    Args:
        reading: A reading of :meth:`mbuspico.Decoder.decode` (DLMS push, DSMR
            P1 or wired M-Bus).

    """
    out: dict[str, tuple[float, str, str | None, str | None]] = {}
    protocol = reading.get("protocol")
    if protocol in ("dlms", "dsmr"):
        for name, (kind, unit) in _FIELDS.items():
            value = _number(reading.get(name))
            if value is not None:
                out[name] = (value, kind, unit, "electricity")
        for code, entry in (reading.get("obis") or {}).items():
            if code in _FIELD_CODES or not isinstance(entry, Mapping):
                continue
            conversion = _REGISTER_UNITS.get(entry.get("unit") or "")
            value = _number(entry.get("value"))
            if conversion is not None and value is not None:
                out[code] = (round(value * conversion[1], 6), TOTAL, conversion[0], "electricity")
        for channel, device in (reading.get("mbus") or {}).items():
            if not isinstance(device, Mapping):
                continue
            conversion = _CHANNEL_UNITS.get(device.get("unit") or "")
            value = _number(device.get("value"))
            if conversion is not None and value is not None:
                medium = _DEVICE_MEDIA.get(device.get("deviceType") or -1)
                unit, factor = conversion
                out[f"mbus_{channel}"] = (round(value * factor, 6), TOTAL, unit, medium)
    elif protocol == "mbus":
        medium = _mbus_medium(reading.get("medium"))
        for record in reading.get("records") or ():
            if record.get("storageNumber") or record.get("function") not in (
                "instantaneous",
                "actual",
            ):
                continue
            value = _number(record.get("value"))
            unit = record.get("unit") or ""
            if value is None:
                continue
            if unit in _MBUS_TOTALS:
                described = (value, TOTAL, _MBUS_TOTALS[unit], medium)
            elif unit in _MBUS_MEASUREMENTS:
                described = (value, MEASUREMENT, _MBUS_MEASUREMENTS[unit], medium)
            else:
                continue
            out.setdefault(record_name(record), described)
    return out


# -- the file -------------------------------------------------------------------


def default_path(*, demo: bool = False, env: Mapping[str, str] | None = None) -> Path:
    """Where ``mbuspico serve`` keeps its history when ``history.path`` is not set.

    ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``; the first of several),
    else ``$XDG_STATE_HOME/mbuspico``, else ``~/.local/state/mbuspico``; the file
    is ``history.sqlite3``, or ``history-demo.sqlite3`` for ``--demo`` (a
    simulated meter never writes into the real meter's history).
    """
    env = os.environ if env is None else env
    name = "history-demo.sqlite3" if demo else "history.sqlite3"
    state = (env.get("STATE_DIRECTORY") or "").split(":")[0]
    if state:
        return Path(state) / name
    xdg = env.get("XDG_STATE_HOME") or ""
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "mbuspico" / name


def _create_v1(db: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would commit the migration's transaction.
    for statement in (
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID",
        """CREATE TABLE series(
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('measurement', 'total')),
            unit TEXT,
            medium TEXT,
            first INTEGER NOT NULL
        )""",
        "CREATE TABLE meter(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        # t: the minute's (hour's) start, Unix s; n: readings in it; meter: meter.id.
        # Series k adds c<k>_min, c<k>_mean, c<k>_max (a measurement) or c<k>
        # and c<k>_inc (a total: its value at the end, its increase in the row).
        "CREATE TABLE minute(t INTEGER PRIMARY KEY, n INTEGER NOT NULL, meter INTEGER)",
        "CREATE TABLE hour(t INTEGER PRIMARY KEY, n INTEGER NOT NULL, meter INTEGER)",
        # t: Unix time in ms; c<k> for each measurement.
        "CREATE TABLE raw(t INTEGER PRIMARY KEY)",
    ):
        db.execute(statement)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1}
"""``MIGRATIONS[v]`` upgrades a file of schema ``v`` to ``v + 1`` (0: a new file).

Each runs inside the transaction that then sets ``user_version``, so an
upgrade cut short leaves the file as it was."""


def _columns(series: Series, table: str) -> tuple[str, ...]:
    k = series.id
    if series.kind == MEASUREMENT:
        return (f"c{k}",) if table == "raw" else (f"c{k}_min", f"c{k}_mean", f"c{k}_max")
    return () if table == "raw" else (f"c{k}", f"c{k}_inc")


def _connect(path: Path, *, write: bool) -> sqlite3.Connection:
    if write:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    else:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def _check_file(db: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; raises HistoryError for a file that is no history."""
    app = db.execute("PRAGMA application_id").fetchone()[0]
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    if app != APPLICATION_ID and (app or version or tables):
        msg = f"{path} is not an mbuspico history (another SQLite file?)"
        raise HistoryError(msg)
    if version > SCHEMA_VERSION:
        msg = (
            f"{path} has history schema {version}, written by a newer mbuspico; this one "
            f"reads schema {SCHEMA_VERSION}: upgrade mbuspico"
        )
        raise HistoryError(msg)
    return version


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _check_file(db, path)
        if version == 0:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](db)
            version += 1
            db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _load_series(db: sqlite3.Connection) -> dict[str, Series]:
    return {
        row[1]: Series(row[1], row[2], row[3], row[4], float(row[5]), row[0])
        for row in db.execute("SELECT id, name, kind, unit, medium, first FROM series ORDER BY id")
    }


def _meta(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


# -- recording ------------------------------------------------------------------


class _Minute:
    """A minute's readings.

    Measurements as ``[min, sum, max, count, all integral]``, totals as
    ``[last value, increase]``.
    """

    __slots__ = ("meas", "meter", "n", "t", "tot")

    def __init__(self, t: int) -> None:
        self.t = t
        self.n = 0
        self.meter: int | None = None
        self.meas: dict[int, list[Any]] = {}
        self.tot: dict[int, list[float]] = {}

    def row(self) -> _MinuteRow:
        """``(t, n, meter, {id: (min, mean, max)}, {id: (value, increase)})``: what is written."""
        meas = {}
        for k, (low, total, high, count, integral) in self.meas.items():
            mean = total / count
            meas[k] = (low, float(round(mean)) if integral else round(mean, 3), high)
        tot = {k: (value, round(increase, 6)) for k, (value, increase) in self.tot.items()}
        return self.t, self.n, self.meter, meas, tot


_MinuteRow = tuple[
    int,
    int,
    Union[int, None],
    dict[int, tuple[float, float, float]],
    dict[int, tuple[float, float]],
]
"""A minute as written: ``(t, n, meter, {id: (min, mean, max)}, {id: (value, increase)})``."""


@dataclass
class Pending:
    """What a :class:`Recorder` holds in memory, not yet in the file (for :func:`query`)."""

    series: dict[str, Series]
    """Every series, those not yet written included."""
    minutes: list[_MinuteRow]
    """Minutes not yet written (the one in progress last)."""
    raw: list[tuple[int, dict[int, float]]]
    """Readings not yet written: ``(t in ms, {series id: value})``."""


_MAX_PENDING_MINUTES = 24 * 60
_MAX_PENDING_RAW = 200_000


class Recorder:
    """Records readings into a history file; one recorder per file at a time.

    Args:
        path: The SQLite file (made, with its directory, when missing).
        days: Days of per-minute values to keep (hourly ones are kept for ever).
        raw_days: Days of every reading's measurements to keep (0: none).
        tz: The time zone whose days, weeks and months readers of the file
            use by default (IANA name; kept in the file). None keeps what the
            file says, else the system's zone.

    :meth:`add` may be called from any thread and only works in memory;
    :meth:`flush` writes (from one thread at a time). Use it as a context
    manager, or call :meth:`close`, to write what is left.

    Raises:
        HistoryError: The file is no history, of a newer schema, or another
            recorder writes it.
        OSError: The file or its directory cannot be made or opened
            (``sqlite3.Error`` is raised as ``OSError``).

    """

    def __init__(
        self,
        path: PathLike,
        *,
        days: float = 730,
        raw_days: float = 7,
        tz: str | None = None,
    ) -> None:
        """Open (or make) the file and upgrade its schema."""
        self.path = Path(path)
        self.days = days
        self.raw_days = raw_days
        self.recorded = 0
        """Readings recorded (in memory or in the file)."""
        self.backwards = 0
        """Readings not recorded: stamped before what is already recorded."""
        self.written = 0
        """Minutes written to the file."""
        self.failures = 0
        """Writes that failed (the data stays in memory and is written with the next)."""
        self.dropped = 0
        """Readings dropped from memory while writes kept failing."""
        self.last_write: float | None = None
        """When a write last succeeded (Unix time)."""
        self._failing = 0  # writes failed in a row
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lockfile: Any = None
        if self.path.is_dir():
            msg = (
                f"{self.path} is a directory: give a file, such as {self.path / 'history.sqlite3'}"
            )
            raise OSError(msg)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            msg = f"cannot make the directory {self.path.parent}: {e.strerror or e}"
            raise OSError(msg) from e
        try:
            self._db = _connect(self.path, write=True)
        except sqlite3.Error as e:
            raise OSError(f"cannot open {self.path}: {e}") from e
        try:
            self._lock_file()
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA journal_size_limit = 4194304")
            _migrate(self._db, self.path)
            if tz is not None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('tz', ?)", (tz,))
            self._series = _load_series(self._db)
            self._meters = {name: k for k, name in self._db.execute("SELECT id, name FROM meter")}
            self._resume = self._last_minute()
            self._last = self._last_values()
            last_raw = self._db.execute("SELECT max(t) FROM raw").fetchone()[0]
        except sqlite3.Error as e:
            self._close_db()
            raise OSError(f"cannot use {self.path}: {e}") from e
        except HistoryError:
            self._close_db()
            raise
        except (KeyError, ValueError, TypeError) as e:  # tables unlike its schema version says
            self._close_db()
            msg = (
                f"{self.path} does not hold the tables of history schema {SCHEMA_VERSION} "
                f"({type(e).__name__}: {e}); move it away to start a new history"
            )
            raise HistoryError(msg) from None
        except BaseException:
            self._close_db()
            raise
        self._floor = self._resume.t if self._resume else 0  # no minute before this one
        self._last_ms = int(last_raw or 0)
        self._next_series = max((s.id for s in self._series.values()), default=0) + 1
        self._next_meter = max(self._meters.values(), default=0) + 1
        self._new_series: list[Series] = []
        self._new_meters: list[tuple[int, str]] = []
        self._minute: _Minute | None = None
        self._done: list[_MinuteRow] = []
        self._raw: list[tuple[int, dict[int, float]]] = []
        self.finished = threading.Event()
        """Set when a minute is complete (a reading of the next came): :meth:`flush` has work."""

    def _lock_file(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            return
        handle = open(self.path, "rb")  # noqa: SIM115 - held open while recording
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            msg = f"another process records into {self.path} (a second mbuspico serve?)"
            raise HistoryError(msg) from None
        self._lockfile = handle

    def _last_minute(self) -> _Minute | None:
        """The last minute written, to go on with after a restart within it."""
        row = self._db.execute("SELECT * FROM minute ORDER BY t DESC LIMIT 1").fetchone()
        if row is None:
            return None
        names = [d[0] for d in self._db.execute("SELECT * FROM minute LIMIT 0").description]
        values = dict(zip(names, row))
        minute = _Minute(int(values["t"]))
        minute.n = n = int(values["n"])
        minute.meter = values["meter"]
        for s in self._series.values():
            if s.kind == MEASUREMENT and values.get(f"c{s.id}_mean") is not None:
                low, mean, high = (values[c] for c in _columns(s, "minute"))
                minute.meas[s.id] = [low, mean * n, high, n, float(mean).is_integer()]
            elif s.kind == TOTAL and values.get(f"c{s.id}") is not None:
                minute.tot[s.id] = [values[f"c{s.id}"], values[f"c{s.id}_inc"] or 0.0]
        return minute

    def _last_values(self) -> dict[int, tuple[float, Any]]:
        """Each total's last value and meter in the file: where its increases go on from."""
        db = self._db
        last = db.execute("SELECT max(t) FROM minute").fetchone()[0]
        out: dict[int, tuple[float, Any]] = {}
        for s in self._series.values():
            if s.kind != TOTAL:
                continue
            column = f"c{s.id}"
            row = None
            if last is not None:  # the last two days' minutes, then the hours
                row = db.execute(
                    f"SELECT {column}, meter FROM minute WHERE t >= ? AND {column} IS NOT NULL "
                    "ORDER BY t DESC LIMIT 1",
                    (int(last) - 2 * 86400,),
                ).fetchone()
            if row is None:
                row = db.execute(
                    f"SELECT {column}, meter FROM hour WHERE {column} IS NOT NULL "
                    "ORDER BY t DESC LIMIT 1"
                ).fetchone()
            if row is not None:
                out[s.id] = (row[0], row[1])
        return out

    def __enter__(self) -> Recorder:
        """The recorder."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Write what is left and close."""
        self.close()

    # -- in memory --

    def _series_id(
        self, name: str, kind: str, unit: str | None, medium: str | None, at: float
    ) -> int:
        s = self._series.get(name)
        if s is not None:
            return s.id
        s = Series(name, kind, unit, medium, None, self._next_series)
        self._next_series += 1
        self._series[name] = s
        self._new_series.append(Series(name, kind, unit, medium, float(int(at)), s.id))
        return s.id

    def _meter_id(self, name: str) -> int:
        k = self._meters.get(name)
        if k is None:
            k = self._meters[name] = self._next_meter
            self._next_meter += 1
            self._new_meters.append((k, name))
        return k

    def add(
        self, reading: Mapping[str, Any], at: float | None = None, *, meter: str | None = None
    ) -> bool:
        """Record a reading (in memory until :meth:`flush`).

        Args:
            reading: A reading of any protocol (:func:`values_of` says what is kept).
            at: When it was received (Unix time, s); default now.
            meter: What identifies the meter (a total's increase across two
                meters is not counted); default the reading's ``meterNumber``
                or ``id``.

        Returns:
            False when it was not recorded: stamped before what is recorded.

        """
        if at is None:
            at = time.time()
        values = values_of(reading)
        if meter is None:
            meter = reading.get("meterNumber") or reading.get("id")
        t = int(at // 60) * 60
        ms = int(at * 1000)
        with self._lock:
            minute = self._minute
            if minute is None or t != minute.t:
                if t < (minute.t if minute is not None else self._floor):
                    self.backwards += 1
                    return False
                minute = self._start_minute(t)
            if ms <= self._last_ms:
                ms = self._last_ms + 1
            self._last_ms = ms
            minute.n += 1
            meter_id = self._meter_id(meter) if isinstance(meter, str) and meter else None
            if meter_id is not None:
                minute.meter = meter_id
            raw: dict[int, float] = {}
            for name, (value, kind, unit, medium) in values.items():
                k = self._series_id(name, kind, unit, medium, at)
                if kind == TOTAL:
                    prev, prev_meter = self._last.get(k, (None, None))
                    increase = _increase(prev, prev_meter, value, meter_id)
                    self._last[k] = (value, meter_id)
                    total = minute.tot.get(k)
                    if total is None:
                        minute.tot[k] = [value, increase]
                    else:
                        total[0] = value
                        total[1] += increase
                    continue
                raw[k] = value
                acc = minute.meas.get(k)
                if acc is None:
                    minute.meas[k] = [value, value, value, 1, value.is_integer()]
                else:
                    if value < acc[0]:
                        acc[0] = value
                    if value > acc[2]:
                        acc[2] = value
                    acc[1] += value
                    acc[3] += 1
                    if acc[4] and not value.is_integer():
                        acc[4] = False
            if raw and self.raw_days > 0:
                self._raw.append((ms, raw))
            self.recorded += 1
        return True

    def _start_minute(self, t: int) -> _Minute:
        """Begin the minute ``t`` (lock held): the one before is done."""
        if self._minute is not None:
            self._done.append(self._minute.row())
            self.finished.set()
        resume, self._resume = self._resume, None
        if resume is not None and resume.t == t:  # restarted within a written minute
            self._minute = resume
        else:
            self._minute = _Minute(t)
        return self._minute

    def pending(self) -> Pending:
        """A copy of what is in memory, not yet written (for :func:`query`)."""
        with self._lock:
            minutes = list(self._done)
            if self._minute is not None and self._minute.n:
                minutes.append(self._minute.row())
            return Pending(dict(self._series), minutes, list(self._raw))

    # -- to the file --

    def flush(self, now: float | None = None, *, everything: bool = False) -> int:
        """Write the minutes that are complete, in one transaction; returns how many.

        A minute is complete when a reading of a later one came, or ``now``
        (default: the time) is past it. ``everything`` writes the minute in
        progress too (at shutdown; readings of the same minute after a restart
        are added to it). When the write fails (a full disk) the data stays in
        memory for the next flush (a day's minutes at most), the failure is
        counted and logged once until a write succeeds.
        """
        now = time.time() if now is None else now
        with self._write_lock:
            with self._lock:
                minute = self._minute
                if minute is not None and (everything or now >= minute.t + 60):
                    if minute.n:
                        self._done.append(minute.row())
                    self._minute = None
                    self._floor = max(self._floor, minute.t + (0 if everything else 60))
                done, self._done = self._done, []
                cut = (self._minute.t * 1000) if self._minute is not None else None
                if cut is None:
                    raw, self._raw = self._raw, []
                else:
                    split = next(
                        (i for i, r in enumerate(self._raw) if r[0] >= cut), len(self._raw)
                    )
                    raw, self._raw = self._raw[:split], self._raw[split:]
                new_series, self._new_series = self._new_series, []
                new_meters, self._new_meters = self._new_meters, []
                in_file = {s.id: s for s in self._series.values() if s.first is not None}
                self.finished.clear()
            if not (done or raw or new_series or new_meters):
                return 0
            in_file.update((s.id, s) for s in new_series)
            try:
                self._write(done, raw, new_series, new_meters, in_file, now)
            except sqlite3.Error as e:
                self._keep(done, raw, new_series, new_meters)
                self.failures += 1
                if self._failing == 0:
                    log.warning(
                        "history: cannot write %s: %s (kept in memory, retried every minute; "
                        "further failures at debug level)",
                        self.path,
                        e,
                    )
                else:
                    log.debug("history: cannot write %s: %s", self.path, e)
                self._failing += 1
                return 0
            if self._failing:
                log.info("history: writing %s again after %d failures", self.path, self._failing)
                self._failing = 0
            with self._lock:
                for s in new_series:  # now in the file, with their columns
                    self._series[s.name] = s
            self.written += len(done)
            self.last_write = time.time()
            return len(done)

    def _keep(
        self,
        done: list[_MinuteRow],
        raw: list[tuple[int, dict[int, float]]],
        new_series: list[Series],
        new_meters: list[tuple[int, str]],
    ) -> None:
        """Put back what a failed write took (lock not held), within the memory bounds."""
        with self._lock:
            self._done[:0] = done
            self._raw[:0] = raw
            self._new_series[:0] = new_series
            self._new_meters[:0] = new_meters
            if len(self._done) > _MAX_PENDING_MINUTES:
                lost = len(self._done) - _MAX_PENDING_MINUTES
                self.dropped += sum(m[1] for m in self._done[:lost])
                del self._done[:lost]
            if len(self._raw) > _MAX_PENDING_RAW:
                del self._raw[: len(self._raw) - _MAX_PENDING_RAW]

    def _write(
        self,
        done: list[_MinuteRow],
        raw: list[tuple[int, dict[int, float]]],
        new_series: list[Series],
        new_meters: list[tuple[int, str]],
        in_file: dict[int, Series],
        now: float,
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for s in new_series:
                db.execute(
                    "INSERT INTO series(id, name, kind, unit, medium, first) VALUES (?,?,?,?,?,?)",
                    (s.id, s.name, s.kind, s.unit, s.medium, int(s.first or now)),
                )
                for table in ("minute", "hour", "raw"):
                    for column in _columns(s, table):
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} REAL")
            db.executemany("INSERT INTO meter(id, name) VALUES (?, ?)", new_meters)
            for t, n, meter, meas, tot in done:
                names = ["t", "n", "meter"]
                row: list[Any] = [t, n, meter]
                for k, triple in meas.items():
                    names += _columns(in_file[k], "minute")
                    row += triple
                for k, (value, increase) in tot.items():
                    names += (f"c{k}", f"c{k}_inc")
                    row += (value, increase)
                db.execute(
                    f"INSERT OR REPLACE INTO minute({','.join(names)}) "
                    f"VALUES ({','.join('?' * len(names))})",
                    row,
                )
            raw = [r for r in raw if r[1]]
            if raw:
                ids = sorted({k for _, values in raw for k in values})
                names = ["t", *(f"c{k}" for k in ids)]
                db.executemany(
                    f"INSERT OR REPLACE INTO raw({','.join(names)}) "
                    f"VALUES ({','.join('?' * len(names))})",
                    [(t, *(values.get(k) for k in ids)) for t, values in raw],
                )
            if done:
                self._roll_up(max(m[0] for m in done), list(in_file.values()), now)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _roll_up(self, latest: int, series: list[Series], now: float) -> None:
        """Hour rows for every complete hour before ``latest``'s, then the retention."""
        db = self._db
        rolled = _meta(db, "rolled")
        target = latest - latest % 3600
        if rolled is None:
            first = db.execute("SELECT min(t) FROM minute").fetchone()[0]
            rolled = int(first) - int(first) % 3600
        if target <= rolled:
            if _meta(db, "rolled") is None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('rolled', ?)", (rolled,))
            return
        hours = [
            int(h)
            for (h,) in db.execute(
                "SELECT DISTINCT t - t % 3600 FROM minute WHERE t >= ? AND t < ?", (rolled, target)
            )
        ]
        for h in hours:
            names = ["t", "n", "meter"]
            row: list[Any] = [h]
            n, meter = db.execute(
                "SELECT sum(n), (SELECT meter FROM minute WHERE t >= ?1 AND t < ?2 "
                "ORDER BY t DESC LIMIT 1) FROM minute WHERE t >= ?1 AND t < ?2",
                (h, h + 3600),
            ).fetchone()
            row += [n, meter]
            for s in series:
                records = _minute_records(db, s, h, h + 3600, None)
                if not records:
                    continue
                values = _aggregate(records, [h, h + 3600], s.kind)
                names += _columns(s, "hour")
                keys = ("min", "mean", "max") if s.kind == MEASUREMENT else ("last", "delta")
                row += [values[key][0] for key in keys]
            db.execute(
                f"INSERT OR REPLACE INTO hour({','.join(names)}) "
                f"VALUES ({','.join('?' * len(names))})",
                row,
            )
        db.execute("INSERT OR REPLACE INTO meta VALUES ('rolled', ?)", (target,))
        db.execute("DELETE FROM minute WHERE t < ?", (int(now - self.days * 86400),))
        db.execute("DELETE FROM raw WHERE t < ?", (int((now - self.raw_days * 86400) * 1000),))

    def close(self) -> None:
        """Write everything in memory (the minute in progress too), then close the file."""
        if self._db is None:
            return
        try:
            self.flush(everything=True)
        finally:
            self._close_db()

    def _close_db(self) -> None:
        db, self._db = self._db, None  # type: ignore[assignment]
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA optimize")
            db.close()
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None


# -- reading --------------------------------------------------------------------

_Record = tuple[Any, ...]
"""(t, n, min, mean, max) of a measurement; (t, n, last, increase) of a total."""


def _increase(prev: float | None, prev_meter: Any, value: float, meter: Any) -> float:
    """What a total gained from ``prev`` to ``value``.

    0 for the first value or another meter's; the new value after a reset (a
    register that went down started again from 0).
    """
    if prev is None or (meter is not None and prev_meter is not None and meter != prev_meter):
        return 0.0
    return value - prev if value >= prev else value


def _minute_records(
    db: sqlite3.Connection, s: Series, start: int, end: int, pending: Pending | None
) -> list[_Record]:
    """The minutes of ``[start, end)`` with the series, those still in memory included."""
    columns = _columns(s, "minute")
    rows: list[tuple[Any, ...]] = []
    if s.first is not None:  # in the file
        rows = db.execute(
            f"SELECT t, n, {','.join(columns)} FROM minute WHERE t >= ? AND t < ? "
            f"AND {columns[0]} IS NOT NULL ORDER BY t",
            (start, end),
        ).fetchall()
    if pending is not None and pending.minutes:
        first = pending.minutes[0][0]  # a minute in memory replaces the file's
        rows = [r for r in rows if r[0] < first]
        for t, n, _meter, meas, tot in pending.minutes:
            values = meas.get(s.id) if s.kind == MEASUREMENT else tot.get(s.id)
            if values is not None and start <= t < end:
                rows.append((t, n, *values))
    return rows


def _hour_records(
    db: sqlite3.Connection, s: Series, start: int, end: int, pending: Pending | None
) -> list[_Record]:
    """Hourly records of ``[start, end)`` (hour-aligned): the hour table, then the minutes."""
    rolled = _meta(db, "rolled")
    cut = start if rolled is None else max(start, min(int(rolled), end))
    out: list[_Record] = []
    if s.first is not None and cut > start:
        columns = _columns(s, "hour")
        out = db.execute(
            f"SELECT t, n, {','.join(columns)} FROM hour WHERE t >= ? AND t < ? "
            f"AND {columns[0]} IS NOT NULL ORDER BY t",
            (start, cut),
        ).fetchall()
    if cut < end:
        out += _minute_records(db, s, cut, end, pending)
    return out


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value.is_integer() and abs(value) < 1 << 53 else value


def _aggregate(
    records: Sequence[_Record], bounds: Sequence[int], kind: str
) -> dict[str, list[Any]]:
    """Records bucketed by ``bounds`` (bucket i: ``[bounds[i], bounds[i+1])``)."""
    count = len(bounds) - 1
    i = 0
    if kind == MEASUREMENT:
        lows: list[Any] = [None] * count
        highs: list[Any] = [None] * count
        sums = [0.0] * count
        ns = [0] * count
        for t, n, low, mean, high in records:
            while i < count and t >= bounds[i + 1]:
                i += 1
            if i >= count:
                break
            if t < bounds[0]:
                continue
            if lows[i] is None or low < lows[i]:
                lows[i] = low
            if highs[i] is None or high > highs[i]:
                highs[i] = high
            weight = n or 1
            sums[i] += mean * weight
            ns[i] += weight
        means = [_num(round(sums[j] / ns[j], 3)) if ns[j] else None for j in range(count)]
        return {
            "min": [_num(v) for v in lows],
            "mean": means,
            "max": [_num(v) for v in highs],
        }
    deltas: list[Any] = [None] * count
    lasts: list[Any] = [None] * count
    for t, _n, last, increase in records:
        while i < count and t >= bounds[i + 1]:
            i += 1
        if i >= count:
            break
        if t < bounds[0]:
            continue
        deltas[i] = (deltas[i] or 0.0) + increase
        lasts[i] = last
    return {
        "delta": [None if d is None else _num(round(d, 6)) for d in deltas],
        "last": [_num(v) for v in lasts],
    }


# -- time -----------------------------------------------------------------------

STEPS = (
    "raw",
    "1m",
    "2m",
    "5m",
    "10m",
    "15m",
    "30m",
    "1h",
    "2h",
    "3h",
    "6h",
    "12h",
    "1d",
    "1w",
    "1mo",
    "1y",
)
"""The steps :func:`query` takes: every reading, minutes, hours, days, weeks (from Monday),
months, years (of local time)."""

DEFAULT_SPAN: dict[str, str] = {
    "raw": "-1h",
    "m": "-24h",
    "h": "-48h",
    "1d": "-62d",
    "1w": "-1y",
    "1mo": "-2y",
    "1y": "-10y",
}
"""How far back :func:`query` looks without ``start``, by step (``m``: minutes, ``h``: hours)."""

MAX_POINTS = 600_000
"""The most points (buckets, or readings for ``raw``) of a field :func:`query` answers
by default: a year at 1 minute. ``/api/history`` answers fewer
(:data:`mbuspico.serve.history.MAX_POINTS`)."""

_RELATIVE = re.compile(r"-\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w|mo|y)")


def _zone(tz: str | tzinfo | None, db: sqlite3.Connection | None = None) -> tuple[tzinfo, str]:
    """The zone asked for, else the file's, else the system's (else UTC); and its name."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if isinstance(tz, tzinfo):
        return tz, str(tz)
    name = tz or (_meta(db, "tz") if db is not None else None)
    if name:
        try:
            return ZoneInfo(str(name)), str(name)
        except (ZoneInfoNotFoundError, ValueError):
            if tz:
                msg = f'unknown time zone {tz!r}: give an IANA name such as "Europe/Vienna"'
                raise HistoryError(msg) from None
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(env), env
    with contextlib.suppress(OSError, ValueError):
        target = os.path.realpath("/etc/localtime")
        key = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None
        if key:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(key), key
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime"), "localtime"
    return timezone.utc, "UTC"


def _parse_step(step: str) -> tuple[str, int]:
    text = str(step).strip()
    if text not in STEPS:
        msg = f"unknown step {step!r}: one of {', '.join(STEPS)}"
        raise HistoryError(msg)
    if text == "raw":
        return "raw", 0
    match = re.fullmatch(r"(\d+)(mo|m|h|d|w|y)", text)
    assert match is not None  # noqa: S101 - every step of STEPS matches
    return match[2], int(match[1])


def _months_back(local: datetime, months: int) -> datetime:
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    day = min(
        local.day, [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month]
    )
    return local.replace(year=year, month=month + 1, day=day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_LAST_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: datetime's last second


def _parse_time(value: Any, zone: tzinfo, now: float, what: str) -> float:
    """Unix time of ``value``: a number (Unix s), ``now``, ``-48h`` (before now), ISO 8601.

    Raises:
        HistoryError: Not a time, or one before 1970 or after 9999.

    """
    try:
        t = _time_of(value, zone, now, what)
    except HistoryError:
        raise
    except (ValueError, OverflowError, OSError):  # a year datetime does not take
        t = -1.0
    if not 0 <= t <= _LAST_TIME:
        msg = f"{what} {value!r} is out of range: a time from 1970 to 9999"
        raise HistoryError(msg)
    return t


def _time_of(value: Any, zone: tzinfo, now: float, what: str) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text == "now":
        return now
    with contextlib.suppress(ValueError):
        number = float(text)
        if math.isfinite(number):
            return number
    match = _RELATIVE.fullmatch(text)
    if match:
        amount, unit = float(match[1]), match[2]
        if unit in ("mo", "y"):
            months = round(amount * (12 if unit == "y" else 1))
            local = datetime.fromtimestamp(now, zone)
            return _months_back(local, months).timestamp()
        if unit in ("d", "w"):  # days of the calendar: the same time of day
            days = amount * (7 if unit == "w" else 1)
            return (datetime.fromtimestamp(now, zone) - timedelta(days=days)).timestamp()
        seconds = {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]
        return now - amount * seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        msg = (
            f"{what} {text!r} is no time: give Unix seconds, ISO 8601 (2026-03-29 or "
            "2026-03-29T02:30+02:00), now, or a time before now such as -48h, -62d, -2mo"
        )
        raise HistoryError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.timestamp()


def _offset(zone: tzinfo, t: float) -> int:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _segments(zone: tzinfo, start: int, end: int) -> list[tuple[int, int]]:
    """``(from, UTC offset)`` pieces of ``[start, end)``: where the zone's offset changes."""
    probe = 6 * 3600
    out = [(start, _offset(zone, start))]
    t = start
    while t < end:
        nxt = min(t + probe, end)
        offset = _offset(zone, nxt)
        if offset != out[-1][1]:
            low, high = t, nxt  # the change is in (low, high]
            while high - low > 1:
                mid = (low + high) // 2
                if _offset(zone, mid) == out[-1][1]:
                    low = mid
                else:
                    high = mid
            out.append((high, offset))
        t = nxt
    return out


def _bounds(
    start: float, end: float, kind: str, n: int, zone: tzinfo, limit: int = MAX_POINTS
) -> list[int]:
    """Bucket boundaries (Unix s) in local time.

    From the last at or before ``start`` to the first at or after ``end``.
    """
    if kind in ("m", "h"):
        size = n * (60 if kind == "m" else 3600)
        low, high = int(start) - size - 86400, math.ceil(end) + size + 86400
        count = (math.ceil(end) - int(start)) // size + 1
        if count > limit:
            _too_many(count, limit)
        pieces = _segments(zone, low, high)
        out: list[int] = []
        for j, (a, offset) in enumerate(pieces):
            b = pieces[j + 1][0] if j + 1 < len(pieces) else high
            t = a + (-(a + offset)) % size
            out.extend(range(t, b, size))
        first = max((b for b in out if b <= start), default=out[0])
        last = min((b for b in out if b >= end), default=out[-1])
        return [b for b in out if first <= b <= last]
    local = datetime.fromtimestamp(start, zone).date()
    if kind == "d":
        day = local
    elif kind == "w":
        day = local - timedelta(days=local.weekday())
    elif kind == "mo":
        day = local.replace(day=1)
    else:
        day = local.replace(month=1, day=1)
    bounds: list[int] = []
    while True:
        t = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
        bounds.append(t)
        if t >= end:
            return bounds
        if len(bounds) > limit:
            _too_many(len(bounds), limit)
        if kind == "d":
            day += timedelta(days=1)
        elif kind == "w":
            day += timedelta(days=7)
        elif kind == "mo":
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        else:
            day = date(day.year + 1, 1, 1)


def _too_many(count: int, limit: int) -> None:
    msg = f"too many points ({count:,}; at most {limit:,}): a larger step or a shorter time"
    raise HistoryError(msg)


# -- queries ----------------------------------------------------------------------


@dataclass
class History:
    """The answer of :func:`query`.

    Attributes:
        step: The step (``raw``, ``1m``, ..., ``1mo``, ``1y``).
        tz: The time zone of the buckets (IANA name).
        start: The first bucket's start (Unix s; for ``raw`` the time asked for).
        end: The time asked for as the end (Unix s): the last bucket may
            reach beyond it (the day, month in progress).
        time: Each bucket's start (Unix s) in local time's order; for ``raw``
            each reading's time (s, to the millisecond).
        series: The fields, in the order asked for.
        columns: By field: ``min``, ``mean``, ``max`` of a measurement, ``delta``
            (the increase in the bucket) and ``last`` (the value at its last
            reading) of a total; for ``raw`` ``value``. None where the bucket
            has no reading.

    """

    step: str
    tz: str
    start: float
    end: float
    time: list[float]
    series: list[Series]
    columns: dict[str, dict[str, list[Any]]]
    zone: tzinfo = field(repr=False, default=timezone.utc)

    def value(self, name: str) -> list[Any]:
        """Each bucket's headline: a total's ``delta``, a measurement's ``mean``, a reading."""
        columns = self.columns[name]
        for key in ("value", "delta", "mean"):
            if key in columns:
                return columns[key]
        raise KeyError(name)  # pragma: no cover - every answer has one of them


def _open(path: PathLike) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        msg = (
            f"no history at {path}: mbuspico serve records one there once it reads a meter "
            "(history.path; see mbuspico history --help)"
        )
        raise HistoryError(msg)
    try:
        db = _connect(path, write=False)
        version = _check_file(db, path)
    except sqlite3.Error as e:
        msg = f"cannot read {path}: {e}"
        raise HistoryError(msg) from None
    if version < SCHEMA_VERSION:
        db.close()
        msg = (
            f"{path} has history schema {version} (or is empty); start mbuspico serve once to "
            f"upgrade it to {SCHEMA_VERSION}"
        )
        raise HistoryError(msg)
    return db


@contextlib.contextmanager
def _reading(source: PathLike | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A connection in one read transaction (a consistent snapshot of a file being written)."""
    db = source if isinstance(source, sqlite3.Connection) else _open(source)
    try:
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")
    except sqlite3.Error as e:
        msg = f"cannot read the history: {e}"
        raise HistoryError(msg) from None
    finally:
        if db is not source:
            db.close()


def fields(source: PathLike | sqlite3.Connection, pending: Pending | None = None) -> list[Series]:
    """The series a history holds, in the order first recorded.

    Raises:
        HistoryError: No history there, or not one this mbuspico reads.

    """
    with _reading(source) as db:
        series = _load_series(db)
    if pending is not None:
        for name, s in pending.series.items():
            series.setdefault(name, s)
    return sorted(series.values(), key=lambda s: s.id)


def query(
    source: PathLike | sqlite3.Connection,
    names: str | Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
    step: str = "1h",
    tz: str | tzinfo | None = None,
    *,
    pending: Pending | None = None,
    now: float | None = None,
    max_points: int = MAX_POINTS,
    max_fields: int = 64,
) -> History:
    """Values of a history by bucket of local time, or every reading (``step="raw"``).

    Measurements give each bucket's minimum, mean (of the readings) and
    maximum; totals their increase in the bucket (``delta``: the energy of an
    hour, day, month, from register differences; see the module's
    documentation for resets and gaps) and their value at the bucket's last
    reading (``last``).

    Args:
        source: The history file (or an open connection).
        names: Fields (:func:`fields`); None: every one (except totals for ``raw``).
        start: The first time: Unix seconds, ISO 8601 (a date or a time;
            without an offset in ``tz``), ``now``, or before now as ``-48h``,
            ``-62d``, ``-2mo``, ``-1y``. Default: :data:`DEFAULT_SPAN` before ``end``.
        end: The last time, the same forms; default now.
        step: One of :data:`STEPS`: ``raw`` (every reading, for the days of
            ``history.raw_days``), minutes (``1m`` ...), hours (``1h`` ...), ``1d``,
            ``1w``, ``1mo``, ``1y``, aligned to local time in ``tz``.
        tz: IANA time zone of the buckets; default the file's (the service's),
            else the system's.
        pending: What a :class:`Recorder` has not written yet (:meth:`Recorder.pending`).
        now: The time taken as now (tests).
        max_points: The most buckets (or readings, for ``raw``) of a field.
        max_fields: The most fields.

    Raises:
        HistoryError: No history there, an unknown field, a bad step, time or
            zone, a total asked for ``raw``, more points than ``max_points`` or
            more fields than ``max_fields``.

    """
    kind, n = _parse_step(step)
    now = time.time() if now is None else now
    with _reading(source) as db:
        zone, zone_name = _zone(tz, db)
        stored = _load_series(db)
        known = dict(stored)
        if pending is not None:
            for name, s in pending.series.items():
                known.setdefault(name, s)
        if names is None:
            wanted = sorted(known.values(), key=lambda s: s.id)
            if kind == "raw":
                wanted = [s for s in wanted if s.kind == MEASUREMENT]
        else:
            if isinstance(names, str):
                names = names.split(",")
            names = list(dict.fromkeys(name.strip() for name in names if name.strip()))
            if len(names) > max_fields:
                msg = f"too many fields ({len(names)}; at most {max_fields})"
                raise HistoryError(msg)
            wanted = []
            for name in names:
                found = known.get(name)
                if found is None:
                    have = ", ".join(known) or "none yet"
                    msg = f"no field {name!r} in the history (recorded: {have})"
                    raise HistoryError(msg)
                wanted.append(found)
        end_t = _parse_time(end, zone, now, "to") if end is not None else now
        if start is None:
            span = DEFAULT_SPAN.get(step) or DEFAULT_SPAN.get(kind) or "-48h"
            start_t = _parse_time(span, zone, end_t, "from")
        else:
            start_t = _parse_time(start, zone, now, "from")
        if start_t > end_t:
            msg = "from is after to: nothing to answer"
            raise HistoryError(msg)
        if kind == "raw":
            return _raw(db, wanted, start_t, end_t, zone, zone_name, pending, max_points)
        try:
            bounds = _bounds(start_t, end_t, kind, n, zone, max_points)
        except HistoryError:
            raise
        except (ValueError, OverflowError, OSError):  # steps past the year 9999
            msg = "to is out of range: a time before the year 9999"
            raise HistoryError(msg) from None
        if len(bounds) - 1 > max_points:
            _too_many(len(bounds) - 1, max_points)
        hourly = kind in ("h", "d", "w", "mo", "y") and all(b % 3600 == 0 for b in bounds)
        columns: dict[str, dict[str, list[Any]]] = {}
        for s in wanted:
            if hourly:
                records = _hour_records(db, s, bounds[0], bounds[-1], pending)
            else:
                records = _minute_records(db, s, bounds[0], bounds[-1], pending)
            columns[s.name] = _aggregate(records, bounds, s.kind)
    return History(
        step, zone_name, bounds[0], end_t, [float(b) for b in bounds[:-1]], wanted, columns, zone
    )


def _raw(
    db: sqlite3.Connection,
    wanted: list[Series],
    start: float,
    end: float,
    zone: tzinfo,
    zone_name: str,
    pending: Pending | None,
    max_points: int,
) -> History:
    totals = [s.name for s in wanted if s.kind != MEASUREMENT]
    if totals:
        msg = (
            f"{', '.join(totals)}: a total is kept per minute, not per reading: ask step=1m or more"
        )
        raise HistoryError(msg)
    low, high = int(start * 1000), math.ceil(end * 1000)
    stored = [s for s in wanted if s.first is not None]
    rows: list[tuple[Any, ...]] = []
    by_id = {s.id: s for s in wanted}
    if stored:
        present = " OR ".join(f"c{s.id} IS NOT NULL" for s in stored)
        (count,) = db.execute(
            f"SELECT count(*) FROM raw WHERE t >= ? AND t <= ? AND ({present})", (low, high)
        ).fetchone()
        if count > max_points:
            _too_many(count, max_points)
        select = ", ".join(f"c{s.id}" if s.first is not None else "NULL" for s in wanted)
        rows = db.execute(
            f"SELECT t, {select} FROM raw WHERE t >= ? AND t <= ? AND ({present}) ORDER BY t",
            (low, high),
        ).fetchall()
    if pending is not None and pending.raw:
        first = pending.raw[0][0]
        rows = [r for r in rows if r[0] < first]
        for t, values in pending.raw:
            if low <= t <= high and any(k in values for k in by_id):
                rows.append((t, *(values.get(s.id) for s in wanted)))
    times = [r[0] / 1000 for r in rows]
    columns = {s.name: {"value": [_num(r[j + 1]) for r in rows]} for j, s in enumerate(wanted)}
    return History("raw", zone_name, start, end, times, wanted, columns, zone)


def file_bytes(path: PathLike) -> int:
    """The bytes a history takes on disk: the file and its write-ahead log (0: none)."""
    size = 0
    for part in (Path(path), Path(f"{path}-wal")):
        with contextlib.suppress(OSError):
            size += part.stat().st_size
    return size


def info(path: PathLike) -> dict[str, Any]:
    """What a history file holds: its schema, zone, size, times and series.

    Keys: ``path``, ``schema``, ``tz``, ``bytes`` (the file with its WAL),
    ``minutes`` and ``readings`` (rows kept), ``first`` and ``last`` (the first
    and last minute, Unix s; None when empty), ``fields`` (as
    :meth:`Series.as_json`).
    """
    path = Path(path)
    with _reading(path) as db:
        minutes, first, last = db.execute("SELECT count(*), min(t), max(t) FROM minute").fetchone()
        readings = db.execute("SELECT count(*) FROM raw").fetchone()[0]
        hours_first = db.execute("SELECT min(t) FROM hour").fetchone()[0]
        tz = _zone(None, db)[1]
        series = _load_series(db)
    size = file_bytes(path)
    starts = [t for t in (first, hours_first) if t is not None]
    return {
        "path": str(path),
        "schema": SCHEMA_VERSION,
        "tz": tz,
        "bytes": size,
        "minutes": minutes,
        "readings": readings,
        "first": min(starts) if starts else None,
        "last": last,
        "fields": [s.as_json() for s in series.values()],
    }


# -- output ---------------------------------------------------------------------


def _iso(t: float, zone: tzinfo, raw: bool) -> str:
    local = datetime.fromtimestamp(t, zone)
    return local.isoformat(timespec="milliseconds" if raw else "seconds")


def to_json(history: History) -> dict[str, Any]:
    """One field's answer as ``/api/history`` sends it (JSON).

    ``{"field", "kind", "unit", "medium", "step", "tz", "from", "to", "t",
    "value", ...}``: ``t`` each bucket's start (Unix s; raw: each reading's),
    ``value`` its headline (a total's ``delta``, a measurement's ``mean``; raw:
    the reading), then ``min``, ``mean``, ``max`` (a measurement) or
    ``delta``, ``last`` (a total).

    Raises:
        HistoryError: More or fewer than one field.

    """
    if len(history.series) != 1:
        msg = "JSON answers one field (a plot's series): ask CSV for several"
        raise HistoryError(msg)
    s = history.series[0]
    columns = history.columns[s.name]
    return {
        "field": s.name,
        "kind": s.kind,
        "unit": s.unit,
        "medium": s.medium,
        "step": history.step,
        "tz": history.tz,
        "from": history.start,
        "to": history.end,
        "t": [_num(t) for t in history.time],
        "value": history.value(s.name),
        **{k: v for k, v in columns.items() if k != "value"},
    }


def _column_names(history: History) -> list[tuple[str, str, str]]:
    """(CSV column, field, key) for every column."""
    out = []
    for s in history.series:
        for key in history.columns[s.name]:
            out.append((s.name if key == "value" else f"{s.name}_{key}", s.name, key))
    return out


def to_csv(history: History) -> str:
    """The answer as CSV: ``time`` (ISO 8601 local time with offset), then per field its columns.

    Columns are ``<field>_min``, ``<field>_mean``, ``<field>_max`` of a
    measurement, ``<field>_delta`` and ``<field>_last`` of a total, ``<field>``
    for ``raw``; in the field's unit (:attr:`Series.unit`). Empty where the
    bucket has no reading.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = _column_names(history)
    writer.writerow(["time", *(column for column, _, _ in names)])
    raw = history.step == "raw"
    lists = [history.columns[name][key] for _, name, key in names]
    for j, t in enumerate(history.time):
        writer.writerow(
            [_iso(t, history.zone, raw), *("" if c[j] is None else c[j] for c in lists)]
        )
    return out.getvalue()


def read(
    path: PathLike,
    fields: str | Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
    step: str = "1h",
    tz: str | None = None,
) -> pandas.DataFrame:
    """A history as a pandas DataFrame, for Jupyter.

    The index is each bucket's start (``time``, local time of ``tz``), the
    columns those of :func:`to_csv` (``activePowerPlus_mean``,
    ``activeEnergyPlus_delta``, ...); ``df.attrs`` holds ``units`` (column ->
    unit), ``step`` and ``tz``. Arguments as :func:`query`'s.

    Example::

        df = mbuspico.history.read("history.sqlite3", step="1d", start="-62d")
        df["activeEnergyPlus_delta"].div(1000).plot.bar(ylabel="kWh")

    Raises:
        HistoryError: As :func:`query`.
        ImportError: pandas is not installed (``pip install mbuspico[pandas]``).

    """
    try:
        import pandas as pd
    except ImportError as e:
        msg = "mbuspico.history.read needs pandas: pip install mbuspico[pandas]"
        raise ImportError(msg) from e
    history = query(path, fields, start, end, step, tz)
    names = _column_names(history)
    index = pd.to_datetime(history.time, unit="s", utc=True).tz_convert(history.zone)
    index.name = "time"
    data = {
        column: pd.Series(
            [math.nan if v is None else float(v) for v in history.columns[name][key]],
            index=index,
            dtype="float64",
        )
        for column, name, key in names
    }
    frame = pd.DataFrame(data, index=index)
    units = {s.name: s.unit for s in history.series}
    frame.attrs["units"] = {column: units[name] for column, name, _ in names}
    frame.attrs["step"] = history.step
    frame.attrs["tz"] = history.tz
    return frame


def dumps(history: History) -> str:
    """:func:`to_json` as compact text."""
    return json.dumps(to_json(history), separators=(",", ":"), ensure_ascii=False)
