"""Readings as a pandas DataFrame: :func:`to_pandas`.

pandas is optional (``pip install mbuspico[pandas]``) and imported only when
:func:`to_pandas` is called, so ``import mbuspico`` stays cheap::

    capture = mbuspico.read_capture("month.bin", progress=True)
    df = mbuspico.to_pandas(capture, decoder=decoder)   # telegrams: the fast path
    df = mbuspico.to_pandas(decoder.decode_iter(capture))  # readings: the same frame
    df["activePowerPlus"].resample("15min").mean()
    df.attrs["units"]["activePowerPlus"]  # 'W'

Given ``decoder=``, :func:`to_pandas` takes the telegrams themselves and never
makes a dict per reading: batches of 65,536 telegrams go to
``_core.decode_columns``, which decodes them with the GIL released and sorts
the values into typed columns in Rust; numpy takes the numeric columns over as
they are (``np.frombuffer``), and while one batch is decoded on a worker thread
the next is read from the capture. A month of 1-second telegrams (2.6 million)
takes seconds (``benchmarks/month.py --fast``). Wired M-Bus telegrams in the
input go through the dict path below, row by row.

Given readings (dicts), the columns are built directly too, never through a
list of dicts: each reading becomes one tuple of values, readings of the same
shape (protocol, OBIS codes or M-Bus records, units) are grouped, and every
65,536 readings pandas turns each group's tuples into typed columns at once.
Memory holds the finished frame and one such batch; ``columns=`` with only
MBusPico fields skips the OBIS values altogether.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import tzinfo
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from ._core import Decoder

__all__ = ["to_pandas"]

_MBUSPICO_UNITS: dict[str, str | None] = {
    "protocol": None,
    "meterNumber": None,
    "lxTimestamp": "s",
    "activePowerPlus": "W",
    "activePowerMinus": "W",
    "activeEnergyPlus": "Wh",
    "activeEnergyMinus": "Wh",
    "reactiveEnergyPlus": "varh",
    "reactiveEnergyMinus": "varh",
    "voltageL1": "V",
    "voltageL2": "V",
    "voltageL3": "V",
    "currentL1": "A",
    "currentL2": "A",
    "currentL3": "A",
    "powerFactor": None,
    "systemTitle": None,
    "frameCounter": None,
}
"""The columns of a DLMS or P1 reading (:class:`mbuspico.types.MbusPicoFields`
without ``timestamp``, which is the index) and their units."""

_MBUS_UNITS: dict[str, str | None] = {
    "protocol": None,
    "id": None,
    "manufacturer": None,
    "version": None,
    "productName": None,
    "medium": None,
    "accessNumber": None,
    "status": None,
}
"""The header columns of a wired M-Bus reading (EN 13757-3 §6.2)."""

_MBUSPICO_GET = itemgetter(*_MBUSPICO_UNITS)
_MBUS_GET = itemgetter(*_MBUS_UNITS)
_VALUE = itemgetter("value")
_UNIT = itemgetter("unit")
_QUANTITY_UNIT = itemgetter("quantity", "unit")
_CHUNK = 1 << 16
"""Readings turned into columns at a time: bounds the Python objects held."""


class _Group:
    """Readings of one shape: the same protocol, codes or records, and units."""

    __slots__ = ("names", "positions", "rows", "units")

    def __init__(self, names: list[str], units: list[str | None]) -> None:
        self.names = names
        self.units = units
        self.rows: list[tuple[Any, ...]] = []
        self.positions: list[int] = []


def _obis_group(protocol: Any, codes: tuple[str, ...], units: tuple[str | None, ...]) -> _Group:
    names = [*_MBUSPICO_UNITS, *codes]
    return _Group(names, [*_MBUSPICO_UNITS.values(), *units])


def _mbus_group(records: tuple[tuple[str | None, str | None], ...]) -> _Group:
    names = list(_MBUS_UNITS)
    units = list(_MBUS_UNITS.values())
    for i, (quantity, unit) in enumerate(records):
        names.append(f"{i}:{quantity}" if quantity else str(i))
        units.append(unit)
    return _Group(names, units)


def to_pandas(
    readings: Iterable[Any],
    *,
    decoder: Decoder | None = None,
    columns: Sequence[str] | None = None,
    tz: str | tzinfo | None = None,
    errors: Literal["skip", "raise"] = "skip",
) -> pd.DataFrame:
    """A DataFrame of readings, one row per reading, indexed by the meter's time.

    Args:
        readings: Without ``decoder``: any iterable of the dicts
            :meth:`mbuspico.Decoder.decode`, :meth:`~mbuspico.Decoder.decode_iter`,
            :meth:`~mbuspico.Decoder.decode_many` and :class:`mbuspico.SerialReader`
            return: DLMS pushes (:class:`mbuspico.Reading`), P1 telegrams
            (:class:`mbuspico.DsmrReading`) and wired M-Bus telegrams
            (:class:`mbuspico.MbusReading`), mixed if need be. Exceptions in
            place of readings (``errors="return"`` of ``decode_iter`` and
            ``decode_many``) are skipped or raised, see ``errors``.
            With ``decoder``: the telegrams themselves, any iterable of what
            :meth:`~mbuspico.Decoder.decode` accepts (``bytes``, hex text, P1
            text), such as a :class:`mbuspico.Capture` from
            :func:`mbuspico.read_capture` (whose ``progress=True`` bar runs as
            it is read).
        decoder: Decode ``readings`` (telegrams) with this decoder, the fast
            way: in batches, in Rust with the GIL released, straight into
            columns (no dict per reading). The frame equals
            ``to_pandas(decoder.decode_iter(readings), ...)`` (dtypes too).
            Telegrams that do not decode (a
            ``DecodeError``, or ``TypeError`` for an item that is no telegram)
            are counted in ``attrs["skipped"]`` or raised, see ``errors``.
            Wired M-Bus telegrams are decoded into dicts and take the dict
            path, row by row. A generator (or Capture) the telegrams come
            from is closed when ``to_pandas`` returns or raises.
        columns: The columns to keep, in this order (default: all). A column
            no reading has is all missing values, so frames of different
            captures (Dask partitions) share their columns.
        tz: Time zone of the index (default UTC), e.g. ``"Europe/Vienna"``.
            Also the zone of timestamps sent without UTC offset (the
            Landis+Gyr E450 clock): those need ``tz``; in the repeated
            autumn hour or the skipped spring hour they become ``NaT``.
        errors: ``"skip"`` (default) leaves exception items out and counts
            them in ``df.attrs["skipped"]``; ``"raise"`` raises the first.

    Returns:
        A ``pandas.DataFrame`` indexed by a time-zone-aware
        ``DatetimeIndex`` named ``"timestamp"`` (the reading's
        ``timestamp``, the meter clock; ``NaT`` for readings without one:
        wired M-Bus telegrams, whose meter time, if sent, is a record column,
        and clocks that are no date, such as 31 February;
        ``df[df.index.notna()]`` drops them). The columns, in order of first
        appearance:

        * DLMS and P1: ``protocol``, then MBusPico's fields (``meterNumber``,
          ``lxTimestamp``, ``activePowerPlus`` W, ``activeEnergyPlus`` Wh,
          ``reactiveEnergyPlus`` varh, ``voltageL1`` V, ``currentL1`` A,
          ``powerFactor`` cos φ, ``systemTitle``, ``frameCounter``, …; see
          :class:`mbuspico.types.MbusPicoFields`), then one column per OBIS
          code (``"1-0:1.8.0"``, IEC 62056-6-1; P1: DSMR 5.0.2 §6.12) with the
          value as the meter sent it (P1: in kWh, kW, m3; the line's own time
          is not kept).
        * Wired M-Bus: ``protocol``, the header (``id``, ``manufacturer``,
          ``version``, ``productName``, ``medium``, ``accessNumber``,
          ``status``), then one column per data record (EN 13757-3 §6.3)
          named by its index in ``records`` and its quantity:
          ``"1:Energy"``, ``"5:Flow temperature"`` (the index alone when the
          quantity is unknown); stable for one meter, whose telegrams keep
          their record layout.

        Numbers are ``int64`` (``float64`` with ``NaN`` where some readings
        lack the value), text is a string column, a column without any value
        is ``float64`` ``NaN``. pandas has no per-column metadata;
        ``DataFrame.attrs`` is its documented place for such data, so
        ``df.attrs["units"]`` maps every column to its unit (``"W"``, ``"Wh"``,
        ``"V"``, ``"kWh"``, ``"m^3"``, …; ``None`` when dimensionless or text),
        ``df.attrs["skipped"]`` counts the skipped exception items and
        ``df.attrs["no_timestamp"]`` the ``NaT`` rows.

    Raises:
        ImportError: pandas is not installed (``pip install mbuspico[pandas]``).
        TypeError: An item is neither a reading nor an exception, or a dict
            without a reading's keys; with ``decoder``: ``readings`` is one
            ``bytes`` or ``str`` instead of an iterable of telegrams, or (with
            ``errors="raise"``) an item is no telegram.
        ValueError: A timestamp without UTC offset and no ``tz``; a column
            (of ``columns``) in two different units, such as ``1-0:1.7.0`` of
            a DLMS push (W) and of a P1 telegram (kW); an unknown ``errors``.
        DecodeError: The first exception item, with ``errors="raise"``; with
            ``decoder``, the first telegram that does not decode (its
            ``offset`` the byte where decoding failed).

    """
    try:
        import numpy as np
        import pandas as pd
    except ImportError as e:
        msg = "mbuspico.to_pandas needs pandas: pip install mbuspico[pandas]"
        raise ImportError(msg) from e
    if errors not in ("skip", "raise"):
        msg = f'errors must be "skip" or "raise", not {errors!r}'
        raise ValueError(msg)

    wanted = None if columns is None else list(columns)
    if decoder is not None:
        return _decoded_frame(pd, np, readings, decoder, wanted, tz, errors)
    units: dict[str, str | None] = {}
    chunks: list[pd.DataFrame] = []
    fields = wanted if wanted and all(name in _MBUSPICO_UNITS for name in wanted) else None
    fields_get: Any = None
    if fields is not None:
        fields_get = itemgetter(*fields) if len(fields) > 1 else lambda r: (r[fields[0]],)
    groups: dict[tuple[Any, ...], _Group] = {}
    timestamps: list[str | None] = []
    skipped = 0
    n = 0
    for reading in readings:
        if type(reading) is not dict:
            if isinstance(reading, Exception):
                if errors == "raise":
                    raise reading
                skipped += 1
                continue
            if not isinstance(reading, dict):
                msg = f"item {len(chunks) * _CHUNK + n + skipped} is a "
                msg += f"{type(reading).__name__}, not a reading"
                raise TypeError(msg)
        try:
            protocol = reading.get("protocol")
            if protocol == "mbus":
                records = reading["records"]
                shape: tuple[Any, ...] = ("mbus", tuple(map(_QUANTITY_UNIT, records)))
                group = groups.get(shape)
                if group is None:
                    group = groups[shape] = _mbus_group(shape[1])
                group.rows.append(_MBUS_GET(reading) + tuple(map(_VALUE, records)))
                timestamps.append(None)
            elif fields is not None:  # only MBusPico fields wanted: the OBIS values are not read
                shape = (protocol,)
                group = groups.get(shape)
                if group is None:
                    group = groups[shape] = _Group(
                        list(fields), [_MBUSPICO_UNITS[f] for f in fields]
                    )
                group.rows.append(fields_get(reading))
                timestamps.append(reading["timestamp"])
            else:
                obis = reading["obis"]
                values = obis.values()
                shape = (protocol, tuple(obis), tuple(map(_UNIT, values)))
                group = groups.get(shape)
                if group is None:
                    group = groups[shape] = _obis_group(*shape)
                group.rows.append(_MBUSPICO_GET(reading) + tuple(map(_VALUE, values)))
                timestamps.append(reading["timestamp"])
        except (KeyError, TypeError, AttributeError) as e:
            msg = f"item {len(chunks) * _CHUNK + n + skipped} is not a reading: "
            msg += f"{type(e).__name__} {e}"
            raise TypeError(msg) from None
        group.positions.append(n)
        n += 1
        if n == _CHUNK:
            chunks.append(_chunk(pd, np, groups, timestamps, n, wanted, units, tz))
            groups, timestamps, n = {}, [], 0
    if n or not chunks:
        chunks.append(_chunk(pd, np, groups, timestamps, n, wanted, units, tz))
    names = list(units) if wanted is None else wanted
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks)
    if list(frame.columns) != names:
        frame = frame.reindex(columns=names)
    if len(chunks) > 1:
        _settle(np, frame)
    frame.attrs = {
        "units": {name: units.get(name) for name in names},
        "skipped": skipped,
        "no_timestamp": int(frame.index.isna().sum()),
    }
    return frame


def _chunk(
    pd: Any,
    np: Any,
    groups: dict[tuple[Any, ...], _Group],
    timestamps: list[str | None],
    n: int,
    wanted: list[str] | None,
    units: dict[str, str | None],
    tz: str | tzinfo | None,
) -> Any:
    """The DataFrame of ``n`` readings grouped by shape; adds their units to ``units``."""
    keep = None if wanted is None else set(wanted)
    for group in groups.values():
        for name, unit in zip(group.names, group.units):
            if keep is not None and name not in keep:
                continue
            _add_unit(units, name, unit)
    if not groups:
        return pd.DataFrame(
            {name: np.full(0, np.nan) for name in wanted or []},
            index=_index(pd, timestamps, tz),
        )
    parts = [pd.DataFrame.from_records(g.rows, columns=g.names) for g in groups.values()]
    if len(parts) == 1:
        frame = parts[0]
    else:  # back into reading order
        for part, group in zip(parts, groups.values()):
            part.index = group.positions
        frame = pd.concat(parts).sort_index()
    if wanted is None:
        wanted = [name for name in units if name in frame.columns]
    if list(frame.columns) != wanted:
        frame = frame.reindex(columns=wanted)
    _settle(np, frame)
    frame.index = _index(pd, timestamps, tz)
    return frame


def _settle(np: Any, frame: Any) -> None:
    """Give ``object`` columns the dtype of their values, in place.

    Readings of different layouts are put together by ``pd.concat``, which
    makes a column ``object`` where one layout lacks it: numbers become
    ``float64`` again (``NaN`` where missing), text pandas' text dtype, and a
    column without any value ``float64`` ``NaN``; bools, lists, mixed values
    and text of pandas 2 stay ``object``, with None where missing.
    """
    names = [name for name, dtype in frame.dtypes.items() if dtype == np.dtype(object)]
    if not names:
        return
    inferred = frame[names].infer_objects()
    for name in names:
        column = inferred[name]
        missing = column.isna()
        if missing.all():
            frame[name] = np.full(len(frame), np.nan)
        elif column.dtype == np.dtype(object) and missing.any():
            frame[name] = column.where(~missing, None)  # None, not NaN, for a missing text
        else:
            frame[name] = column


def _index(pd: Any, timestamps: list[str | None], tz: str | tzinfo | None) -> Any:
    """The time-zone-aware ``DatetimeIndex`` of the readings' ISO 8601 timestamps."""
    # No UTC offset: neither "Z" nor "+hh:mm"/"-hh:mm" after the time of day.
    naive = [
        i
        for i, t in enumerate(timestamps)
        if t and t[-1] != "Z" and (len(t) <= 19 or t[-6] not in "+-")
    ]
    if naive and tz is None:
        msg = (
            f"reading {naive[0]} has a timestamp without UTC offset "
            f"({timestamps[naive[0]]!r}): pass tz=, the meter's time zone, e.g. "
            '"Europe/Vienna"'
        )
        raise ValueError(msg)
    if naive:
        naive_set = set(naive)
        aware = [None if i in naive_set else t for i, t in enumerate(timestamps)]
        local = [t if i in naive_set else None for i, t in enumerate(timestamps)]
        utc = pd.to_datetime(aware, utc=True, format="ISO8601", errors="coerce")
        localized = pd.to_datetime(local, format="ISO8601", errors="coerce").tz_localize(
            tz, ambiguous="NaT", nonexistent="NaT"
        )
        utc = utc.where(utc.notna(), localized.tz_convert("UTC"))
    else:
        # A clock that is no date (31 February: DLMS checks only the ranges) is NaT.
        utc = pd.to_datetime(timestamps, utc=True, format="ISO8601", errors="coerce")
    index = pd.DatetimeIndex(utc, name="timestamp")
    if hasattr(index, "as_unit"):  # pandas >= 2: one resolution, empty or not
        index = index.as_unit("us")
    return index.tz_convert(tz) if tz is not None else index


