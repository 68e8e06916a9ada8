"""The meter side of ``mbuspico serve``: the reader thread and the latest reading.

:class:`Meter` opens the serial port (or starts the simulated meter of
``--demo``) and reads on a thread of its own: DLMS push and DSMR P1 meters
through :class:`mbuspico.SerialReader`, which reconnects by itself when the
port vanishes; wired M-Bus meters by polling them with
:class:`mbuspico.MBusMaster` (REQ_UD2, EN 13757-2 §5) every
``mbus_interval`` seconds. Each reading is handed to a ``publish`` callback
(the sinks) and kept in :class:`Latest`, which HTTP, UDP and the status read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable, Union

from .._core import Decoder, SerialReader
from ..compat import to_mbuspico_json
from ..simulate import DEMO_AUTH_KEY, DEMO_KEY
from ..types import DsmrReading, MbusReading, Reading
from .config import Config, ConfigError
from .stats import iso_utc

AnyReading = Union[Reading, DsmrReading, MbusReading]
"""A reading of any protocol: DLMS push, DSMR P1, wired M-Bus."""

__all__ = ["AnyReading", "Latest", "Meter"]

log = logging.getLogger("mbuspico.serve")


class Latest:
    """The latest reading and the reader's counters, shared by the reader thread and the servers.

    Attributes:
        lock: Held while reading or changing the fields below together.
        reading: The last good reading, None before the first.
        mbuspico_json: Its text as ``GET /`` serves it: MBusPico's JSON for a
            DLMS push reading (:func:`mbuspico.to_mbuspico_json`), the
            reading's own JSON for other protocols.
        reading_at: When it arrived (Unix time, s).
        stats: The reader's counters (:class:`mbuspico.ReaderStats`, or the
            wired M-Bus poll counters).
        connected: Whether the serial port is open.
        started: When the service started (Unix time, s).

    """

    def __init__(self) -> None:
        """Nothing read yet."""
        self.lock = threading.Lock()
        self.reading: AnyReading | None = None
        self.mbuspico_json: str | None = None
        self.reading_at: float | None = None
        self.stats: Mapping[str, object] = {}
        self.connected = False
        self.started = time.time()
        self._intervals: deque[float] = deque(maxlen=15)

    def update(
        self, reading: AnyReading | None, stats: Mapping[str, object], connected: bool
    ) -> None:
        """Keep a new reading (None: none this time) and the counters and port state."""
        if reading is None:
            text = None
        elif reading["protocol"] == "dlms":
            text = to_mbuspico_json(reading)
        else:  # MBusPico's JSON is a DLMS push reading; other meters get theirs
            text = json.dumps(reading, ensure_ascii=False)
        with self.lock:
            if reading is not None:
                now = time.time()
                if self.reading_at is not None:
                    self._intervals.append(now - self.reading_at)
                self.reading, self.mbuspico_json, self.reading_at = reading, text, now
            self.stats, self.connected = stats, connected

    def interval(self) -> float | None:
        """The meter's push interval as observed: the median of the last 15 gaps (s)."""
        with self.lock:
            gaps = sorted(self._intervals)
        return gaps[len(gaps) // 2] if gaps else None

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the latest reading arrived; None before the first."""
        with self.lock:
            at = self.reading_at
        return None if at is None else max(0.0, (time.time() if now is None else now) - at)

    def snapshot(self) -> tuple[AnyReading | None, str | None, float | None]:
        """The last reading, its JSON text and when it arrived (Unix time), at one instant."""
        with self.lock:
            return self.reading, self.mbuspico_json, self.reading_at

    def figures(self, port: str | None) -> dict[str, Any]:
        """The reader's part of the service status (:meth:`mbuspico.serve.Service.status`).

        Keys: ``uptimeSeconds`` (s); ``serialPort`` (``path``, ``connected``);
        ``counters`` (the reader's :class:`mbuspico.ReaderStats`, or the wired
        M-Bus poll counters); ``lastReadingAt`` (UTC, ISO 8601) and
        ``lastMeterTime`` (the meter's clock) of the last good reading, None
        before; ``telegrams``, the same four figures for every protocol:
        ``good`` (readings decoded), ``badChecksum`` (frames whose checksum
        failed), ``decryptionFailures`` (wrong key, tag mismatch),
        ``bytesSkipped`` (bytes outside any telegram).
        """
        with self.lock:
            reading, reading_at = self.reading, self.reading_at
            stats, connected = dict(self.stats), self.connected

        def count(name: str) -> int:
            value = stats.get(name, 0)
            return value if isinstance(value, int) else 0

        return {
            "uptimeSeconds": round(time.time() - self.started, 1),
            "serialPort": {"path": port, "connected": connected},
            "counters": stats,
            "lastReadingAt": iso_utc(reading_at),
            "lastMeterTime": reading.get("timestamp") if reading else None,
            "telegrams": {
                "good": count("readings"),
                "badChecksum": count("bad_checksums"),
                "decryptionFailures": count("decryption_errors"),
                "bytesSkipped": count("bytes_skipped"),
            },
        }


def _checksum_failed(data: bytes) -> bool:
    """Whether a garbled M-Bus answer is one frame whose checksum failed (EN 13757-2 §5)."""
    from ..errors import ChecksumError, DecodeError

    try:
        Decoder(protocol="mbus").decode(data)
    except ChecksumError:
        return True
    except DecodeError:
        return False
    return False


def _describe(reading: AnyReading, counters: Mapping[str, object]) -> str:
    """One line for the debug log: what a telegram gave, and the counters so far."""
    if reading["protocol"] == "mbus":
        what = f"M-Bus {reading['manufacturer']} {reading['id']}, {len(reading['records'])} records"
    else:
        count = len(reading["obis"])
        what = f"{reading['protocol']} meter {reading.get('meterNumber')}, {count} values"
    stamp = reading.get("timestamp")
    tally = ", ".join(f"{k} {v}" for k, v in counters.items())
    return f"{what} at {stamp}; {tally}"


class Meter:
    """Reads the meter on a thread of its own until :meth:`stop`.

    Args:
        config: The settings; :attr:`config` may be replaced while running
            (the wired M-Bus poll interval is read from it before each wait).
        publish: Called on the reader thread with each good reading.

    Attributes:
        latest: The latest reading and counters.
        port: The serial device read (the demo meter's pseudo-terminal with
            ``--demo``).
        key: The decryption key in use (the demo meter's without one configured).
        auth_key: The authentication key in use.
        thread: The reader thread while running.

    """

    def __init__(self, config: Config, publish: Callable[[AnyReading], None]) -> None:
        """Prepare the reader; nothing is opened before :meth:`start`."""
        self.config = config
        self.latest = Latest()
        self.port = config.serial_port
        self.key = config.key
        self.auth_key = config.auth_key
        self.thread: threading.Thread | None = None
        self._publish = publish
        self._stop = threading.Event()
        self._simulator: Any = None
        self._seen: dict[str, int] | None = None  # what the port sent before any reading

    def seen(self) -> str | None:
        """What the port delivered without a reading, for the log: bytes and a hint.

        None before the reader starts or for a polled wired M-Bus meter.
        """
        seen = self._seen
        if seen is None:
            return None
        n = seen["bytes"]
        if n == 0:
            return "no bytes at all: is the meter connected and its interface enabled?"
        text = seen["text"] / n
        what = f"{n:,} bytes received, {100 * text:.0f} % ASCII text"
        if text >= 0.9 and self.config.protocol != "dsmr":
            return f"{what}: looks like a P1 port, try protocol dsmr (115200 8N1) or auto"
        if text < 0.5 and self.config.protocol == "dsmr":
            return f"{what}: binary on a P1 setting, try protocol dlms or auto"
        return f"{what}: check the key, the baud rate and the parity"

    def start(self) -> None:
        """Start the demo meter when asked for, then the reader thread.

        Raises:
            ConfigError: ``--demo`` with a device no simulated meter plays.

        """
        if self.config.demo:
            self._start_demo()
        self.thread = threading.Thread(target=self._run, name="mbuspico-meter", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop reading (waits up to 5 s for the thread) and close the demo meter."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None
        if self._simulator is not None:
            self._simulator.close()
            self._simulator = None

    def _start_demo(self) -> None:
        c = self.config
        profile = c.profile
        if c.protocol == "dsmr":
            from ..simulate.p1 import ENCRYPTED_METERS, SMARTY_AUTH_KEY, P1Simulator

            meter = profile.simulator if profile and profile.simulator else "dsmr5"
            encrypted = meter in ENCRYPTED_METERS
            self.key = (c.key or DEMO_KEY) if encrypted else None
            if encrypted:
                self.auth_key = c.auth_key or SMARTY_AUTH_KEY
            self._simulator = P1Simulator(meter, key=self.key, auth_key=self.auth_key, interval=1.0)
        else:
            from ..simulate.dlms import AUTHENTICATED, Simulator

            played = profile.simulator if profile else "kaifa-ma309m"
            if played is None:
                msg = f"--demo: no simulated meter plays device {c.device}"
                raise ConfigError(msg)
            meter = played
            self.key = c.key or DEMO_KEY
            if meter in AUTHENTICATED:
                self.auth_key = c.auth_key or DEMO_AUTH_KEY
            self._simulator = Simulator(meter, key=self.key, auth_key=self.auth_key, interval=1.0)
        self.port = self._simulator.open()
        self._simulator.start()

    def _run(self) -> None:
        if self.config.protocol == "mbus":
            self._poll_loop()
        else:
            self._read_loop()

    def _read_loop(self) -> None:
        """DLMS push and DSMR P1: read whatever the meter sends."""
        c = self.config
        assert self.port is not None  # noqa: S101 - checked by config.load / demo
        p1 = c.protocol == "dsmr"
        auto = c.protocol == "auto"  # DLMS push or P1, whichever the first telegram is
        profile = c.profile
        names = None
        if c.names_file:
            from ..dsmr import load_names

            names = load_names(c.names_file)
        reader = SerialReader(
            self.port,
            key=self.key,
            auth_key=self.auth_key,
            protocol="auto" if auto else "dsmr" if p1 else "dlms",
            profile=profile.name if profile else "auto",
            baudrate=c.baudrate,
            parity=c.parity,
            bytesize=(7 if profile.bytesize == 7 else 8) if profile else None,
            timeout=0.5,
            reconnect=True,
            tz=c.tz,
            names=names,
            apdu=c.mqtt_enabled and c.mqtt_mode == "evn-raw",
        )
        with reader:
            while not self._stop.is_set():
                got = reader.read()
                if got is not None and not auto and got["protocol"] != c.protocol:
                    log.debug("telegram of another protocol (%s) ignored", got["protocol"])
                    got = None  # a wired M-Bus telegram on a DLMS push port: not ours
                if got is not None:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("telegram: %s", _describe(got, reader.stats))
                    self._publish(got)
                self.latest.update(got, reader.stats, reader.connected)
                if got is None and self.latest.reading_at is None:
                    self._seen = reader.seen  # read here: the reader is this thread's

    def _poll_loop(self) -> None:
        """Wired M-Bus: request the meter's data every ``mbus_interval`` seconds."""
        from ..errors import CollisionError, DecodeError, MbusPicoError, SerialPortError
        from ..master import MBusMaster

        c = self.config
        assert self.port is not None  # noqa: S101 - checked by config.load / demo
        address: int | str = int(c.mbus_address) if c.mbus_address.isdigit() else c.mbus_address
        counters = {
            "polls": 0,
            "readings": 0,
            "no_response": 0,
            "decode_errors": 0,
            "bad_checksums": 0,
        }
        master: MBusMaster | None = None
        try:
            while not self._stop.is_set():
                counters["polls"] += 1
                reading = None
                try:
                    if master is None:
                        master = MBusMaster(self.port, c.baudrate, parity=c.parity)
                    reading = master.request(address)
                    counters["readings"] += 1
                except DecodeError as e:
                    counters["decode_errors"] += 1
                    log.warning("M-Bus meter %s: %s", c.mbus_address, e)
                except SerialPortError as e:
                    log.warning("M-Bus port %s: %s", self.port, e)
                    if master is not None:
                        master.close()
                    master = None
                except MbusPicoError as e:  # no response, collision
                    counters["no_response"] += 1
                    if isinstance(e, CollisionError) and _checksum_failed(e.data):
                        counters["bad_checksums"] += 1
                    log.warning("M-Bus meter %s: %s", c.mbus_address, e)
                if reading is not None:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("telegram: %s", _describe(reading, counters))  # type: ignore[arg-type]
                    self._publish(reading)  # type: ignore[arg-type]
                self.latest.update(reading, dict(counters), master is not None)  # type: ignore[arg-type]
                self._stop.wait(self.config.mbus_interval)  # changeable on /settings
        finally:
            if master is not None:
                master.close()
