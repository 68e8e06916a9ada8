"""What :class:`~mbuspico.serve.sinks.mqtt.MqttSink` publishes: topics and payloads by mode.

Pure functions of a reading, so each layout can be checked against the
document of the system it replaces without a broker:

``mbuspico``
    MBusPico's field names, one topic each: ``<prefix>/<field>`` for
    ``timestamp``, ``lxTimestamp``, ``meterNumber`` and every field of
    :data:`mbuspico.compat.MBUSPICO_FIELDS`, each payload exactly the text
    MBusPico's JSON shows (``1055.00``, ``234.50``, ``powerFactor`` x 1000 as
    ``968.00``, ``timestamp`` local time labelled ``Z``). DLMS push and DSMR
    P1 readings (both carry MBusPico's fields).
``evn-raw`` (EVN Kaifa to MQTT's mode 0)
    ``<prefix>/raw``: the decrypted APDU, as binary.
``evn-topics`` (mode 1)
    ``<prefix>/w_p`` +A Wh, ``w_n`` -A Wh (total energies), ``p_p`` +P W,
    ``p_n`` -P W (momentary powers), ``u1``..``u3`` V, ``i1``..``i3`` A,
    ``phi`` power factor (``0.968``), ``meternumber``, ``timestamp`` (ISO 8601
    with the meter's offset). Values the meter did not send are not published;
    zero is published as ``0``.
``evn-json`` (mode 2)
    ``<prefix>/json``: one object with those names in that order, then ``ip``
    (the address this host reaches the broker from) and ``rssi`` (the Wi-Fi
    signal of that interface as ``"-52dBm"``, null on a wired link); values
    the meter did not send are null.
``obis``
    Any protocol: ``<prefix>/<name>`` for each value of
    :func:`mbuspico.serve.sinks.flat_values` with ``topics=True`` (a name from
    the code table such as ``total/gas_meter`` keeps its ``/`` levels); with
    ``telegram_json`` also the whole reading on ``<prefix>/telegram``.

Source: EVN Kaifa to MQTT's documentation ("MQTT output formats"), MBusPico's
README (the JSON fields), the MicroPython P1 meter's code table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...compat import MBUSPICO_FIELDS
from ...names import FIELDS
from . import flat_values, record_name, topic_name

__all__ = [
    "EVN_FIELDS",
    "Kind",
    "evn_json",
    "evn_values",
    "json_default",
    "kind_of",
    "mbuspico_messages",
    "obis_kinds",
    "obis_values",
]

EVN_FIELDS: dict[str, str] = {
    "meternumber": "meterNumber",
    "timestamp": "timestamp",
    "w_p": "activeEnergyPlus",
    "w_n": "activeEnergyMinus",
    "p_p": "activePowerPlus",
    "p_n": "activePowerMinus",
    "u1": "voltageL1",
    "u2": "voltageL2",
    "u3": "voltageL3",
    "i1": "currentL1",
    "i2": "currentL2",
    "i3": "currentL3",
    "phi": "powerFactor",
}
"""EVN Kaifa to MQTT's names (in its JSON's order) and the MBusPico fields they carry:
``w_`` the total energies (Wh), ``p_`` the momentary powers (W)."""


class Kind(NamedTuple):
    """How Home Assistant should show a sensor."""

    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None

    @property
    def total(self) -> bool:
        """A running total (``total_increasing``)."""
        return self.state_class == "total_increasing"


PLAIN = Kind()
_ENERGY_WH = Kind("energy", "total_increasing", "Wh")
_POWER_W = Kind("power", "measurement", "W")
_VOLTAGE = Kind("voltage", "measurement", "V")
_CURRENT = Kind("current", "measurement", "A")
_POWER_FACTOR = Kind("power_factor", "measurement")
_GAS = Kind("gas", "total_increasing", "m³")
_WATER = Kind("water", "total_increasing", "m³")
_VOLUME = Kind(None, "total_increasing", "m³")

_FIELD_KINDS: dict[str, Kind] = {
    "activePowerPlus": _POWER_W,
    "activePowerMinus": _POWER_W,
    "activeEnergyPlus": _ENERGY_WH,
    "activeEnergyMinus": _ENERGY_WH,
    "reactiveEnergyPlus": Kind(None, "total_increasing", "varh"),
    "reactiveEnergyMinus": Kind(None, "total_increasing", "varh"),
    "voltageL1": _VOLTAGE,
    "voltageL2": _VOLTAGE,
    "voltageL3": _VOLTAGE,
    "currentL1": _CURRENT,
    "currentL2": _CURRENT,
    "currentL3": _CURRENT,
    "powerFactor": _POWER_FACTOR,
}

DLMS_META: dict[str, tuple[str, Kind]] = {
    field: (FIELDS[field].label, kind) for field, kind in _FIELD_KINDS.items()
}
"""MBusPico field -> (Home Assistant name: the label of :data:`mbuspico.names.FIELDS`, kind)."""

# DSMR / wired M-Bus unit as sent -> kind.
_UNIT_META: dict[str, Kind] = {
    "kWh": Kind("energy", "total_increasing", "kWh"),
    "Wh": _ENERGY_WH,
    "GJ": Kind("energy", "total_increasing", "GJ"),
    "kW": Kind("power", "measurement", "kW"),
    "W": _POWER_W,
    "V": _VOLTAGE,
    "A": _CURRENT,
    "°C": Kind("temperature", "measurement", "°C"),
}


def kind_of(unit: Any) -> Kind:
    """The kind of a value in ``unit`` (``"kWh"``, ``"W"``, ...)."""
    if not isinstance(unit, str) or not unit:
        return PLAIN
    return _UNIT_META.get(unit, Kind(unit=unit))


def _volume_kind(device_type: Any) -> Kind:
    """Gas (EN 13757-3 device type 3), water (6, 7, 8) or another volume."""
    if device_type == 3:
        return _GAS
    if device_type in (6, 7, 8):
        return _WATER
    return _VOLUME


def is_number(value: Any) -> bool:
    """A number, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def valid_total(value: Any) -> bool:
    """A total worth publishing to Home Assistant: a number, not zero.

    Home Assistant takes a ``total_increasing`` sensor that drops to zero as a
    meter reset and counts the whole total again.
    """
    return is_number(value) and value != 0


