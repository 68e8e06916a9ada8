r"""A simulated DSMR P1 meter on a pseudo-terminal: spec-conformant telegrams, evolving values.

:class:`P1Simulator` plays one P1 meter profile (see :data:`P1_METERS`): every
interval it writes a telegram as DSMR 5.0.2 §6 describes it to the master side
of a pseudo-terminal, which you read like the meter's P1 port::

    with P1Simulator("dsmr5", interval=1) as sim:
        sim.start()
        with mbuspico.SerialReader(sim.port, protocol="dsmr", baudrate=115200,
                                   parity="none") as reader:
            print(reader.read())

The telegram (DSMR 5.0.2 §6.2, 4.2.2 §5.2)::

    /ISK5\2M550T-1013 CR LF       header: "/", 3-letter manufacturer, "5", identification
    CR LF                          a blank line
    1-0:1.8.1(000123.456*kWh) CR LF  one line per object: OBIS(value*unit)...
    ...
    !E47C CR LF                    "!", CRC-16/ARC of "/" through "!", 4 upper-case hex digits

Values use the fixed widths of the spec tables (``1-0:1.8.1`` F9(3,3)
``000123.456*kWh``, ``1-0:1.7.0`` F5(3,3) ``01.193*kW``, voltage F4(1,1)
``230.1*V``, current F3(0,0) ``002*A``, gas ``0-1:24.2.1(YYMMDDhhmmssX)(01234.567*m3)``),
timestamps are ``YYMMDDhhmmssX`` local time with X = ``S`` (summer time) or
``W`` (winter time), from the profile's time zone (repeated autumn hour
included). Energy registers only grow (import follows the load, export the solar
production around noon, on the tariff the clock selects), import and export
power are never both non-zero, voltages wander around 230 V, the gas meter
reports every 5 minutes (DSMR 5) or every hour (DSMR 4 and 2.2).

Profiles (:data:`P1_METERS`; serial settings in :data:`PROFILES`):

* ``dsmr5``: Dutch DSMR 5.0.2 (Iskra AM550, 115200 8N1, every second), gas on M-Bus channel 1.
* ``dsmr4``: Dutch DSMR 4.2 (Kaifa, 115200 8N1, every 10 s), hourly gas.
* ``dsmr22``: Dutch DSMR 2.2 (Iskra MT382, 9600 7E1, every 10 s): no clock line,
  no CRC (``!`` + CR LF), gas ``0-1:24.3.0(...)(00)(60)(1)(0-1:24.2.1)(m3)`` with
  its value ``(00123.456)`` on the next line.
* ``belgium``: Fluvius e-MUCS (``0-0:96.1.4`` version, ``1-0:1.4.0`` quarter-hour
  average demand, ``1-0:1.6.0`` monthly peak with its time, ``0-0:98.1.0``
  peak history, gas on ``0-1:24.2.3``, a water meter on channel 2). Tariff 1 is
  day, 2 night (the Dutch meters: 1 is low/night and weekends).
* ``luxembourg-smarty``: Smarty (Sagemcom T210-D): totals ``1-0:1.8.0/2.8.0/3.8.0/4.8.0``,
  kvar and kVA, sent encrypted (general-glo-ciphering frame, AES-128-GCM,
  security byte 0x30, needs ``key``; ``auth_key`` defaults to the public
  :data:`SMARTY_AUTH_KEY`).
* ``sweden``: Swedish HAN P1 (Kamstrup style): totals, per-phase kW and kvar, no M-Bus.
* ``austria-sagemcom``: Energienetze Steiermark Sagemcom T210-D-r: integer
  ``Wh``/``W``/``varh``/``var`` registers, sent encrypted as the Smarty does.

Every generated telegram comes with ``expected``, what a decoder must return
for it, in the shape of ``mbuspico.SerialReader(..., protocol="dsmr")``'s
readings (see :class:`SimulatedP1Telegram`). Faults as
:class:`mbuspico.simulate.dlms.Simulator`: ``garbage``, ``drop_byte``, ``flip_bit``,
``split``; ``replay`` sends the telegrams cut from a capture instead.

POSIX only (``os.openpty``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from math import pi, sin
from pathlib import Path
from typing import Any

from .. import _core
from .pty import PtyMeter, check_rates

__all__ = [
    "ENCRYPTED_METERS",
    "P1_METERS",
    "PROFILES",
    "SMARTY_AUTH_KEY",
    "P1Profile",
    "P1Simulator",
    "SimulatedP1Telegram",
    "cut_capture",
    "p1_timestamp",
]

SMARTY_AUTH_KEY = "00112233445566778899AABBCCDDEEFF"
"""The authentication key of every Luxembourg Smarty meter (Smarty P1 spec v1.1.3 §3.4.1)."""


@dataclass(frozen=True)
class P1Profile:
    r"""A simulated P1 meter model.

    Attributes:
        name: The profile name (``dsmr5``, ...).
        header: The first line without CR LF, e.g. ``/ISK5\2M550T-1013``.
        zone: IANA time zone of the meter clock (e.g. ``Europe/Amsterdam``).
        interval: Seconds between telegrams on a real meter.
        baudrate: Line speed of its P1 port.
        parity: ``"none"`` (8N1) or ``"even"`` (7E1 on DSMR 2.2/3.0).
        crc: Whether the telegram ends in ``!`` + a CRC (DSMR 4 and later).
        encrypted: Whether it is sent in a general-glo-ciphering frame.
        gas_period: Seconds between two gas (M-Bus) readings.

    """

    name: str
    header: str
    zone: str
    interval: float
    baudrate: int
    parity: str
    crc: bool
    encrypted: bool
    gas_period: int

    @property
    def bytesize(self) -> int:
        """Data bits of its P1 port: 7 for the 7E1 ports of DSMR 2.2/3.0, else 8."""
        return 7 if self.parity == "even" else 8


PROFILES: dict[str, P1Profile] = {
    p.name: p
    for p in (
        P1Profile(
            "dsmr5", "/ISK5\\2M550T-1013", "Europe/Amsterdam", 1.0, 115200, "none", True, False, 300
        ),
        P1Profile(
            "dsmr4", "/KFM5KAIFA-METER", "Europe/Amsterdam", 10.0, 115200, "none", True, False, 3600
        ),
        P1Profile(
            "dsmr22",
            "/ISk5\\2MT382-1000",
            "Europe/Amsterdam",
            10.0,
            9600,
            "even",
            False,
            False,
            3600,
        ),
        P1Profile(
            "belgium",
            "/FLU5\\253769484_A",
            "Europe/Brussels",
            1.0,
            115200,
            "none",
            True,
            False,
            300,
        ),
        P1Profile(
            "luxembourg-smarty",
            "/Lux5\\253667485_D",
            "Europe/Luxembourg",
            10.0,
            115200,
            "none",
            True,
            True,
            300,
        ),
        P1Profile("sweden", "/KAM5", "Europe/Stockholm", 10.0, 115200, "none", True, False, 300),
        P1Profile(
            "austria-sagemcom",
            "/EST5\\253710000_A",
            "Europe/Vienna",
            1.0,
            115200,
            "none",
            True,
            True,
            300,
        ),
    )
}
"""The profiles by name."""

P1_METERS: tuple[str, ...] = tuple(PROFILES)
"""The P1 meter profiles: ``dsmr5``, ``dsmr4``, ``dsmr22``, ``belgium``,
``luxembourg-smarty``, ``sweden``, ``austria-sagemcom``."""

ENCRYPTED_METERS: frozenset[str] = frozenset(n for n, p in PROFILES.items() if p.encrypted)
"""The profiles sent encrypted (they need a key): ``luxembourg-smarty``, ``austria-sagemcom``."""


@dataclass(frozen=True)
class SimulatedP1Telegram:
    """One telegram the P1 simulator produced.

    Attributes:
        plaintext: The P1 telegram text, ``/`` through the final CR LF (for
            encrypted profiles, what the frame decrypts to).
        telegram: The bytes as the meter sends them: ``plaintext``, or the
            general-glo-ciphering frame around it.
        wire: The bytes written, faults included (garbage before it, dropped
            and flipped bytes).
        faulted: Whether a dropped or flipped byte touched the telegram itself.
        expected: What a decoder must return for it (``None`` for replayed
            telegrams): ``protocol`` (``"dsmr"``), ``header`` (the first line
            without CR LF), ``crc`` (``"ok"``, or ``"missing"`` for DSMR 2.2),
            ``timestamp`` (ISO 8601 with the UTC offset, from ``0-0:1.0.0``;
            ``None`` for DSMR 2.2), ``obis`` (each single-value line of the
            electricity meter: OBIS code -> ``{"value", "unit"}``, plus
            ``"timestamp"`` for ``1-0:1.6.0``) and ``mbus`` (channel ``"1"``...
            -> ``{"deviceType", "equipmentId", "value", "unit", "timestamp"}``).
            Numbers are floats (decimal formats) or ints; octet strings
            (equipment ids, tariff indicator ``"0002"``, version ``"50"``) are
            the text sent; an empty ``()`` is ``None``. Multi-value lines
            (``1-0:99.97.0``, ``0-0:98.1.0``, ``1-1:31.4.0``) are not listed.
        frame_counter: The frame counter of an encrypted telegram, else ``None``.

    """

    plaintext: bytes
    telegram: bytes
    wire: bytes
    faulted: bool
    expected: dict[str, Any] | None
    frame_counter: int | None = None


def p1_timestamp(local: datetime) -> str:
    """``YYMMDDhhmmssX`` of an aware local time: X = ``S`` in summer time, else ``W``."""
    return f"{local:%y%m%d%H%M%S}{'S' if local.dst() else 'W'}"


def _zone(name: str) -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # no time zone database: Central European Time, no DST
        return timezone(timedelta(hours=1), "CET")


def _fixed(x: float, ints: int, decimals: int) -> tuple[str, float | int]:
    """``x`` in the fixed format Fn(d,d): ``ints`` digits, a point, ``decimals`` digits.

    Returns the text and its value as a decoder reads it (float, or int
    without decimals). Clamped to 0 and the largest value the width holds.
    """
    scale = 10**decimals
    limit = 10 ** (ints + decimals) - 1
    units = min(limit, max(0, round(x * scale)))
    if not decimals:
        return f"{units:0{ints}d}", units
    text = f"{units // scale:0{ints}d}.{units % scale:0{decimals}d}"
    return text, float(text)


def _hex(text: str) -> str:
    """An octet string as P1 sends it: the ASCII bytes in upper-case hex."""
    return text.encode("ascii").hex().upper()


class _Lines:
    """The lines of one telegram and the values a decoder must find in them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.obis: dict[str, dict[str, Any]] = {}

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def num(self, code: str, x: float, ints: int, decimals: int, unit: str | None) -> float | int:
        text, value = _fixed(x, ints, decimals)
        self.lines.append(f"{code}({text}*{unit})" if unit else f"{code}({text})")
        self.obis[code] = {"value": value, "unit": unit}
        return value

    def string(self, code: str, text: str) -> None:
        self.lines.append(f"{code}({text})")
        self.obis[code] = {"value": text or None, "unit": None}


