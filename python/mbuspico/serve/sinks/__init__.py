"""Where ``mbuspico serve`` publishes readings besides HTTP and UDP.

Every sink is a :class:`Sink`: :meth:`Sink.publish` only puts the reading on a
bounded queue and returns at once, so a slow or unreachable broker, database or
disk never delays reading the meter; a worker thread delivers, reconnecting with
backoff. When the queue is full the oldest reading is dropped and counted.
Failed deliveries are counted; the first of a run of failures is logged as a
warning, the rest at debug level, and the recovery once (a broker or disk
that stays away does not flood the log with a line per reading).

:func:`flat_values` turns a reading of any protocol into the flat
``name -> number`` map the time-series sinks (Graphite, InfluxDB, CSV) store.
"""

from __future__ import annotations

import abc
import logging
import queue
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from ...compat import MBUSPICO_FIELDS
from ...mbus import record_name

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "Sink",
    "demo_prefix",
    "flat_values",
    "make_sinks",
    "meter_id",
    "record_name",
    "topic_name",
]

log = logging.getLogger("mbuspico.serve")

_NAME = re.compile(r"[^A-Za-z0-9_]+")

# MBusPico's numeric fields with the reactive energies after the active ones.
_DLMS_FIELDS = (
    *MBUSPICO_FIELDS[:4],
    "reactiveEnergyPlus",
    "reactiveEnergyMinus",
    *MBUSPICO_FIELDS[4:],
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def topic_name(name: str) -> str:
    """A DSMR value's name as MQTT topic levels: each ``/``-separated level in ``[A-Za-z0-9_]``.

    ``total/gas_meter`` stays ``total/gas_meter`` (the MicroPython P1 meter's
    code table names topics so); ``1-0:1.8.1`` becomes ``1_0_1_8_1``.
    """
    levels = (_NAME.sub("_", level).strip("_") for level in name.split("/"))
    return "/".join(level for level in levels if level)


def meter_id(reading: Mapping[str, Any]) -> str | None:
    """What identifies the meter of a reading, None when it shows nothing.

    DLMS push and DSMR P1: ``meterNumber`` (for P1 the equipment identifier,
    ``0-0:96.1.1``, decoded); wired M-Bus: the identification number of the
    header (EN 13757-3 §6.2), else ``address-<A-field>`` (a frame without
    header: the primary address is all that tells meters apart).
    """
    protocol = reading.get("protocol")
    value = reading.get("meterNumber")
    if protocol == "dsmr" and not value:
        value = reading.get("obis", {}).get("0-0:96.1.1", {}).get("value")
    elif protocol == "mbus":
        value = reading.get("id")
        if not value and isinstance(reading.get("address"), int):
            value = f"address-{reading['address']}"
    return value if isinstance(value, str) and value else None


def flat_values(reading: Mapping[str, Any], *, topics: bool = False) -> dict[str, float]:
    """The numeric values of a reading as ``name -> float``, in a stable order.

    * DLMS push (``protocol == "dlms"``): MBusPico's field names
      (``activePowerPlus`` W, ``activeEnergyPlus`` Wh, ``voltageL1`` V,
      ``currentL1`` A, ``powerFactor`` as cos φ, …); values the meter did not
      send are left out.
    * DSMR (``"dsmr"``): each OBIS value under its name from the code table
      (``electricity_used_tariff_1`` kWh, …), or the OBIS code with ``-:.``
      replaced by ``_`` when it has no name; M-Bus channels as
      ``mbus_<channel>`` (gas m³, water m³, heat GJ).
    * Wired M-Bus (``"mbus"``): each numeric record as
      ``<quantity>_<storage>_<tariff>_<subunit>`` in snake case, scaled to its
      base unit (``energy_0_0_0`` Wh, ``volume_0_0_0`` m³, …). Records the
      meter marks as a value during an error state (DIF function field 3,
      EN 13757-3 §6.3.2; ``"function": "error"`` in the reading) are not
      measurements and are left out.

    Text values (meter numbers, equipment identifiers) and placeholders (None)
    are never included. Names contain only ``[A-Za-z0-9_]``, and ``/`` with
    ``topics=True``.

    Args:
        reading: A reading from :meth:`mbuspico.Decoder.decode`.
        topics: Keep the ``/`` levels of code-table names (MQTT topics,
            :func:`topic_name`); without it ``/`` becomes ``_`` (Graphite,
            InfluxDB and CSV names).

    Returns:
        A new dict; empty for an M-Bus application error.

    """
    out: dict[str, float] = {}
    protocol = reading.get("protocol")
    if protocol == "dlms":
        for name in _DLMS_FIELDS:
            value = _number(reading.get(name))
            if value is not None:
                out[name] = value
    elif protocol == "dsmr":
        for code, entry in reading.get("obis", {}).items():
            value = _number(entry.get("value"))
            if value is not None:
                label = entry.get("name") or code
                name = topic_name(label) if topics else _NAME.sub("_", label).strip("_")
                out[name] = value
        for channel, device in reading.get("mbus", {}).items():
            value = _number(device.get("value"))
            if value is not None:
                out[f"mbus_{channel}"] = value
    elif protocol == "mbus":
        for record in reading.get("records", []):
            value = _number(record.get("value"))
            if value is None or record.get("function") == "error":
                continue
            out.setdefault(record_name(record), value)
    return out


class Sink(abc.ABC):
    """Base of the publishing sinks: a bounded queue and one delivery thread.

    Subclasses implement :meth:`deliver` (send one reading; raise ``OSError``
    or another exception to have it counted as failed and logged) and may
    override :meth:`connect` and :meth:`disconnect`.

    Args:
        name: Shown in logs and :meth:`status` (``"mqtt"``, ``"graphite"``, …).
        maxsize: Readings kept while delivery is slow; the oldest is dropped
            beyond it.

    """

    def __init__(self, name: str, maxsize: int = 100) -> None:
        """Create the sink; nothing is opened before :meth:`start`."""
        self.name = name
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.published = 0
        """Readings delivered."""
        self.failed = 0
        """Readings whose delivery raised."""
        self.dropped = 0
        """Readings dropped because the queue was full."""
        self.failing = 0
        """Deliveries failed in a row (0 while they work)."""
        self.closing = threading.Event()
        """Set when :meth:`close` begins: a deliverer waiting for its peer gives up."""
        self._dropping = False

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"mbuspico-{self.name}", daemon=True)
        self._thread.start()

    def publish(self, reading: Mapping[str, Any]) -> None:
        """Queue ``reading`` for delivery; never blocks, never raises."""
        while True:
            try:
                self._queue.put_nowait(reading)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    continue
                with self._lock:
                    self.dropped += 1
                if not self._dropping:
                    self._dropping = True
                    log.warning(
                        "%s: %d readings wait for delivery; dropping the oldest from now on "
                        "(counted as dropped in /api/status)",
                        self.name,
                        self._queue.maxsize,
                    )

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop."""
        self.closing.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while True:
            try:
                self._queue.put(None, timeout=timeout)
                break
            except queue.Full:  # pragma: no cover - a stuck deliverer
                break
        thread.join(timeout)
        self.disconnect()

    def status(self) -> dict[str, Any]:
        """Counters for ``/api/status``."""
        with self._lock:
            return {"published": self.published, "failed": self.failed, "dropped": self.dropped}

    def connect(self) -> None:
        """Open connections before the first delivery (default: nothing)."""
        return

    def disconnect(self) -> None:
        """Close connections (default: nothing)."""
        return

    @abc.abstractmethod
    def deliver(self, reading: Mapping[str, Any]) -> None:
        """Send one reading; an exception counts it as failed."""

    def _run(self) -> None:
        try:
            self.connect()
        except Exception as e:  # a sink must never stop the service
            log.warning("%s: %s", self.name, e)
        while True:
            reading = self._queue.get()
            if reading is None:
                return
            try:
                self.deliver(reading)
            except Exception as e:  # logged and counted, never fatal
                with self._lock:
                    self.failed += 1
                if self.failing:
                    log.debug("%s: could not deliver a reading: %s", self.name, e)
                else:
                    log.warning(
                        "%s: could not deliver a reading: %s (further failures are counted "
                        "and logged at debug level until delivery works again)",
                        self.name,
                        e,
                    )
                self.failing += 1
            else:
                with self._lock:
                    self.published += 1
                if self._dropping and self._queue.qsize() < self._queue.maxsize // 2:
                    self._dropping = False
                    log.info("%s: caught up; %d readings dropped in all", self.name, self.dropped)
                if self.failing:
                    log.info(
                        "%s: delivering again after %d failed readings", self.name, self.failing
                    )
                    self.failing = 0


def demo_prefix(prefix: str) -> str:
    """The MQTT prefix of ``--demo``: ``<prefix>_demo`` (``demo`` for an empty prefix).

    As the MicroPython P1 meter's simulation mode changes its root topic, the
    simulated meter never publishes under the real meter's topics.
    """
    return f"{prefix}_demo" if prefix else "demo"


def make_sinks(config: Config, status: Callable[[], dict[str, Any]]) -> list[Sink]:
    """The sinks ``config`` turns on, built but not started (readings queue until then).

    Args:
        config: The settings: MQTT (``mqtt_enabled``; under ``--demo`` at
            :func:`demo_prefix`), CSV (``csv_directory``), Graphite
            (``graphite_host``), InfluxDB (``influx_url``).
        status: The service's status, which MQTT publishes as
            ``<prefix>/status``.

    Raises:
        ValueError: A setting only the sink checks (an MQTT topic with ``#``).

    """
    c = config
    sinks: list[Sink] = []
    if c.mqtt_enabled:
        from .mqtt import MqttSink

        sinks.append(
            MqttSink(
                host=c.mqtt_host,
                port=c.mqtt_port,
                username=c.mqtt_user,
                password=c.mqtt_password,
                client_id=c.mqtt_client_id,
                mode=c.mqtt_mode,
                topic_prefix=demo_prefix(c.mqtt_prefix) if c.demo else c.mqtt_prefix,
                qos=c.mqtt_qos,
                retain=c.mqtt_retain,
                tls=c.mqtt_tls,
                ca_file=c.mqtt_ca_file,
                cert_file=c.mqtt_cert_file,
                key_file=c.mqtt_key_file,
                tls_insecure=c.mqtt_tls_insecure,
                fingerprint=c.mqtt_fingerprint,
                discovery=c.mqtt_discovery,
                discovery_prefix=c.mqtt_discovery_prefix,
                telegram_json=c.mqtt_telegram_json,
                status=status,
                status_interval=c.mqtt_status_interval,
                maxsize=c.mqtt_buffer,
            )
        )
    if c.csv_directory:
        from .csvlog import CsvLogSink

        sinks.append(CsvLogSink(c.csv_directory))
    if c.graphite_host:
        from .metrics import GraphiteSink

        sinks.append(GraphiteSink(c.graphite_host, c.graphite_port, prefix=c.graphite_prefix))
    if c.influx_url:
        from .metrics import InfluxSink

        sinks.append(
            InfluxSink(
                c.influx_url,
                version=c.influx_version,
                database=c.influx_database,
                username=c.influx_user,
                password=c.influx_password,
                org=c.influx_org,
                bucket=c.influx_bucket,
                token=c.influx_token,
                buffer=c.influx_buffer,
            )
        )
    return sinks
