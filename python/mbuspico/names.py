"""The names of a reading's values for people: one table for the CLI, MQTT discovery and the pages.

:data:`FIELDS` gives each of MBusPico's field names (the keys of a DLMS push
or DSMR P1 reading, :class:`mbuspico.types.MbusPicoFields`) a :class:`Name`:
a label (``"Active power import"``), the unit the reading carries (``"Wh"``)
and the unit a person reads it in (``"kWh"``). :data:`OBIS_FIELDS` maps the
OBIS codes of those fields to them, :data:`OBIS_LABELS` names further codes
that DLMS and P1 meters send.

Users: ``mbuspico decode/read --format table`` (:mod:`mbuspico.cli`), Home
Assistant discovery (:mod:`mbuspico.serve.sinks.mqtt_topics`, whose sensor
names are these labels), ``/status.html`` and ``/dashboard``
(:func:`as_json` is what the dashboard's script reads).

Sources: IEC 62056-6-1 (OBIS), DSMR P1 Companion Standard 5.0.2 §6.12,
MBusPico's README (its field names).
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

__all__ = [
    "FIELDS",
    "OBIS_FIELDS",
    "OBIS_LABELS",
    "Name",
    "as_json",
    "display",
    "label_of",
]


class Name(NamedTuple):
    """A value's name and units.

    Attributes:
        label: What a person calls it, in English (``"Voltage L1"``).
        unit: The unit of the value in a reading (``"Wh"``, ``"W"``), None
            for a plain number (the power factor).
        display_unit: The unit to show it in (``"kWh"``); the same as ``unit``
            when no conversion is wanted.
        scale: ``value * scale`` is the value in ``display_unit``.
        digits: Decimals to show in ``display_unit``.

    """

    label: str
    unit: str | None
    display_unit: str | None
    scale: float = 1.0
    digits: int = 0


FIELDS: dict[str, Name] = {
    "activePowerPlus": Name("Active power import", "W", "W"),
    "activePowerMinus": Name("Active power export", "W", "W"),
    "activeEnergyPlus": Name("Active energy import", "Wh", "kWh", 0.001, 3),
    "activeEnergyMinus": Name("Active energy export", "Wh", "kWh", 0.001, 3),
    "reactiveEnergyPlus": Name("Reactive energy import", "varh", "kvarh", 0.001, 3),
    "reactiveEnergyMinus": Name("Reactive energy export", "varh", "kvarh", 0.001, 3),
    "voltageL1": Name("Voltage L1", "V", "V", 1.0, 1),
    "voltageL2": Name("Voltage L2", "V", "V", 1.0, 1),
    "voltageL3": Name("Voltage L3", "V", "V", 1.0, 1),
    "currentL1": Name("Current L1", "A", "A", 1.0, 2),
    "currentL2": Name("Current L2", "A", "A", 1.0, 2),
    "currentL3": Name("Current L3", "A", "A", 1.0, 2),
    "powerFactor": Name("Power factor", None, None, 1.0, 3),
}
"""MBusPico's numeric fields (and the reactive energies): label and units."""

OBIS_FIELDS: dict[str, str] = {
    "1-0:1.7.0": "activePowerPlus",
    "1-0:2.7.0": "activePowerMinus",
    "1-0:1.8.0": "activeEnergyPlus",
    "1-0:2.8.0": "activeEnergyMinus",
    "1-0:3.8.0": "reactiveEnergyPlus",
    "1-0:4.8.0": "reactiveEnergyMinus",
    "1-0:32.7.0": "voltageL1",
    "1-0:52.7.0": "voltageL2",
    "1-0:72.7.0": "voltageL3",
    "1-0:31.7.0": "currentL1",
    "1-0:51.7.0": "currentL2",
    "1-0:71.7.0": "currentL3",
    "1-0:13.7.0": "powerFactor",
}
"""OBIS code (``A-B:C.D.E``) -> the field of :data:`FIELDS` that carries its value."""

