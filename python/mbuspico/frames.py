"""Readings as a pandas DataFrame: :func:`to_pandas`.

pandas is optional (``pip install mbuspico[pandas]``) and imported only when
:func:`to_pandas` is called, so ``import mbuspico`` stays cheap::

    capture = mbuspico.read_capture("month.bin", progress=True)
    df = mbuspico.to_pandas(decoder.decode_iter(capture))
    df["activePowerPlus"].resample("15min").mean()
    df.attrs["units"]["activePowerPlus"]  # 'W'

The columns are built directly, never through a list of dicts: each reading
becomes one tuple of values, readings of the same shape (protocol, OBIS codes
or M-Bus records, units) are grouped, and every 65,536 readings pandas turns
each group's tuples into typed columns at once. Memory holds the finished
frame and one such batch; ``columns=`` with only MBusPico fields skips the OBIS
values altogether (``benchmarks/month.py`` measures a month of 1-second
telegrams).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import tzinfo
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

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
    columns: Sequence[str] | None = None,
    tz: str | tzinfo | None = None,
    errors: Literal["skip", "raise"] = "skip",
) -> pd.DataFrame:
    """A DataFrame of readings, one row per reading, indexed by the meter's time.

    Args:
        readings: Any iterable of the dicts :meth:`mbuspico.Decoder.decode`,
            :meth:`~mbuspico.Decoder.decode_iter`, :meth:`~mbuspico.Decoder.decode_many`
            and :class:`mbuspico.SerialReader` return: DLMS pushes
            (:class:`mbuspico.Reading`), P1 telegrams
            (:class:`mbuspico.DsmrReading`) and wired M-Bus telegrams
            (:class:`mbuspico.MbusReading`), mixed if need be. Exceptions in
            place of readings (``errors="return"`` of ``decode_iter`` and
            ``decode_many``) are skipped or raised, see ``errors``.
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
        wired M-Bus telegrams, whose meter time, if sent, is a record column;
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
            without a reading's keys.
        ValueError: A timestamp without UTC offset and no ``tz``; a column
            (of ``columns``) in two different units, such as ``1-0:1.7.0`` of
            a DLMS push (W) and of a P1 telegram (kW); an unknown ``errors``.
        DecodeError: The first exception item, with ``errors="raise"``.

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
    for name, dtype in frame.dtypes.items():
        if dtype == np.dtype(object) and frame[name].isna().all():
            # No reading has a value: a float column of NaN.
            frame[name] = np.full(n, np.nan)
    frame.index = _index(pd, timestamps, tz)
    return frame


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
        utc = pd.to_datetime(aware, utc=True, format="ISO8601")
        localized = pd.to_datetime(local, format="ISO8601").tz_localize(
            tz, ambiguous="NaT", nonexistent="NaT"
        )
        utc = utc.where(utc.notna(), localized.tz_convert("UTC"))
    else:
        utc = pd.to_datetime(timestamps, utc=True, format="ISO8601")
    index = pd.DatetimeIndex(utc, name="timestamp")
    if hasattr(index, "as_unit"):  # pandas >= 2: one resolution, empty or not
        index = index.as_unit("us")
    return index.tz_convert(tz) if tz is not None else index