@dataclass
class _State:
    """Evolving meter values, in kWh, kW, kvarh, V and m3."""

    imported: list[float] = field(default_factory=lambda: [8123.456, 6345.678])  # T1, T2
    exported: list[float] = field(default_factory=lambda: [1234.567, 2456.789])
    reactive_in: float = 462.59
    reactive_out: float = 7109.23
    load: list[float] = field(default_factory=lambda: [0.35, 0.22, 0.41])  # kW per phase
    solar_peak: float = 3.6  # kW, all phases
    cloud: float = 0.8
    voltage: list[float] = field(default_factory=lambda: [231.0, 229.4, 232.2])
    gas: float = 4321.123  # m3
    gas_rate: float = 0.4  # m3/h
    water: float = 872.234  # m3
    short_failures: int = 13
    long_failures: int = 3
    sags: list[int] = field(default_factory=lambda: [2, 1, 3])
    swells: list[int] = field(default_factory=lambda: [0, 0, 1])


class P1Simulator(PtyMeter[SimulatedP1Telegram]):
    """A simulated DSMR P1 meter writing telegrams to a pseudo-terminal.

    Args:
        meter: One of :data:`P1_METERS`.
        key: The encryption key (32 hex digits or 16 bytes); required for the
            encrypted profiles (:data:`ENCRYPTED_METERS`), refused for the others.
        auth_key: The authentication key of the encrypted profiles (default
            :data:`SMARTY_AUTH_KEY`).
        interval: Seconds between telegrams when running (the meter clock
            advances by at least one second per telegram).
        link: If given, a symlink made at this path to the port.
        replay: A capture file (P1 text, binary frames or hex text) whose
            telegrams (cut by :func:`cut_capture`) are sent in a loop instead.
        garbage: Probability per telegram of 1 to 32 random bytes before it.
        drop_byte: Probability per byte of dropping it.
        flip_bit: Probability per byte of flipping one of its bits.
        split: Write in random chunks of 1 to 64 bytes with delays up to 20 ms.
        seed: Seed for values and faults (reproducible runs).
        start: Meter clock of the first telegram (default: now; a naive time is
            taken as local time of ``tz``).
        tz: The meter's time zone (default: the profile's, e.g. Europe/Amsterdam).

    Raises:
        ValueError: Unknown meter, a missing, bad or unwanted key, a replay
            file without telegrams, or a rate outside 0..1.

    """

    def __init__(
        self,
        meter: str = "dsmr5",
        *,
        key: str | bytes | None = None,
        auth_key: str | bytes | None = None,
        interval: float = 1.0,
        link: str | os.PathLike[str] | None = None,
        replay: str | os.PathLike[str] | None = None,
        garbage: float = 0.0,
        drop_byte: float = 0.0,
        flip_bit: float = 0.0,
        split: bool = False,
        seed: int | None = None,
        start: datetime | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        """Create a simulator; nothing is opened until :meth:`open`."""
        if meter not in PROFILES:
            msg = f"unknown meter {meter!r}; one of {', '.join(P1_METERS)}"
            raise ValueError(msg)
        profile = PROFILES[meter]
        check_rates(garbage=garbage, drop_byte=drop_byte, flip_bit=flip_bit)
        if profile.encrypted and key is None:
            msg = f"the {meter} meter sends encrypted telegrams: it needs a key"
            raise ValueError(msg)
        if not profile.encrypted and (key is not None or auth_key is not None):
            msg = f"the {meter} meter sends plain telegrams: no key"
            raise ValueError(msg)
        super().__init__(
            interval=interval,
            link=link,
            garbage=garbage,
            drop_byte=drop_byte,
            flip_bit=flip_bit,
            split=split,
            seed=seed,
        )
        self.meter = meter
        self.profile = profile
        """The :class:`P1Profile` simulated."""
        self._key = key
        self._auth_key = auth_key if auth_key is not None else SMARTY_AUTH_KEY
        self._system_title = b"SAG" + self.rng.randrange(1 << 40).to_bytes(5, "big")
        self._frame_counter = self.rng.randrange(1, 1 << 20)
        if key is not None:  # validate both keys now, without echoing them
            self._encrypt(b"")
        self._tz = tz or _zone(profile.zone)
        first = start or datetime.now(timezone.utc)
        if first.tzinfo is None:
            first = first.replace(tzinfo=self._tz)
        self._utc = first.astimezone(timezone.utc).replace(microsecond=0)
        self._state = _State()
        self._gas: tuple[datetime, float, float] | None = None  # capture time, gas, water
        quarter = int(self._utc.timestamp()) // 900
        self._quarter = (quarter, 0.0, 0)  # index, sum of kW, count
        self._peak = (1.234, self._local(datetime.fromtimestamp(quarter * 900, timezone.utc)))
        self._replay = cut_capture(_read_capture(Path(replay))) if replay is not None else None

    def __repr__(self) -> str:
        """Show meter and port, never the key."""
        return f"P1Simulator({self.meter!r}, port={self.port!r})"

    # -- values --------------------------------------------------------------

    def _local(self, utc: datetime) -> datetime:
        return utc.astimezone(self._tz)

    def _solar(self, local: datetime) -> float:
        hour = local.hour + local.minute / 60
        if not 7.0 < hour < 19.0:
            return 0.0
        return self._state.solar_peak * self._state.cloud * sin(pi * (hour - 7.0) / 12.0)

    def _net(self, local: datetime) -> list[float]:
        """Net power per phase in kW: positive imported, negative exported."""
        solar = self._solar(local) / 3
        return [load - solar for load in self._state.load]

    def _tariff(self, local: datetime) -> int:
        """Active tariff: NL 1 = low (22-07 h and weekends), 2 = normal; BE the other way."""
        low = local.weekday() >= 5 or local.hour >= 22 or local.hour < 7
        if self.meter == "belgium":
            return 2 if low else 1
        return 1 if low else 2

    def _step(self, seconds: float, local: datetime) -> None:
        s, rng = self._state, self.rng
        net = self._net(local)
        total = sum(net)
        tariff = self._tariff(local) - 1
        hours = seconds / 3600
        if total > 0:
            s.imported[tariff] += total * hours
        else:
            s.exported[tariff] += -total * hours
        s.reactive_in += sum(load * 0.15 for load in s.load) * hours
        s.reactive_out += self._solar(local) * 0.05 * hours
        s.gas += s.gas_rate * hours
        s.water += max(0.0, rng.gauss(0.01, 0.02)) * hours
        pull, jitter = min(1.0, seconds / 600), 0.05 * min(1.0, (seconds / 60) ** 0.5)
        s.load = [min(5.5, max(0.02, v + (0.3 - v) * pull + rng.gauss(0, jitter))) for v in s.load]
        if rng.random() < 0.005:  # a kettle, an oven: a few minutes of kilowatts
            phase = rng.randrange(3)
            s.load[phase] = min(5.5, s.load[phase] + rng.uniform(1.0, 2.5))
        s.cloud = min(1.0, max(0.1, s.cloud + rng.gauss(0, 0.02)))
        s.voltage = [
            min(245.0, max(215.0, v + rng.gauss(0, 0.4) + (230 - v) * 0.02)) for v in s.voltage
        ]
        s.gas_rate = min(3.0, max(0.0, s.gas_rate + rng.gauss(0, 0.05)))
        if rng.random() < 0.001:
            s.short_failures += 1

    def _demand(self, utc: datetime, import_kw: float) -> float:
        """Belgian quarter-hour average demand (1-0:1.4.0); closes quarters into the peak."""
        index = int(utc.timestamp()) // 900
        current, total, count = self._quarter
        if index != current:
            if count:
                average = total / count
                end = self._local(datetime.fromtimestamp((current + 1) * 900, timezone.utc))
                peak, when = self._peak
                if (end.year, end.month) != (when.year, when.month) or average > peak:
                    self._peak = (average, end)
            current, total, count = index, 0.0, 0
        total, count = total + import_kw, count + 1
        self._quarter = (current, total, count)
        return total / count

    def _mbus(self, local: datetime) -> tuple[datetime, float, float]:
        """The last M-Bus reading: capture time (local), gas and water registers."""
        period = self.profile.gas_period
        boundary = int(self._utc.timestamp()) // period * period
        capture = self._local(datetime.fromtimestamp(boundary, timezone.utc))
        if self._gas is None or self._gas[0] != capture:
            self._gas = (capture, self._state.gas, self._state.water)
        return self._gas

    # -- telegrams -----------------------------------------------------------

    def _lines(self, local: datetime) -> tuple[list[str], dict[str, Any]]:
        """The telegram's lines (without CR LF) and the reading a decoder must return."""
        builders = {
            "dsmr5": self._dsmr45,
            "dsmr4": self._dsmr45,
            "dsmr22": self._dsmr22,
            "belgium": self._belgium,
            "luxembourg-smarty": self._smarty,
            "sweden": self._sweden,
            "austria-sagemcom": self._austria,
        }
        out = _Lines()
        mbus = builders[self.meter](out, local)
        expected: dict[str, Any] = {
            "protocol": "dsmr",
            # The identification line without "/" (as Decoder reports it).
            "header": self.profile.header.removeprefix("/"),
            "crc": "ok" if self.profile.crc else "missing",
            "timestamp": None if self.meter == "dsmr22" else local.isoformat(),
            "obis": out.obis,
            "mbus": mbus,
        }
        return out.lines, expected

    def _energy(self, out: _Lines, ints: int = 6) -> None:
        s = self._state
        out.num("1-0:1.8.1", s.imported[0], ints, 3, "kWh")
        out.num("1-0:1.8.2", s.imported[1], ints, 3, "kWh")
        out.num("1-0:2.8.1", s.exported[0], ints, 3, "kWh")
        out.num("1-0:2.8.2", s.exported[1], ints, 3, "kWh")

    def _power(self, out: _Lines, net: list[float], ints: int = 2, decimals: int = 3) -> None:
        total = sum(net)
        out.num("1-0:1.7.0", max(0.0, total), ints, decimals, "kW")
        out.num("1-0:2.7.0", max(0.0, -total), ints, decimals, "kW")

    def _phases(
        self,
        out: _Lines,
        net: list[float],
        *,
        volt: tuple[int, int] = (3, 1),
        amp: tuple[int, int] = (3, 0),
        kw: tuple[int, int] = (2, 3),
        unit_kw: str = "kW",
        scale: float = 1.0,
    ) -> None:
        s = self._state
        for phase, code in enumerate(("32", "52", "72")):
            out.num(f"1-0:{code}.7.0", s.voltage[phase], *volt, "V")
        for phase, code in enumerate(("31", "51", "71")):
            out.num(f"1-0:{code}.7.0", abs(net[phase]) * 1000 / s.voltage[phase], *amp, "A")
        for phase, code in enumerate(("21", "41", "61")):
            out.num(f"1-0:{code}.7.0", max(0.0, net[phase]) * scale, *kw, unit_kw)
        for phase, code in enumerate(("22", "42", "62")):
            out.num(f"1-0:{code}.7.0", max(0.0, -net[phase]) * scale, *kw, unit_kw)

    def _quality(self, out: _Lines) -> None:
        s = self._state
        for phase, code in enumerate(("32", "52", "72")):
            out.num(f"1-0:{code}.32.0", s.sags[phase], 5, 0, None)
        for phase, code in enumerate(("32", "52", "72")):
            out.num(f"1-0:{code}.36.0", s.swells[phase], 5, 0, None)

    def _gas_lines(
        self, out: _Lines, local: datetime, *, channel: int = 1, code: str = "24.2.1"
    ) -> dict[str, Any]:
        capture, gas, _ = self._mbus(local)
        ident = _hex(f"G00{channel:02d}123456789012")
        text, value = _fixed(gas, 5, 3)
        out.raw(f"0-{channel}:24.1.0(003)")
        id_code = "96.1.1" if self.meter == "belgium" else "96.1.0"
        out.raw(f"0-{channel}:{id_code}({ident})")
        if self.meter in ("belgium", "luxembourg-smarty"):
            out.raw(f"0-{channel}:24.4.0(1)")
        out.raw(f"0-{channel}:{code}({p1_timestamp(capture)})({text}*m3)")
        return {
            "deviceType": 3,
            "equipmentId": ident,
            "value": value,
            "unit": "m3",
            "timestamp": capture.isoformat(),
        }

    def _dsmr45(self, out: _Lines, local: datetime) -> dict[str, Any]:
        s, net = self._state, self._net(local)
        out.string("1-3:0.2.8", "50" if self.meter == "dsmr5" else "42")
        out.raw(f"0-0:1.0.0({p1_timestamp(local)})")
        out.string("0-0:96.1.1", _hex("E0043007052870318"))
        self._energy(out)
        out.string("0-0:96.14.0", f"{self._tariff(local):04d}")
        self._power(out, net)
        out.num("0-0:96.7.21", s.short_failures, 5, 0, None)
        out.num("0-0:96.7.9", s.long_failures, 5, 0, None)
        out.raw(
            "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)"
        )
        self._quality(out)
        if self.meter == "dsmr4":
            out.string("0-0:96.13.1", "")
        out.string("0-0:96.13.0", "")
        self._phases(out, net)
        return {"1": self._gas_lines(out, local)}

    def _dsmr22(self, out: _Lines, local: datetime) -> dict[str, Any]:
        s, net = self._state, self._net(local)
        out.string("0-0:96.1.1", "00000012345678")
        for code, x in (
            ("1-0:1.8.1", s.imported[0]),
            ("1-0:1.8.2", s.imported[1]),
            ("1-0:2.8.1", s.exported[0]),
            ("1-0:2.8.2", s.exported[1]),
        ):
            out.num(code, x, 5, 3, "kWh")
        out.string("0-0:96.14.0", f"{self._tariff(local):04d}")
        self._power(out, net, ints=4, decimals=2)
        out.num("0-0:17.0.0", 999.0, 4, 2, "kW")
        out.num("0-0:96.3.10", 1, 1, 0, None)
        out.string("0-0:96.13.1", "")
        out.string("0-0:96.13.0", "")
        capture, gas, _ = self._mbus(local)
        text, value = _fixed(gas, 5, 3)
        ident = "000000812345"
        out.raw("0-1:24.1.0(3)")
        out.raw(f"0-1:96.1.0({ident})")
        out.raw(f"0-1:24.3.0({capture:%y%m%d%H%M%S})(00)(60)(1)(0-1:24.2.1)(m3)")
        out.raw(f"({text})")
        out.raw("0-1:24.4.0(1)")
        return {
            "1": {
                "deviceType": 3,
                "equipmentId": ident,
                "value": value,
                "unit": "m3",
                "timestamp": capture.isoformat(),
            }
        }

    def _belgium(self, out: _Lines, local: datetime) -> dict[str, Any]:
        net = self._net(local)
        out.string("0-0:96.1.4", "50217")
        out.string("0-0:96.1.1", _hex("1SAG1100012345"))
        out.raw(f"0-0:1.0.0({p1_timestamp(local)})")
        self._energy(out)
        demand = self._demand(self._utc, max(0.0, sum(net)))
        out.num("1-0:1.4.0", demand, 2, 3, "kW")
        peak, when = self._peak
        text, value = _fixed(peak, 2, 3)
        out.raw(f"1-0:1.6.0({p1_timestamp(when)})({text}*kW)")
        out.obis["1-0:1.6.0"] = {"value": value, "unit": "kW", "timestamp": when.isoformat()}
        month = datetime(local.year, local.month, 1, tzinfo=self._tz)
        before = month - timedelta(days=8, hours=4, minutes=34, seconds=22)
        out.raw(
            f"0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)({p1_timestamp(month)})"
            f"({p1_timestamp(before)})(03.695*kW)"
        )
        out.string("0-0:96.14.0", f"{self._tariff(local):04d}")
        self._power(out, net)
        self._phases(out, net, volt=(3, 1), amp=(3, 2))
        out.num("0-0:96.3.10", 1, 1, 0, None)
        out.num("0-0:17.0.0", 999.9, 3, 1, "kW")
        out.num("1-0:31.4.0", 999, 3, 0, "A")
        out.string("0-0:96.13.0", "")
        gas = self._gas_lines(out, local, code="24.2.3")
        capture, _, water = self._mbus(local)
        ident = _hex("3SAG1234567890")
        text, value = _fixed(water, 5, 3)
        out.raw("0-2:24.1.0(007)")
        out.raw(f"0-2:96.1.1({ident})")
        out.raw(f"0-2:24.2.1({p1_timestamp(capture)})({text}*m3)")
        water_reading = {
            "deviceType": 7,
            "equipmentId": ident,
            "value": value,
            "unit": "m3",
            "timestamp": capture.isoformat(),
        }
        return {"1": gas, "2": water_reading}

    def _smarty(self, out: _Lines, local: datetime) -> dict[str, Any]:
        s, net = self._state, self._net(local)
        q = [load * 0.15 for load in s.load]
        out.string("1-3:0.2.8", "42")
        out.raw(f"0-0:1.0.0({p1_timestamp(local)})")
        out.string("0-0:42.0.0", _hex("SAG1030700012701"))
        out.num("1-0:1.8.0", sum(s.imported), 6, 3, "kWh")
        out.num("1-0:2.8.0", sum(s.exported), 6, 3, "kWh")
        out.num("1-0:3.8.0", s.reactive_in, 6, 3, "kvarh")
        out.num("1-0:4.8.0", s.reactive_out, 6, 3, "kvarh")
        self._power(out, net)
        out.num("1-0:3.7.0", sum(q), 2, 3, "kvar")
        out.num("1-0:4.7.0", 0.0, 2, 3, "kvar")
        out.num("0-0:17.0.0", 27.6, 3, 1, "kVA")
        total = sum(net)
        apparent = (total**2 + sum(q) ** 2) ** 0.5
        out.num("1-0:9.7.0", apparent if total > 0 else 0.0, 2, 3, "kVA")
        out.num("1-0:10.7.0", apparent if total <= 0 else 0.0, 2, 3, "kVA")
        out.raw("1-1:31.4.0(040*A)(-040*A)")
        out.num("0-0:96.3.10", 1, 1, 0, None)
        out.num("0-0:96.7.21", s.short_failures, 5, 0, None)
        self._quality(out)
        out.string("0-0:96.13.0", "")
        self._phases(out, net)
        for phase, code in enumerate(("23", "43", "63")):
            out.num(f"1-0:{code}.7.0", q[phase], 2, 3, "kvar")
        for code in ("24", "44", "64"):
            out.num(f"1-0:{code}.7.0", 0.0, 2, 3, "kvar")
        return {"1": self._gas_lines(out, local)}

    def _sweden(self, out: _Lines, local: datetime) -> dict[str, Any]:
        s, net = self._state, self._net(local)
        q = [load * 0.15 for load in s.load]
        out.raw(f"0-0:1.0.0({p1_timestamp(local)})")
        out.num("1-0:1.8.0", sum(s.imported), 8, 3, "kWh")
        out.num("1-0:2.8.0", sum(s.exported), 8, 3, "kWh")
        out.num("1-0:3.8.0", s.reactive_in, 8, 3, "kVArh")
        out.num("1-0:4.8.0", s.reactive_out, 8, 3, "kVArh")
        self._power(out, net, ints=4)
        out.num("1-0:3.7.0", sum(q), 4, 3, "kVAr")
        out.num("1-0:4.7.0", 0.0, 4, 3, "kVAr")
        for phase, code in enumerate(("21", "41", "61")):
            out.num(f"1-0:{code}.7.0", max(0.0, net[phase]), 4, 3, "kW")
        for phase, code in enumerate(("22", "42", "62")):
            out.num(f"1-0:{code}.7.0", max(0.0, -net[phase]), 4, 3, "kW")
        for phase, code in enumerate(("23", "43", "63")):
            out.num(f"1-0:{code}.7.0", q[phase], 4, 3, "kVAr")
        for code in ("24", "44", "64"):
            out.num(f"1-0:{code}.7.0", 0.0, 4, 3, "kVAr")
        for phase, code in enumerate(("32", "52", "72")):
            out.num(f"1-0:{code}.7.0", s.voltage[phase], 3, 1, "V")
        for phase, code in enumerate(("31", "51", "71")):
            out.num(f"1-0:{code}.7.0", abs(net[phase]) * 1000 / s.voltage[phase], 3, 1, "A")
        return {}

    def _austria(self, out: _Lines, local: datetime) -> dict[str, Any]:
        s, net = self._state, self._net(local)
        total = sum(net)
        q = sum(load * 0.15 for load in s.load)
        out.string("1-3:0.2.8", "50")
        out.raw(f"0-0:1.0.0({p1_timestamp(local)})")

        def register(code: str, parts: list[float], unit: str) -> None:
            wh = [int(x * 1000) for x in parts]
            out.num(f"1-0:{code}.0", sum(wh), 9, 0, unit)
            out.num(f"1-0:{code}.1", wh[0], 9, 0, unit)
            out.num(f"1-0:{code}.2", wh[1], 9, 0, unit)

        register("1.8", s.imported, "Wh")
        out.num("1-0:1.7.0", max(0.0, total) * 1000, 9, 0, "W")
        register("2.8", s.exported, "Wh")
        out.num("1-0:2.7.0", max(0.0, -total) * 1000, 9, 0, "W")
        register("3.8", [s.reactive_in * 0.4, s.reactive_in * 0.6], "varh")
        out.num("1-0:3.7.0", q * 1000, 9, 0, "var")
        register("4.8", [s.reactive_out * 0.7, s.reactive_out * 0.3], "varh")
        out.num("1-0:4.7.0", 0, 9, 0, "var")
        return {}

    def _encrypt(self, plaintext: bytes) -> bytes:
        assert self._key is not None  # noqa: S101 - only called for encrypted profiles
        return _core.dsmr_encrypt(
            plaintext,
            key=self._key,
            auth_key=self._auth_key,
            system_title=self._system_title,
            frame_counter=self._frame_counter,
        )

    def telegram(self) -> tuple[bytes, bytes, dict[str, Any]]:
        """The next telegram without advancing the clock.

        Returns:
            The P1 text (``/`` through the final CR LF), the bytes the meter
            sends (the same text, or the encrypted frame) and the expected
            reading (see :class:`SimulatedP1Telegram`).

        """
        local = self._local(self._utc)
        lines, expected = self._lines(local)
        body = "".join(f"{line}\r\n" for line in [self.profile.header, "", *lines]) + "!"
        data = body.encode("ascii")
        if self.profile.crc:
            data += f"{_core.dsmr_crc16(data):04X}".encode("ascii")
        plaintext = data + b"\r\n"
        sent = self._encrypt(plaintext) if self.profile.encrypted else plaintext
        return plaintext, sent, expected

    def telegrams(self) -> Iterator[SimulatedP1Telegram]:
        """Generate telegrams forever, the clock advancing by ``interval`` (at least 1 s) each.

        Pure computation: nothing is written and nothing sleeps.
        """
        i = 0
        while True:
            counter = self._frame_counter if self.profile.encrypted else None
            if self._replay:
                plaintext = sent = self._replay[i % len(self._replay)]
                expected: dict[str, Any] | None = None
                counter = None
            else:
                plaintext, sent, expected = self.telegram()
            wire, faulted = self.faults(sent)
            yield SimulatedP1Telegram(plaintext, sent, wire, faulted, expected, counter)
            i += 1
            seconds = max(self.interval, 1.0)
            local = self._local(self._utc)
            self._frame_counter = (self._frame_counter + 1) & 0xFFFFFFFF
            self._utc += timedelta(seconds=seconds)
            self._step(seconds, local)


def _read_capture(path: Path) -> bytes:
    from ..capture import as_bytes

    return as_bytes(path.read_bytes())


def _is_text(data: bytes) -> bool:
    """Printable ASCII, CR and LF only (what a P1 telegram is made of)."""
    return all(0x20 <= b < 0x7F or b in (0x0D, 0x0A) for b in data)


def cut_capture(data: bytes) -> list[bytes]:
    """The telegrams in a P1 capture, as they were sent.

    Plain telegrams run from a ``/`` through the line feed after ``!`` (with or
    without CRC, CR LF or LF only; printable ASCII only); encrypted frames
    are ``DB 08 <system title> 82 <length>`` and their ``13 + length`` bytes.
    Anything else is skipped.

    Raises:
        ValueError: The capture holds no telegram.

    """
    out: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0xDB and data[i + 1 : i + 2] == b"\x08" and data[i + 10 : i + 11] == b"\x82":
            end = i + 13 + int.from_bytes(data[i + 11 : i + 13], "big")
            if end <= n:
                out.append(data[i:end])
                i = end
                continue
        if data[i] == ord("/"):
            bang = data.find(b"!", i)
            lf = data.find(b"\n", bang) if bang >= 0 else -1
            if lf < 0:
                break
            start = max(i, data.rfind(b"\n/", i, bang) + 1)  # the last start wins
            if _is_text(data[start:lf]):
                out.append(data[start : lf + 1])
                i = lf + 1
                continue
        i += 1
    if not out:
        msg = "no P1 telegram found in the capture"
        raise ValueError(msg)
    return out
