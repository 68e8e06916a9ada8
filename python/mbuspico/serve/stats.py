"""Figures about the machine ``mbuspico serve`` runs on: memory, CPU temperature, host name.

Each function reads what Linux exposes and returns None where the figure is not
available (another operating system, a board without a thermal sensor, an
unreadable file); none of them raises.

Sources: ``/proc/self/status`` (``VmRSS``, kB; proc(5)), the kernel's thermal
sysfs interface (``/sys/class/thermal/thermal_zone*/temp`` in millidegrees
Celsius and ``type``; Linux ``Documentation/driver-api/thermal/sysfs-api.rst``),
and :func:`resource.getrusage` as the fallback for memory.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "THERMAL_BASE",
    "cpu_temperature",
    "hostname",
    "iso_utc",
    "machine",
    "mem_available_mib",
    "rss_mib",
    "wifi_rssi",
]

THERMAL_BASE = "/sys/class/thermal"
"""Where Linux lists its thermal zones."""

# Zone types of the CPU's sensor, best first: the Raspberry Pi and other ARM
# boards (``cpu-thermal``, ``cpu_thermal``, ``soc_thermal``), Intel
# (``x86_pkg_temp``).
_CPU_TYPES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc-thermal", "soc_thermal")
_ZONE = re.compile(r"thermal_zone(\d+)\Z")


def rss_mib(status_file: str | os.PathLike[str] = "/proc/self/status") -> float | None:
    """The resident set size of this process in MiB (1 MiB = 1024 KiB), rounded to 0.1.

    Read from the ``VmRSS`` line of ``status_file`` (kB as the kernel counts
    them, i.e. KiB). Where that file does not exist (not Linux), the peak RSS
    from :func:`resource.getrusage` (``ru_maxrss``: KiB on Linux, bytes on
    macOS) stands in. None when neither is available.
    """
    try:
        with open(status_file, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    fields = line.split()
                    if len(fields) >= 2 and fields[1].isdigit():
                        return round(int(fields[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if peak <= 0:
        return None
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _zones(base: Path) -> list[tuple[int, Path]]:
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _ZONE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def cpu_temperature(base: str | os.PathLike[str] = THERMAL_BASE) -> float | None:
    """The CPU temperature in °C, rounded to 0.1; None where the board shows none.

    Picks the thermal zone under ``base`` whose ``type`` is the CPU's
    (``cpu-thermal`` on a Raspberry Pi, ``x86_pkg_temp`` on Intel, then
    ``soc_thermal``), else one whose type mentions ``cpu``, else the
    lowest-numbered zone, and reads its ``temp`` (millidegrees Celsius). A
    zone that cannot be read or holds no number gives None.

    Args:
        base: The thermal sysfs directory (tests pass a fake one).

    """
    zones = _zones(Path(base))
    if not zones:
        return None
    types = {path: (_read(path / "type") or "").lower() for _, path in zones}

    def rank(item: tuple[int, Path]) -> tuple[int, int]:
        number, path = item
        kind = types[path]
        if kind in _CPU_TYPES:
            return (_CPU_TYPES.index(kind), number)
        if "cpu" in kind:
            return (len(_CPU_TYPES), number)
        return (len(_CPU_TYPES) + 1, number)

    text = _read(min(zones, key=rank)[1] / "temp")
    if text is None:
        return None
    try:
        millidegrees = int(text)
    except ValueError:
        return None
    return round(millidegrees / 1000, 1)


def hostname() -> str:
    """The host name of this machine (:func:`socket.gethostname`), without a domain."""
    return socket.gethostname().split(".")[0] or "localhost"


def iso_utc(epoch: float | None) -> str | None:
    """Unix time as ISO 8601 in UTC to the second (``2026-12-07T02:21:21+00:00``), or None."""
    if epoch is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def machine(thermal_base: str | os.PathLike[str] = THERMAL_BASE) -> dict[str, Any]:
    """The machine's part of the service status.

    ``rssMiB`` (this process, :func:`rss_mib`), ``memAvailableMiB`` (the
    system's available memory, :func:`mem_available_mib`), ``cpuTemperatureC``
    (:func:`cpu_temperature` of ``thermal_base``, °C, None where the board has
    no thermal zone), ``hostname``.
    """
    return {
        "rssMiB": rss_mib(),
        "memAvailableMiB": mem_available_mib(),
        "cpuTemperatureC": cpu_temperature(thermal_base),
        "hostname": hostname(),
    }


def mem_available_mib(meminfo: str | os.PathLike[str] = "/proc/meminfo") -> float | None:
    """Memory available to new programs without swapping, in MiB, rounded to 0.1.

    The kernel's estimate ``MemAvailable`` of ``/proc/meminfo`` (kB; proc(5));
    the "free memory" the MicroPython P1 meter reports, as a Linux host knows
    it. None where the file or the line is missing.
    """
    text = _read(Path(meminfo))
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return round(int(fields[1]) / 1024, 1)
    return None


def interface_of(address: str) -> str | None:
    """The name of the network interface that has ``address`` (``wlan0``), None if none has."""
    try:
        import ifaddr
    except ImportError:  # pragma: no cover - a dependency of zeroconf
        return None
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            if found == address:
                return str(adapter.nice_name)
    return None


def wifi_rssi(address: str, wireless: str | os.PathLike[str] = "/proc/net/wireless") -> str | None:
    """The Wi-Fi signal of the interface that has ``address``, as ``"-52dBm"``.

    Read from the signal level column of ``/proc/net/wireless`` (Linux
    wireless extensions: ``wlan0: 0000   70.  -52.  -256 ...``); None when
    the interface is not wireless (a wired Pi), has no such line, or the
    address is on no interface. The form is EVN Kaifa to MQTT's ``rssi``.
    """
    name = interface_of(address)
    text = _read(Path(wireless)) if name else None
    if not name or text is None:
        return None
    for line in text.splitlines():
        head, _, rest = line.partition(":")
        if head.strip() != name:
            continue
        fields = rest.split()
        if len(fields) < 3:
            return None
        try:
            level = float(fields[2].rstrip("."))
        except ValueError:
            return None
        return f"{round(level)}dBm"
    return None