OBIS_LABELS: dict[str, str] = {
    **{code: FIELDS[field].label for code, field in OBIS_FIELDS.items()},
    "0-0:1.0.0": "Meter clock",
    "0-0:96.1.0": "Meter number",
    "0-0:96.1.1": "Equipment identifier",
    "0-0:42.0.0": "Logical device name",
    "1-3:0.2.8": "DSMR version",
    "0-0:96.14.0": "Tariff in use",
    "1-0:1.8.1": "Active energy import, tariff 1",
    "1-0:1.8.2": "Active energy import, tariff 2",
    "1-0:2.8.1": "Active energy export, tariff 1",
    "1-0:2.8.2": "Active energy export, tariff 2",
    "1-0:21.7.0": "Active power import L1",
    "1-0:41.7.0": "Active power import L2",
    "1-0:61.7.0": "Active power import L3",
    "1-0:22.7.0": "Active power export L1",
    "1-0:42.7.0": "Active power export L2",
    "1-0:62.7.0": "Active power export L3",
    "0-0:96.7.21": "Power failures",
    "0-0:96.7.9": "Long power failures",
    "1-0:99.97.0": "Power failure log",
    "1-0:32.32.0": "Voltage sags L1",
    "1-0:52.32.0": "Voltage sags L2",
    "1-0:72.32.0": "Voltage sags L3",
    "1-0:32.36.0": "Voltage swells L1",
    "1-0:52.36.0": "Voltage swells L2",
    "1-0:72.36.0": "Voltage swells L3",
    "0-0:96.13.0": "Text message",
}
"""OBIS code -> label, for the codes of :data:`OBIS_FIELDS` and others DLMS and P1 meters send."""

_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_DISPLAY = {"Wh": ("kWh", 0.001, 3), "varh": ("kvarh", 0.001, 3), "kWh": ("kWh", 1.0, 3)}


def label_of(code: str, name: str | None = None) -> str:
    """A label for an OBIS code: :data:`OBIS_LABELS`, else ``name`` made readable, else the code.

    Args:
        code: ``A-B:C.D.E`` as in a reading's ``obis``.
        name: The code table's name of a P1 value (``electricity_delivered_1``),
            or None.

    """
    if code in OBIS_LABELS:
        return OBIS_LABELS[code]
    if name:
        text = re.sub(r"[_/]+", " ", name).strip()
        return text[:1].upper() + text[1:] if text else code
    return code


def display(value: Any, unit: str | None, field: str | None = None) -> tuple[str, str]:
    """A value to show: ``(text, unit)``; ``(1234604, "Wh")`` -> ``("1234.604", "kWh")``.

    Numbers in Wh and varh become kWh and kvarh (3 decimals); a field of
    :data:`FIELDS` gets its own digits; other numbers keep their digits. None
    is ``"—"``; text stays as it is; a list (a P1 power failure log) is its
    entries joined by ``; ``. Never raises.

    Args:
        value: The value of a reading.
        unit: Its unit as sent, or None.
        field: The MBusPico field name it belongs to, when known.

    """
    if value is None:
        return "—", unit or ""
    if isinstance(value, bool):
        return ("yes" if value else "no"), ""
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "—", unit or ""
        name = FIELDS.get(field or "")
        if name is not None and name.unit == unit:
            return f"{value * name.scale:.{name.digits}f}", name.display_unit or ""
        if unit in _DISPLAY:
            shown, scale, digits = _DISPLAY[unit]
            return f"{value * scale:.{digits}f}", shown
        return (f"{value:g}" if isinstance(value, float) else str(value)), unit or ""
    if isinstance(value, (list, tuple)):
        parts = []
        for item in value:
            if isinstance(item, (list, tuple)):
                parts.append(" ".join(str(x) for x in item if x is not None))
            elif item is not None:
                parts.append(str(item))
        return "; ".join(parts) or "—", unit or ""
    if _DATE_TIME.match(str(value)):  # ISO 8601 date-time: a space that may wrap
        return str(value).replace("T", " ", 1), unit or ""
    return str(value), unit or ""


def as_json() -> dict[str, Any]:
    """The table for a page's script.

    ``{"fields": {field: {"label", "unit", "displayUnit", "scale", "digits"}},
    "obis": {code: label}, "obisFields": {code: field}}``.
    """
    return {
        "fields": {
            field: {
                "label": n.label,
                "unit": n.unit,
                "displayUnit": n.display_unit,
                "scale": n.scale,
                "digits": n.digits,
            }
            for field, n in FIELDS.items()
        },
        "obis": dict(OBIS_LABELS),
        "obisFields": dict(OBIS_FIELDS),
    }
