"""The service's pages for people: ``/dashboard`` and ``/status.html``.

``/dashboard`` is one HTML document with its style and script inline (the
files in ``mbuspico/serve/static/``), no external resource: the names table of
:mod:`mbuspico.names`, the latest reading and status are in it as JSON, so the
first paint already shows the values; the script then follows
``/api/events`` (Server-Sent Events, :mod:`mbuspico.serve.events`) and draws
the plots from ``/api/history``.

``/status.html`` is a plain page without script: the service's state, the
latest reading's values with their names and units, warnings, refreshed every
5 s.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from ..names import FIELDS, OBIS_FIELDS, as_json, display, label_of

__all__ = ["NAV", "dashboard_html", "live_status", "reading_rows", "status_html", "warnings"]

NAV = (
    '<nav><a href="/dashboard">Dashboard</a> · <a href="/status.html">Status</a> · '
    '<a href="/settings">Settings</a> · <a href="/">MBusPico JSON</a></nav>'
)
"""The links every page of the service carries."""


def _count(n: int, noun: str) -> str:
    """``1 telegram``, ``3 telegrams``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def live_status(status: Mapping[str, Any], now: float) -> dict[str, Any]:
    """What the dashboard needs of :meth:`mbuspico.serve.Service.status`, for its events.

    Keys: ``now`` (the service's Unix time, s), ``stale``, ``ageSeconds``,
    ``staleAfterSeconds``, ``telegrams`` (``good``, ``badChecksum``,
    ``decryptionFailures``, ``bytesSkipped``), ``serialPort`` (``path``,
    ``connected``), ``device``, ``protocol``, ``lastMeterTime``,
    ``uptimeSeconds``, ``warnings`` (:func:`warnings`).
    """
    return {
        "now": round(now, 3),
        "stale": status["stale"],
        "ageSeconds": status["ageSeconds"],
        "staleAfterSeconds": status["staleAfterSeconds"],
        "telegrams": status["telegrams"],
        "serialPort": status["serialPort"],
        "device": status["device"],
        "protocol": status["protocol"],
        "lastMeterTime": status["lastMeterTime"],
        "uptimeSeconds": status["uptimeSeconds"],
        "warnings": warnings(status),
    }


def warnings(status: Mapping[str, Any]) -> list[dict[str, str]]:
    """What is wrong and what to do, from the service's status: ``[{"kind", "text"}]``.

    Kinds: ``port`` (the serial port is not open), ``key`` (telegrams that
    fail decryption and none that decode), ``stale`` (no reading for longer
    than the threshold, or none yet that long after the start), ``checksum``
    (frames with bad checksums and none that decode). The dashboard adds the
    same warnings for counters that rise while it is open.
    """
    out = []
    port = status["serialPort"]
    tg = status["telegrams"]
    age, threshold = status["ageSeconds"], status["staleAfterSeconds"]
    if not port["connected"]:
        out.append(
            {
                "kind": "port",
                "text": f"The serial port {port['path']} is not open: is the adapter plugged in? "
                "The service keeps trying to reopen it.",
            }
        )
    if tg["decryptionFailures"] and not tg["good"]:
        out.append(
            {
                "kind": "key",
                "text": f"{_count(tg['decryptionFailures'], 'telegram')} could not be "
                "decrypted: the key "
                "is wrong or missing. Enter the key your grid operator gave you on the "
                "Settings page (key).",
            }
        )
    if status["stale"]:
        out.append(
            {
                "kind": "stale",
                "text": f"No reading from the meter for {age:.0f} s (stale after "
                f"{threshold:.0f} s): check the cable to the meter and that its customer "
                "interface is enabled.",
            }
        )
    elif age is None and status["uptimeSeconds"] > threshold and port["connected"]:
        out.append(
            {
                "kind": "stale",
                "text": f"No reading yet after {status['uptimeSeconds']:.0f} s: check the "
                "cable, the protocol and the baud rate on the Settings page.",
            }
        )
    if tg["badChecksum"] and not tg["good"]:
        out.append(
            {
                "kind": "checksum",
                "text": f"{tg['badChecksum']} frames had bad checksums: check the wiring, the "
                "baud rate and the parity.",
            }
        )
    return out