def json_default(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: bytes as hex, anything else as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def mbuspico_messages(reading: Mapping[str, Any]) -> list[tuple[str, str]]:
    """MBusPico's topics with the texts of :func:`mbuspico.compat.to_mbuspico_json`.

    Energy totals that are None or zero are left out (Home Assistant would
    take them as a meter reset).
    """
    timestamp = reading.get("timestamp")
    out = [
        ("timestamp", timestamp[:19] + "Z" if timestamp else ""),
        ("lxTimestamp", str(reading.get("lxTimestamp") or 0)),
        ("meterNumber", str(reading.get("meterNumber") or "")),
    ]
    for field in MBUSPICO_FIELDS:
        value = reading.get(field)
        if DLMS_META[field][1].total and not valid_total(value):
            continue
        # MBusPico shows unsent values as 0.00.
        number = (
            float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
        )
        if field == "powerFactor":
            number *= 1000
        out.append((field, f"{number:.2f}"))
    return out


def evn_values(reading: Mapping[str, Any]) -> dict[str, Any]:
    """EVN's names with the reading's values (None where the meter sent none)."""
    return {short: reading.get(field) for short, field in EVN_FIELDS.items()}


def evn_json(reading: Mapping[str, Any], ip: str | None, rssi: str | None) -> str:
    """The payload of ``<prefix>/json``: :func:`evn_values`, ``ip`` and ``rssi``."""
    doc = {**evn_values(reading), "ip": ip, "rssi": rssi}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def obis_kinds(reading: Mapping[str, Any]) -> dict[str, Kind]:
    """The kind of each :func:`~mbuspico.serve.sinks.flat_values` topic name of ``reading``."""
    protocol = reading.get("protocol")
    names = flat_values(reading, topics=True)
    out: dict[str, Kind] = {}
    if protocol == "dsmr":
        mbus = reading.get("mbus", {})
        for code, entry in reading.get("obis", {}).items():
            name = topic_name(entry.get("name") or code)
            if name not in names or name in out:
                continue
            unit = entry.get("unit")
            if unit in ("m3", "m³"):
                channel = code.split(":")[0].split("-")[-1]
                out[name] = _volume_kind(mbus.get(channel, {}).get("deviceType"))
            else:
                out[name] = kind_of(unit)
        for channel, device in mbus.items():
            name = f"mbus_{channel}"
            if name in names:
                unit = device.get("unit")
                volume = unit in ("m3", "m³")
                out[name] = _volume_kind(device.get("deviceType")) if volume else kind_of(unit)
    elif protocol == "mbus":
        medium = str(reading.get("medium") or "").lower()
        units: dict[str, Any] = {}
        for record in reading.get("records", []):
            units.setdefault(record_name(record), record.get("unit"))
        for name in names:
            unit = units.get(name)
            if unit == "m^3":
                out[name] = _GAS if "gas" in medium else _WATER if "water" in medium else _VOLUME
            else:
                out[name] = kind_of(unit)
    for name in names:
        if protocol == "dlms":
            out[name] = DLMS_META[name][1] if name in DLMS_META else PLAIN
        out.setdefault(name, PLAIN)
    return out


def obis_values(reading: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`~mbuspico.serve.sinks.flat_values` (topic names), integral values as int.

    Totals that are zero are left out (see :func:`valid_total`).
    """
    kinds = obis_kinds(reading)
    out: dict[str, Any] = {}
    for name, value in flat_values(reading, topics=True).items():
        if kinds[name].total and not valid_total(value):
            continue
        out[name] = int(value) if value.is_integer() and abs(value) < 2**53 else value
    return out
