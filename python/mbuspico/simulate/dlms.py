"""A simulated meter on a pseudo-terminal: real encrypted telegrams, evolving values.

:class:`Simulator` plays one meter profile: every interval it builds a push with
plausible values (energy counters only grow, voltages around 230 V), encrypts and
frames it with mbuspico's own Rust encoder exactly as that meter does, and writes
it to the master side of a pseudo-terminal. The profiles (``shared/notes/dlms.md``):

* M-Bus framed (§2.1-2.3, §4.1-4.2): ``kaifa-ma309m``, ``sagemcom-t210d``,
  ``sagemcom-t210d-old-fw`` (the 257-byte first frame of the old firmware) of
  Netz NÖ, ``ksm-west`` (TINETZ, IKB, Salzburg Netz, VKW);
* HDLC framed (§2.4, §4.3): ``wienernetze-im350`` and ``wienernetze-am550``
  (Wiener Netze, positional lists without OBIS codes, security control 0x20),
  ``burgenland-e450`` (Netz Burgenland, positional, 0x30: GCM tag, needs
  ``auth_key``);
* HDLC with general block transfer (§4.4): ``steiermark-e450`` (Landis+Gyr push
  with object list, 0x30, needs ``auth_key``).

Read the other side like a real port::

    with Simulator("kaifa-ma309m", key=KEY, interval=1) as sim:
        sim.start()
        with mbuspico.SerialReader(sim.port, key=KEY) as reader:
            print(reader.read())

    with Simulator("burgenland-e450", key=KEY, auth_key=AUTH_KEY) as sim:
        sim.start()
        with mbuspico.SerialReader(sim.port, key=KEY, auth_key=AUTH_KEY) as reader:
            print(reader.read())

Faults for tests and demos: ``garbage`` (probability per telegram of random bytes
before it), ``drop_byte`` and ``flip_bit`` (probability per byte), ``split``
(write in random small chunks with random delays). Every telegram records what
was written and whether a fault touched it, so a test can check that each
untouched telegram is decoded and no damaged one yields a reading.

POSIX only (``os.openpty``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from .. import _core
from .pty import PtyMeter, check_rates

__all__ = ["AUTHENTICATED", "EXPECTED_FIELDS", "METERS", "SimulatedTelegram", "Simulator"]

log = logging.getLogger("mbuspico.simulate")

EXPECTED_FIELDS: tuple[str, ...] = (
    "timestamp",
    "meterNumber",
    "activeEnergyPlus",
    "activeEnergyMinus",
    "activePowerPlus",
    "activePowerMinus",
    "reactiveEnergyPlus",
    "reactiveEnergyMinus",
    "voltageL1",
    "voltageL2",
    "voltageL3",
    "currentL1",
    "currentL2",
    "currentL3",
    "powerFactor",
    "frameCounter",
    "systemTitle",
)
"""The reading fields every :attr:`SimulatedTelegram.expected` gives (None where
the meter does not send the value): compare a decoded reading on these."""

METERS: tuple[str, ...] = tuple(_core.METERS)
"""The meter profiles: ``kaifa-ma309m``, ``sagemcom-t210d``,
``sagemcom-t210d-old-fw``, ``ksm-west`` (M-Bus), ``wienernetze-im350``,
``wienernetze-am550``, ``burgenland-e450`` (HDLC), ``steiermark-e450`` (HDLC with
general block transfer). The last two need an authentication key."""

_NETZ_NOE = ("kaifa-ma309m", "sagemcom-t210d", "sagemcom-t210d-old-fw")
_WIENER_NETZE = ("wienernetze-im350", "wienernetze-am550")
_LANDIS_GYR = ("burgenland-e450", "steiermark-e450")
AUTHENTICATED: frozenset[str] = frozenset(_LANDIS_GYR)
"""The profiles whose telegrams carry a GCM tag (security control 0x30): the
simulator and the reader need the authentication key."""


def _vienna() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Vienna")
    except Exception:
        return timezone(timedelta(hours=1), "CET")


@dataclass(frozen=True)
class SimulatedTelegram:
    """One telegram the simulator produced.

    Attributes:
        frame_counter: The frame counter it was encrypted with.
        expected: The MBusPico fields a decoder must return for it (``None``
            for replayed telegrams, whose values are unknown).
        telegram: The telegram as the meter sends it.
        wire: The bytes written, faults included (garbage before it, dropped
            and flipped bytes).
        faulted: Whether a dropped or flipped byte touched the telegram itself.

    """

    frame_counter: int
    expected: dict[str, Any] | None
    telegram: bytes
    wire: bytes
    faulted: bool


@dataclass
class _State:
    """Evolving meter values in the units the meter sends."""

    energy_plus: float = 1_234_567.0  # Wh
    energy_minus: float = 345_678.0
    reactive_plus: float = 98_765.0  # varh
    reactive_minus: float = 43_210.0
    power_plus: float = 850.0  # W
    power_minus: float = 0.0
    voltage: list[float] = field(default_factory=lambda: [231.0, 229.5, 232.2])
    power_factor: float = 0.95


class Simulator(PtyMeter[SimulatedTelegram]):
    """A simulated meter writing real telegrams to a pseudo-terminal.

    Args:
        meter: One of :data:`METERS`.
        key: The encryption key (32 hex digits or 16 bytes) the telegrams are
            encrypted with; read them with the same key.
        auth_key: The authentication key (32 hex digits or 16 bytes) of the
            GCM tag; required for the meters in :data:`AUTHENTICATED`
            (``burgenland-e450``, ``steiermark-e450``), ignored by the others.
        interval: Seconds between telegrams when running (Netz NÖ and KSM-West
            meters push every 5 s, 1 s on some firmware; the Wiener Netze and
            Burgenland meters every 1 to 5 s, the Steiermark E450 every 5 s).
        link: If given, a symlink made at this path to the port, so readers can
            use a fixed name across restarts.
        replay: A capture file (binary or hex text) whose telegrams are sent
            in a loop instead of generated ones.
        garbage: Probability per telegram of 1 to 32 random bytes before it.
        drop_byte: Probability per byte of dropping it.
        flip_bit: Probability per byte of flipping one of its bits.
        split: Write in random chunks of 1 to 64 bytes with delays up to 20 ms.
        seed: Seed for values and faults (reproducible runs).
        start: Meter clock of the first telegram (default: now).
        tz: The meter's time zone (default Europe/Vienna).
        serial: Meter serial number used in the meter number and system title.

    Raises:
        ValueError: Unknown meter, bad key, missing or bad ``auth_key`` for a
            meter that authenticates, or a rate outside 0..1.

    """

    def __init__(
        self,
        meter: str = "kaifa-ma309m",
        *,
        key: str | bytes,
        auth_key: str | bytes | None = None,
        interval: float = 5.0,
        link: str | os.PathLike[str] | None = None,
        replay: str | os.PathLike[str] | None = None,
        garbage: float = 0.0,
        drop_byte: float = 0.0,
        flip_bit: float = 0.0,
        split: bool = False,
        seed: int | None = None,
        start: datetime | None = None,
        tz: tzinfo | None = None,
        serial: int = 2177,
    ) -> None:
        """Create a simulator; nothing is opened until :meth:`open`."""
        if meter not in METERS:
            msg = f"unknown meter {meter!r}; one of {', '.join(METERS)}"
            raise ValueError(msg)
        check_rates(garbage=garbage, drop_byte=drop_byte, flip_bit=flip_bit)
        if meter in AUTHENTICATED and auth_key is None:
            msg = f"meter {meter!r} authenticates its telegrams (GCM tag): auth_key is required"
            raise ValueError(msg)
        if meter not in AUTHENTICATED:
            auth_key = None
        _core.Decoder(key, auth_key=auth_key)  # validates the keys without echoing them
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
        self._key = key
        self._auth_key = auth_key
        self._tz = tz or _vienna()
        self._clock = (start or datetime.now(self._tz)).astimezone(self._tz).replace(microsecond=0)
        self._serial = serial
        self._system_title = _core.system_title(meter, serial)
        self._frame_counter = self.rng.randrange(1, 1 << 20)
        self._state = _State()
        self._replay = _load_capture(Path(replay)) if replay is not None else None

    def __repr__(self) -> str:
        """Show meter and port, never the keys."""
        return f"Simulator({self.meter!r}, port={self.port!r})"

    # -- values --------------------------------------------------------------

    def _step(self, seconds: float) -> None:
        s, rng = self._state, self.rng
        s.power_plus = min(12_000.0, max(0.0, s.power_plus + rng.gauss(0, 150)))
        s.power_minus = 0.0 if s.power_plus > 200 else max(0.0, rng.gauss(300, 200))
        s.energy_plus += s.power_plus * seconds / 3600
        s.energy_minus += s.power_minus * seconds / 3600
        s.reactive_plus += s.power_plus * 0.2 * seconds / 3600
        s.reactive_minus += s.power_plus * 0.05 * seconds / 3600
        s.voltage = [min(245.0, max(215.0, v + rng.gauss(0, 0.4))) for v in s.voltage]
        s.power_factor = min(1.0, max(0.8, s.power_factor + rng.gauss(0, 0.01)))

    def _meter_number(self) -> str | None:
        """The meter number as the layout carries it (``None``: not sent)."""
        serial = self._serial
        if self.meter in _NETZ_NOE:
            return f"1812200{serial:05d}"
        if self.meter == "ksm-west":
            return f"1KFM02{serial:08d}"
        if self.meter == "wienernetze-im350":
            return f"SMS10307{serial % 10**8:08d}"  # 16 characters, like SMS1030788000020
        if self.meter == "burgenland-e450":
            return f"3013{serial % 10**4:04d}"  # 8 characters, like 30137181
        if self.meter == "steiermark-e450":
            return f"5681{serial % 10**4:04d}"  # 8 characters, like 56815930
        return None  # wienernetze-am550

    def _push(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The encoder's arguments and the reading a decoder must return.

        Which fields a layout carries, and in which unit (dlms.md §4.1-4.4):
        Netz NÖ and KSM-West send voltages in 0.1 V; the Landis+Gyr E450 in whole
        volts (the encoder truncates ``voltageDecivolt / 10``) and its clock
        without UTC offset, so its timestamp is naive local time; Wiener Netze
        sends no voltages, currents or power factor; only Netz NÖ sends the
        power factor.
        """
        s, clock = self._state, self._clock
        offset = clock.utcoffset() or timedelta(0)
        dst = bool(clock.dst())
        deci = [round(v * 10) for v in s.voltage]
        per_phase = s.power_plus / 3
        centi = [
            min(65535, round(per_phase / v * 100 * self.rng.uniform(0.9, 1.1))) for v in s.voltage
        ]
        pf = round(s.power_factor * 1000)
        angle = math.acos(s.power_factor)
        meter = self.meter
        netz_noe = meter in _NETZ_NOE
        hdlc = meter in _WIENER_NETZE or meter in _LANDIS_GYR
        meter_number = self._meter_number()
        args = {
            # The HDLC meters send no priority bit (vectors in tests/data/dlms).
            "longInvokeId": (self._frame_counter + 1) & 0xFFFFFFFF
            if hdlc
            else 0x80000000 | (self._frame_counter & 0xFFFFFF),
            "localTime": (
                clock.year,
                clock.month,
                clock.day,
                clock.hour,
                clock.minute,
                clock.second,
            ),
            "utcOffsetMinutes": int(offset.total_seconds() // 60),
            "dst": dst,
            "activeEnergyPlus": int(s.energy_plus),
            "activeEnergyMinus": int(s.energy_minus),
            "activePowerPlus": round(s.power_plus),
            "activePowerMinus": round(s.power_minus),
            "reactiveEnergyPlus": int(s.reactive_plus),
            "reactiveEnergyMinus": int(s.reactive_minus),
            "reactivePowerPlus": round(s.power_plus * math.tan(angle)),
            "reactivePowerMinus": round(s.power_minus * 0.05),
            "voltageDecivolt": deci,
            "currentCentiampere": centi,
            "powerFactorMilli": pf,
            "phaseAngle": [round(math.degrees(angle))] * 3,
            "meterNumber": meter_number or "",
            "deviceName": f"KFM12002{self._serial:08d}",
        }
        if meter in _LANDIS_GYR:
            volts: list[float | None] = [d // 10 for d in deci]
        elif meter in _WIENER_NETZE:
            volts = [None, None, None]
        else:
            volts = [d / 10 for d in deci]
        amps: list[float | None] = (
            [None, None, None] if meter in _WIENER_NETZE else [c / 100 for c in centi]
        )
        reactive = meter not in _NETZ_NOE and meter != "burgenland-e450"
        expected: dict[str, Any] = {
            "timestamp": (
                clock.replace(tzinfo=None).isoformat()
                if meter in _LANDIS_GYR
                else clock.isoformat()
            ),
            "meterNumber": meter_number,
            "activeEnergyPlus": args["activeEnergyPlus"],
            "activeEnergyMinus": args["activeEnergyMinus"],
            "activePowerPlus": args["activePowerPlus"],
            "activePowerMinus": args["activePowerMinus"],
            "reactiveEnergyPlus": args["reactiveEnergyPlus"] if reactive else None,
            "reactiveEnergyMinus": args["reactiveEnergyMinus"] if reactive else None,
            "voltageL1": volts[0],
            "voltageL2": volts[1],
            "voltageL3": volts[2],
            "currentL1": amps[0],
            "currentL2": amps[1],
            "currentL3": amps[2],
            "powerFactor": pf / 1000 if netz_noe else None,
            "frameCounter": self._frame_counter,
            "systemTitle": self._system_title.hex(),
        }
        return args, expected

    def telegrams(self) -> Iterator[SimulatedTelegram]:
        """Generate telegrams forever, the clock advancing by ``interval`` each.

        Pure computation: nothing is written and nothing sleeps.
        """
        i = 0
        while True:
            if self._replay:
                telegram = self._replay[i % len(self._replay)]
                expected = None
            else:
                args, expected = self._push()
                telegram = _core.encode_push(
                    self.meter,
                    args,
                    key=self._key,
                    system_title=self._system_title,
                    frame_counter=self._frame_counter,
                    auth_key=self._auth_key,
                )
            wire, faulted = self.faults(telegram)
            yield SimulatedTelegram(self._frame_counter, expected, telegram, wire, faulted)
            i += 1
            self._frame_counter = (self._frame_counter + 1) & 0xFFFFFFFF
            self._clock += timedelta(seconds=max(self.interval, 1.0))
            self._step(max(self.interval, 1.0))


def _load_capture(path: Path) -> list[bytes]:
    """The telegrams in a capture file (binary or hex text)."""
    from ..capture import as_bytes

    deframer = _core.Deframer()
    telegrams = deframer.feed(as_bytes(path.read_bytes()))
    if not telegrams:
        msg = f"{path}: no telegram found"
        raise ValueError(msg)
    return telegrams