def reading_rows(reading: Mapping[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The values of a reading as ``(label, value, unit, code)`` rows for a page.

    DLMS and P1: every OBIS value, labelled from :mod:`mbuspico.names` (or
    the P1 code table's name), energies in kWh; P1's M-Bus devices (gas,
    water, heat) as ``M-Bus channel N``. Wired M-Bus: every record by its
    quantity (with function and storage number when not the current value).
    Values through :func:`mbuspico.names.display`: never a Python repr.
    """
    if reading is None:
        return []
    rows: list[tuple[str, str, str, str]] = []
    if reading.get("protocol") == "mbus":
        for record in reading.get("records", []):
            label = record.get("quantity") or "Value"
            extra = []
            if record.get("function") not in (None, "instantaneous", "actual"):
                extra.append(str(record["function"]).replace("_", " "))
            if record.get("storageNumber"):
                extra.append(f"storage {record['storageNumber']}")
            if record.get("tariff"):
                extra.append(f"tariff {record['tariff']}")
            if extra:
                label = f"{label} ({', '.join(extra)})"
            text, unit = display(record.get("value"), record.get("unit"))
            rows.append((label, text, unit, ""))
        return rows
    for code, entry in reading.get("obis", {}).items():
        field = OBIS_FIELDS.get(code)
        text, unit = display(_identifier(code, entry.get("value")), entry.get("unit"), field)
        rows.append((label_of(code, entry.get("name")), text, unit, code))
    for channel, device in (reading.get("mbus") or {}).items():
        text, unit = display(device.get("value"), device.get("unit"))
        rows.append((f"M-Bus channel {channel}", text, unit, ""))
    return rows


def _identifier(code: str, value: Any) -> Any:
    """A P1 equipment identifier (``96.1.0``, ``96.1.1``) sent as hex: its text when printable."""
    if not code.endswith((":96.1.0", ":96.1.1")) or not isinstance(value, str):
        return value
    try:
        text = bytes.fromhex(value).decode("ascii")
    except ValueError:
        return value
    return text if text and text.isprintable() and len(value) % 2 == 0 else value


def _json_in_html(doc: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def _template() -> str:
    static = resources.files("mbuspico.serve") / "static"
    page = (static / "dashboard.html").read_text(encoding="utf-8")
    page = page.replace("/*STYLE*/", (static / "dashboard.css").read_text(encoding="utf-8"))
    page = page.replace("/*SCRIPT*/", (static / "dashboard.js").read_text(encoding="utf-8"))
    return page.replace("{NAMES}", _json_in_html(as_json()))


def dashboard_html(
    title: str, reading: Mapping[str, Any] | None, at: float | None, status: Mapping[str, Any]
) -> str:
    """The ``/dashboard`` page with the latest reading and status in it.

    Args:
        title: The page's title (the host name).
        reading: The latest reading, None before the first.
        at: When it arrived (Unix time, s), None before the first.
        status: :func:`live_status`.

    """
    initial = {"reading": reading, "at": at, "status": status}
    return (
        _template()
        .replace("{TITLE}", html.escape(title))
        .replace("{INITIAL}", _json_in_html(initial))
    )


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "no reading yet"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _headline(reading: Mapping[str, Any] | None) -> str:
    if reading is None or reading.get("protocol") == "mbus":
        return ""
    parts = []
    for field in ("activePowerPlus", "activePowerMinus"):
        value = reading.get(field)
        if value is not None:
            text, unit = display(value, "W", field)
            parts.append(f"{FIELDS[field].label}: <b>{html.escape(text)} {unit}</b>")
    return f'<p class="big">{" · ".join(parts)}</p>' if parts else ""


def status_html(status: Mapping[str, Any], reading: Mapping[str, Any] | None) -> str:
    """The ``/status.html`` page: the status and the latest reading's values, refreshed every 5 s.

    Args:
        status: :meth:`mbuspico.serve.Service.status`.
        reading: The latest reading, None before the first.

    """
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(label)}{f' <span class=c>{esc(code)}</span>' if code else ''}</td>"
        f"<td class=n>{esc(value)}</td><td>{esc(unit)}</td></tr>"
        for label, value, unit, code in reading_rows(reading)
    )
    counters = "".join(
        f"<tr><td>{esc(str(k).replace('_', ' '))}</td><td class=n>{esc(str(v))}</td></tr>"
        for k, v in status["counters"].items()
    )
    warns = "".join(f'<p class="warn">{esc(w["text"])}</p>' for w in warnings(status))
    port = status["serialPort"]
    tg = status["telegrams"]
    temp = status["cpuTemperatureC"]
    temp_text = "" if temp is None else f"; CPU temperature {temp} °C"
    meter = ""
    if reading is not None:
        number = reading.get("meterNumber") or reading.get("id")
        kind = {"dlms": "DLMS push meter", "dsmr": "DSMR P1 meter", "mbus": "wired M-Bus meter"}
        meter = f"{kind.get(str(reading.get('protocol')), 'meter')} {number or ''}".rstrip()
        if status["device"] != "auto":
            meter += f" (profile {status['device']})"
    else:
        meter = f"no meter found yet (profile {status['device']})"
    clock = display(status["lastMeterTime"], None)[0]
    age = _ago(status["ageSeconds"])
    last = "" if status["lastReadingAt"] is None else f"; meter clock {esc(clock)}"
    mem = status["rssMiB"]
    avail = status["memAvailableMiB"]
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=5>
<meta name=viewport content="width=device-width, initial-scale=1">
<meta name=color-scheme content="light dark">
<title>mbuspico status · {esc(status["hostname"])}</title>
<style>body{{font:15px system-ui,sans-serif;margin:1em;max-width:60em}}p{{overflow-wrap:anywhere}}
td{{padding:2px 6px}}table{{display:block;max-width:100%;overflow-x:auto}}
table{{border-collapse:collapse}}tr:nth-child(odd){{background:rgba(127,127,127,.1)}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}td+td+td{{white-space:nowrap}}
.c{{color:#888;font-size:12px;white-space:nowrap;display:inline-block}}.big{{font-size:20px}}
.warn{{border-left:4px solid #d80;padding:4px 8px;background:rgba(221,136,0,.12)}}
nav{{margin-bottom:.5em}}</style></head><body>
{NAV}
<h1>mbuspico status</h1>
{warns}
<p>{esc(meter)} on {esc(str(port["path"]))}:
{"connected" if port["connected"] else "<b>not connected</b>"}; last reading {age}{last}</p>
{_headline(reading)}
<p>{esc(status["hostname"])}: mbuspico {esc(str(status["version"]))},
up {status["uptimeSeconds"]:.0f} s; memory {"—" if mem is None else mem} MiB
({"—" if avail is None else avail} MiB available){temp_text};
telegrams {tg["good"]} good, {tg["badChecksum"]} bad checksum,
{tg["decryptionFailures"]} not decrypted, {tg["bytesSkipped"]} bytes skipped</p>
<h2>Reading</h2><table>{rows or "<tr><td>no reading yet</td></tr>"}</table>
<h2>Counters</h2><table>{counters}</table>
<p><a href="/api/reading">reading (JSON)</a> ·
<a href="/api/status">status (JSON)</a></p></body></html>
"""
