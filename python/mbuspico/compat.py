"""Output compatible with MBusPico (raven-worx/MBusPico), for Loxone and home setups.

MBusPico's HTTP and UDP services send one JSON object per reading, written by hand
in ``meterdata.py`` / ``mbuspico.c``: one key per line, ``%.2f`` numbers. Existing
Loxone virtual inputs parse exactly that text, quirks included:

* ``timestamp`` is the meter's *local* time labelled ``Z``;
* ``powerFactor`` is cos φ x 1000 (MBusPico ignores the scaler -3);
* fields the meter does not send are ``0.00``.
"""

from __future__ import annotations

from .types import MbusPicoFields

__all__ = ["MBUSPICO_FIELDS", "to_mbuspico_json"]

MBUSPICO_FIELDS = (
    "activePowerPlus",
    "activePowerMinus",
    "activeEnergyPlus",
    "activeEnergyMinus",
    "voltageL1",
    "voltageL2",
    "voltageL3",
    "currentL1",
    "currentL2",
    "currentL3",
    "powerFactor",
)
"""The numeric fields of MBusPico's JSON, in its order (after timestamp,
lxTimestamp and meterNumber)."""


def _number(value: int | float | None) -> str:
    return "%.2f" % (value if value is not None else 0.0)


def to_mbuspico_json(reading: MbusPicoFields) -> str:
    """Return the JSON text MBusPico prints for ``reading``, byte for byte.

    Args:
        reading: A DLMS push or DSMR P1 reading from
            :meth:`mbuspico.Decoder.decode` (both carry MBusPico's fields).

    Returns:
        ``{`` newline, one ``"key": value`` per line, ``}`` (no trailing newline).

    Source: raven-worx/MBusPico ``python/dist/mbus/meterdata.py`` ``to_json`` and
    ``src/mbuspico.c`` ``mbuspico_get_meterdata_json``.

    """
    timestamp = reading["timestamp"]
    local = timestamp[:19] + "Z" if timestamp else ""
    values = {name: reading[name] for name in MBUSPICO_FIELDS}  # type: ignore[literal-required]
    power_factor = values["powerFactor"]
    if power_factor is not None:
        values["powerFactor"] = power_factor * 1000
    lines = [
        f'"timestamp": "{local}"',
        f'"lxTimestamp": {reading["lxTimestamp"] or 0}',
        f'"meterNumber": "{reading["meterNumber"] or ""}"',
    ]
    lines += [f'"{name}": {_number(values[name])}' for name in MBUSPICO_FIELDS]
    return "{\n" + ",\n".join(lines) + "\n}"