def _add_unit(units: dict[str, str | None], name: str, unit: str | None) -> None:
    """Record ``name``'s unit; refuse a second, different one."""
    known = units.setdefault(name, unit)
    if unit is not None and unit != known:
        if known is not None:
            msg = (
                f"column {name!r} has values in {known} and in {unit} "
                "(readings of different meters? convert them separately, "
                "or leave the column out with columns=)"
            )
            raise ValueError(msg)
        units[name] = unit


class _Columns:
    """The columns of :func:`_decoded_frame`, gathered batch by batch."""

    def __init__(self, pd: Any, np: Any, wanted: list[str] | None, tz: str | tzinfo | None) -> None:
        self.pd, self.np, self.tz = pd, np, tz
        self.keep = None if wanted is None else set(wanted)
        self.n = 0
        self.skipped = 0
        self.units: dict[str, str | None] = {}
        # Number columns are written into arrays of ``capacity`` rows as the
        # batches arrive (name -> [array, rows written]), so no batch is kept
        # and the frame takes them as they are: its numbers are never held
        # twice. The time stamps likewise; their array's length is the capacity.
        self.arrays: dict[str, list[Any]] = {}
        self.stamps = np.empty(0, "<i8")
        # Other columns, and number columns that also had other kinds: per
        # column (first row, rows, kind, data) of each batch that has it.
        self.parts: dict[str, list[tuple[int, int, str, Any]]] = {}
        self.mbus: dict[tuple[Any, ...], _Group] = {}
        # pandas' text dtype and pyarrow, when pyarrow holds pandas' text (pandas 3):
        # then each batch's texts become an arrow array as the batch arrives.
        # With pyarrow's ``compute.take``, which the batches' texts go through.
        self.arrow: tuple[Any, Any, Any] | None = None
        dtype = pd.Series(["text"]).dtype
        if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
            from importlib import import_module

            pa = import_module("pyarrow")  # pandas' dependency (untyped)
            self.arrow = (dtype, pa, import_module("pyarrow.compute").take)

    def add(self, result: dict[str, Any]) -> None:
        """Take one batch of ``_core.decode_columns``."""
        np, start, rows = self.np, self.n, result["rows"]
        stamps = np.frombuffer(result["timestamp"], "<i8")
        naive = np.frombuffer(result["naive_rows"], "<i8")
        if len(naive):
            if self.tz is None:
                msg = (
                    f"reading {start + int(naive[0])} has a timestamp without UTC offset "
                    f"({result['naive_first']!r}): pass tz=, the meter's time zone, e.g. "
                    '"Europe/Vienna"'
                )
                raise ValueError(msg)
            local = np.frombuffer(result["naive_local"], "<i8").view("M8[us]")
            utc = self.pd.DatetimeIndex(local).tz_localize(
                self.tz, ambiguous="NaT", nonexistent="NaT"
            )
            stamps = stamps.copy()
            stamps[naive] = utc.as_unit("us").asi8
        end = start + rows
        if end > self.capacity:
            self.reserve(max(end, self.capacity + self.capacity // 4))
        self.stamps[start:end] = stamps
        # New columns in order of first appearance: rows decoded in Rust, and
        # wired M-Bus rows (dicts), each a group of the dict path.
        found: list[tuple[int, int, str, str | None, str | None]] = []
        for name, unit, first, kind, data, other in result["columns"]:
            if kind == "empty":  # no value in this batch: rows left missing
                pass
            elif kind in ("int64", "float64") and name not in self.parts:
                self._put(name, start, rows, kind, data)
            else:
                if name in self.arrays:  # numbers, and now something else: as parts
                    array, filled = self.arrays.pop(name)
                    number = "int64" if array.dtype.kind == "i" else "float64"
                    self.parts[name] = [(0, filled, number, array[:filled])]
                if kind == "text":
                    texts, codes = data
                    codes = np.frombuffer(codes, "<i8")
                    if self.arrow is None:
                        data = (texts, codes)
                    else:  # the batch's rows as pandas will hold them
                        _, pa, take = self.arrow
                        # The system allocator: pyarrow's default pool (mimalloc)
                        # kept ~75 MiB of these batches' short-lived arrays.
                        pool = pa.system_memory_pool()
                        texts = pa.array(texts, type=pa.large_string(), memory_pool=pool)
                        indices = pa.array(codes, mask=codes < 0, memory_pool=pool)
                        kind, data = "arrow", take(texts, indices, memory_pool=pool)
                self.parts.setdefault(name, []).append((start, rows, kind, data))
            found.append((first, len(found), name, unit, other))
        for row, reading in result["mbus"]:
            try:
                records = reading["records"]
                shape = ("mbus", tuple(map(_QUANTITY_UNIT, records)))
                group = self.mbus.get(shape)
                if group is None:
                    group = self.mbus[shape] = _mbus_group(shape[1])
                if not group.rows or group.positions[-1] < start:  # first in this batch
                    for name, unit in zip(group.names, group.units):
                        found.append((row, len(found), name, unit, None))
                group.rows.append(_MBUS_GET(reading) + tuple(map(_VALUE, records)))
            except (KeyError, TypeError, AttributeError) as e:  # pragma: no cover
                msg = f"reading {start + row} is not a wired M-Bus reading: {e}"
                raise TypeError(msg) from None
            group.positions.append(start + row)
        for _, _, name, unit, other in sorted(found):
            if self.keep is not None and name not in self.keep:
                continue
            _add_unit(self.units, name, unit)
            if other is not None:
                _add_unit(self.units, name, other)
        self.n += rows
        self.skipped += result["skipped"]

    @property
    def capacity(self) -> int:
        """Rows the number columns have room for."""
        return len(self.stamps)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in every number column and the time stamps."""
        np = self.np
        if rows <= self.capacity:
            return
        for entry in self.arrays.values():  # one column at a time: one more held at most
            array, filled = entry
            entry[0] = np.empty(rows, array.dtype)
            entry[0][:filled] = array[:filled]
            del array
        stamps = np.empty(rows, "<i8")
        stamps[: self.n] = self.stamps[: self.n]
        self.stamps = stamps

    def _put(self, name: str, start: int, rows: int, kind: str, data: bytes) -> None:
        """Write one batch's numbers of column ``name`` (rows from ``start``)."""
        np = self.np
        values = np.frombuffer(data, "<" + kind[0] + "8")
        entry = self.arrays.get(name)
        if entry is None:
            entry = self.arrays[name] = [np.empty(self.capacity, "<" + kind[0] + "8"), 0]
        array, filled = entry
        if filled < start or (kind == "float64" and array.dtype.kind == "i"):
            if array.dtype.kind == "i":  # rows without it, or fractions: float64 (NaN)
                array = entry[0] = array.astype("<f8")
            array[filled:start] = np.nan
        array[start : start + rows] = values
        entry[1] = start + rows

    def _numbers(self, name: str) -> Any:
        """The number column ``name`` (its array dropped): int64, or float64 with NaN."""
        np, n = self.np, self.n
        array, filled = self.arrays.pop(name)
        if filled < n:
            if array.dtype.kind == "i":
                array = array.astype("<f8")
            array[filled:n] = np.nan
        if self.capacity - n > n // 16:  # much room left: give it back
            return array[:n].copy()
        return array[:n]

    def column(self, name: str) -> Any:
        """The values of column ``name`` over all rows (its batches dropped).

        An int64 or float64 array, pandas' text array (or a list of str and
        None for pandas to infer from, like the dict path's), or a list.
        """
        if name in self.arrays:
            return self._numbers(name)
        np, n = self.np, self.n
        parts = self.parts.pop(name, [])
        kinds = {kind for _, _, kind, _ in parts}
        whole = "empty" not in kinds and sum(rows for _, rows, _, _ in parts) == n
        if kinds <= {"int64", "float64", "empty"}:
            arrays = [np.frombuffer(d, "<" + k[0] + "8") for _, _, k, d in parts if k != "empty"]
            if whole:
                return np.concatenate(arrays, dtype=kinds.pop() if len(kinds) == 1 else "f8")
            out = np.full(n, np.nan)
            for (start, rows, _, _), array in zip((p for p in parts if p[2] != "empty"), arrays):
                out[start : start + rows] = array
            return out
        if kinds <= {"arrow", "empty"} and self.arrow is not None:
            # pandas' text array holds the batches' arrow arrays as they are.
            dtype, pa, _ = self.arrow
            chunks: list[Any] = []
            at = 0
            for start, rows, _, data in (p for p in parts if p[2] == "arrow"):
                if start > at:
                    chunks.append(pa.nulls(start - at, pa.large_string()))
                chunks.append(data)
                at = start + rows
            if at < n:
                chunks.append(pa.nulls(n - at, pa.large_string()))
            return dtype.__from_arrow__(pa.chunked_array(chunks, type=pa.large_string()))
        if kinds <= {"text", "empty"}:
            chunks = []
            codes = np.full(n, -1, dtype=np.intp)
            count = 0
            for start, rows, _, (texts, these) in (p for p in parts if p[2] == "text"):
                codes[start : start + rows] = np.where(these < 0, -1, these + count)
                chunks.append(texts)
                count += len(texts)
            return _text_list(np, [t for chunk in chunks for t in chunk], codes)
        values: list[Any] = [None] * n
        for start, rows, kind, data in parts:
            if kind == "int64":
                data = np.frombuffer(data, "<i8").tolist()
            elif kind == "float64":
                data = [None if x != x else x for x in np.frombuffer(data, "<f8").tolist()]
            elif kind == "text":
                texts, codes = data
                data = _text_list(np, texts, codes)
            elif kind == "arrow":
                data = data.to_pylist()
            elif kind == "empty":
                continue
            values[start : start + rows] = data
        return values

    def frame(self, wanted: list[str] | None) -> Any:
        """The DataFrame of all batches, as :func:`to_pandas` returns it."""
        from concurrent.futures import ThreadPoolExecutor

        pd, np, n = self.pd, self.np, self.n
        names = list(self.units) if wanted is None else wanted
        # The index first: pandas copies the time stamps, whose array then goes
        # while little else is held.
        index = pd.DatetimeIndex(self.stamps[:n].view("M8[us]"), name="timestamp")
        self.stamps = np.empty(0, "<i8")
        index = index.tz_localize("UTC")
        index = index.tz_convert(self.tz) if self.tz is not None else index
        decoded = set(self.parts) | set(self.arrays)  # the columns with values decoded in Rust
        # numpy's concatenation and pyarrow's take release the GIL: two at a time.
        with ThreadPoolExecutor(2, thread_name_prefix="mbuspico-columns") as pool:
            data: dict[str, Any] = dict(
                zip(
                    names,
                    pool.map(
                        lambda name: self.column(name) if name in decoded else np.full(n, np.nan),
                        names,
                    ),
                )
            )
        if self.mbus:  # the dict path's frame of the wired M-Bus rows, merged in
            groups = [
                pd.DataFrame.from_records(g.rows, columns=g.names).set_axis(g.positions)
                for g in self.mbus.values()
            ]
            mbus = groups[0] if len(groups) == 1 else pd.concat(groups).sort_index()
            for name in names:
                if name not in mbus.columns:
                    continue
                if name in decoded:
                    rest = pd.Series(data[name]).drop(mbus.index)
                    data[name] = pd.concat([rest, mbus[name]]).sort_index()
                else:
                    data[name] = mbus[name].reindex(range(n))
        frame = pd.DataFrame(data, copy=False)  # copy=False: not consolidated
        _settle(np, frame)
        frame.index = index
        frame.attrs = {
            "units": {name: self.units.get(name) for name in names},
            "skipped": self.skipped,
            "no_timestamp": int(frame.index.isna().sum()),
        }
        return frame


def _text_list(np: Any, texts: list[str], codes: Any) -> list[str | None]:
    """``texts[codes]`` as a list, None where the code is -1 (pandas infers the dtype)."""
    table = np.empty(len(texts) + 1, dtype=object)
    table[: len(texts)] = texts
    table[-1] = None
    return list(table[codes].tolist())


def _decoded_frame(
    pd: Any,
    np: Any,
    telegrams: Iterable[Any],
    decoder: Decoder,
    wanted: list[str] | None,
    tz: str | tzinfo | None,
    errors: Literal["skip", "raise"],
) -> Any:
    """``to_pandas(telegrams, decoder=decoder)``: decoded in batches into columns.

    Each batch of :data:`_CHUNK` telegrams is decoded by
    ``_core.decode_columns`` on a worker thread (in Rust, the GIL released)
    while this thread reads the next batch from ``telegrams`` (a capture's
    deframer), so reading and decoding overlap.
    """
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    from ._core import decode_columns
    from .capture import Capture

    if isinstance(telegrams, (bytes, bytearray, memoryview, str)):
        msg = (
            "to_pandas(..., decoder=) takes an iterable of telegrams, not one "
            f"{type(telegrams).__name__}: pass [telegram]"
        )
        raise TypeError(msg)
    gathered = _Columns(pd, np, wanted, tz)
    capture = telegrams if isinstance(telegrams, Capture) else None
    size = 0
    if capture is not None:
        with suppress(OSError):  # reading it says why
            size = os.path.getsize(capture.path)
    # Lists of telegrams: what each read of a capture completed, or slices.
    if isinstance(telegrams, Capture):
        lists: Iterator[list[Any]] = telegrams.batches()
    else:
        items = iter(telegrams)
        lists = iter(lambda: list(islice(items, _CHUNK)), [])

    def batch() -> list[Any]:
        """The next :data:`_CHUNK` telegrams or so (empty at the end)."""
        telegrams: list[Any] = []
        for more in lists:
            telegrams += more
            if len(telegrams) >= _CHUNK:
                break
        return telegrams

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="mbuspico-columns") as pool:

            def submit(telegrams: list[Any]) -> Any:
                return pool.submit(
                    decode_columns, decoder, telegrams, errors=errors, columns=wanted
                )

            first = batch()
            pending = submit(first) if first else None
            del first  # each batch and result is let go as soon as it is used
            while pending is not None:
                following = batch()
                result = pending.result()
                pending = submit(following) if following else None
                if capture is not None and capture.bytes_read:
                    # The rows to come, from the file's size: the columns are
                    # made that long once, not grown batch by batch.
                    expected = (gathered.n + result["rows"] + len(following)) * size
                    expected //= capture.bytes_read
                    if expected > gathered.capacity:
                        gathered.reserve(expected + expected // 64)
                gathered.add(result)
                del result, following
    finally:
        close = getattr(lists if isinstance(telegrams, Capture) else telegrams, "close", None)
        if close is not None:  # a generator (a Capture's): its file and progress bar
            close()
    return gathered.frame(wanted)
