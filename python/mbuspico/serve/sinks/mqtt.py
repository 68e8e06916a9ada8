"""Publish readings to an MQTT broker (paho-mqtt 2.x), with Home Assistant discovery.

:class:`MqttSink` is a :class:`~mbuspico.serve.sinks.Sink`: :meth:`~MqttSink.publish`
queues and returns at once; paho's network thread connects in the background
and reconnects with backoff (1 s doubling to 60 s), so an unreachable broker
never delays or stops reading the meter.

Topics (``<prefix>`` is ``topic_prefix``, default ``mbuspico``), by ``mode``:

``mbuspico``
    MBusPico's MQTT layout: ``<prefix>/<field>`` for ``timestamp``,
    ``lxTimestamp``, ``meterNumber`` and every field of
    :data:`mbuspico.compat.MBUSPICO_FIELDS`, each payload exactly the text
    MBusPico's JSON shows (``1055.00``, ``234.50``, ``powerFactor`` x 1000 as
    ``968.00``, ``timestamp`` local time labelled ``Z``). DLMS readings only.
``evn-raw``
    ``<prefix>/raw``: the decrypted APDU, lower-case hex. Taken from an optional
    ``"apdu"`` key of the reading (bytes or hex text); readings without it are
    skipped (neither published nor failed).
``evn-topics``
    The topics of the Netz NÖ / EVN sample clients: ``<prefix>/w_p`` +P W,
    ``w_n`` -P W, ``p_p`` +A Wh, ``p_n`` -A Wh, ``u1``..``u3`` V, ``i1``..``i3``
    A, ``phi`` cos φ (e.g. ``0.968``), ``meternumber``, ``timestamp`` (ISO 8601
    with the meter's offset, as the reading gives). DLMS readings only.
``evn-json``
    ``<prefix>/json``: one JSON object with exactly the ``evn-topics`` names
    and JSON numbers; values the meter did not send, and energy totals of
    zero, are ``null``. DLMS readings only.
``obis``
    Any protocol: ``<prefix>/<name>`` for each value of
    :func:`mbuspico.serve.sinks.flat_values` (``mbuspico/electricity_used_tariff_1``,
    M-Bus channels as ``mbuspico/mbus_1``); with ``telegram_json`` also the
    whole reading as JSON on ``<prefix>/telegram``.

Numbers are sent as plain text (``4.426``, ``1055``). An energy or volume
total (a ``total_increasing`` sensor) that is None or zero is never published:
Home Assistant would take it as a meter reset and count the whole total again.

``<prefix>/status`` (retained, QoS 1) is always a JSON object whose ``state``
says whether the service is up: ``{"state": "online", ...}`` after every
connect and then every ``status_interval`` seconds, with the statistics the
``status`` callable returns (``mbuspico serve`` gives its ``/api/status``
figures: uptime, telegram counters, memory, CPU temperature, client id, ...);
``{"state": "offline"}`` when the sink stops, and as the last will when its
connection drops uncleanly. Home Assistant discovery configs read it with the
availability template ``{{ value_json.state }}``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ...compat import MBUSPICO_FIELDS
from . import Sink, flat_values

__all__ = ["MODES", "MqttSink"]

log = logging.getLogger("mbuspico.serve")

MODES = ("mbuspico", "evn-raw", "evn-topics", "evn-json", "obis")
"""The values of ``MqttSink(mode=...)``."""

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_OFFLINE = json.dumps({"state": "offline"})
_NAME = re.compile(r"[^A-Za-z0-9_]+")

# evn-topics / evn-json name -> MBusPico field name.
_EVN = {
    "w_p": "activePowerPlus",
    "w_n": "activePowerMinus",
    "p_p": "activeEnergyPlus",
    "p_n": "activeEnergyMinus",
    "u1": "voltageL1",
    "u2": "voltageL2",
    "u3": "voltageL3",
    "i1": "currentL1",
    "i2": "currentL2",
    "i3": "currentL3",
    "phi": "powerFactor",
    "meternumber": "meterNumber",
    "timestamp": "timestamp",
}


class _Kind(NamedTuple):
    """How Home Assistant should show a sensor."""

    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None

    @property
    def total(self) -> bool:
        """A running total: None or zero must never be published."""
        return self.state_class == "total_increasing"


_PLAIN = _Kind()
_ENERGY_WH = _Kind("energy", "total_increasing", "Wh")
_POWER_W = _Kind("power", "measurement", "W")
_VOLTAGE = _Kind("voltage", "measurement", "V")
_CURRENT = _Kind("current", "measurement", "A")
_POWER_FACTOR = _Kind("power_factor", "measurement")
_GAS = _Kind("gas", "total_increasing", "m³")
_WATER = _Kind("water", "total_increasing", "m³")
_VOLUME = _Kind(None, "total_increasing", "m³")

# DLMS field -> (Home Assistant name, kind).
_DLMS_META: dict[str, tuple[str, _Kind]] = {
    "activePowerPlus": ("Active power import", _POWER_W),
    "activePowerMinus": ("Active power export", _POWER_W),
    "activeEnergyPlus": ("Active energy import", _ENERGY_WH),
    "activeEnergyMinus": ("Active energy export", _ENERGY_WH),
    "reactiveEnergyPlus": ("Reactive energy import", _Kind(None, "total_increasing", "varh")),
    "reactiveEnergyMinus": ("Reactive energy export", _Kind(None, "total_increasing", "varh")),
    "voltageL1": ("Voltage L1", _VOLTAGE),
    "voltageL2": ("Voltage L2", _VOLTAGE),
    "voltageL3": ("Voltage L3", _VOLTAGE),
    "currentL1": ("Current L1", _CURRENT),
    "currentL2": ("Current L2", _CURRENT),
    "currentL3": ("Current L3", _CURRENT),
    "powerFactor": ("Power factor", _POWER_FACTOR),
}

# DSMR / wired M-Bus unit as sent -> kind.
_UNIT_META: dict[str, _Kind] = {
    "kWh": _Kind("energy", "total_increasing", "kWh"),
    "Wh": _ENERGY_WH,
    "GJ": _Kind("energy", "total_increasing", "GJ"),
    "kW": _Kind("power", "measurement", "kW"),
    "W": _POWER_W,
    "V": _VOLTAGE,
    "A": _CURRENT,
    "°C": _Kind("temperature", "measurement", "°C"),
}


def _unit_kind(unit: Any) -> _Kind:
    if not isinstance(unit, str) or not unit:
        return _PLAIN
    return _UNIT_META.get(unit, _Kind(unit=unit))


def _volume_kind(device_type: Any) -> _Kind:
    """Gas (EN 13757-3 device type 3), water (6, 7, 8) or another volume."""
    if device_type == 3:
        return _GAS
    if device_type in (6, 7, 8):
        return _WATER
    return _VOLUME


def _text(value: Any) -> str:
    """A number as plain text: ``1055``, ``234.5``; None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_total(value: Any) -> bool:
    """An energy/volume total worth publishing: a number, not zero."""
    return _is_number(value) and value != 0


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the TLS handshake fails.

    paho leaves the socket of a failed handshake (untrusted certificate) open
    for the garbage collector; with a reconnect every minute that would leak
    one descriptor per attempt until collected.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class MqttSink(Sink):
    """Publishes readings to an MQTT broker; see the module docs for the topics.

    Args:
        host: Broker host name or address.
        port: Broker port (1883; usually 8883 with TLS).
        username: MQTT user name, or None for an anonymous connection.
        password: Password for ``username``; kept out of logs, reprs and
            exceptions.
        client_id: MQTT client id; default ``mbuspico-<hostname>``.
        mode: One of :data:`MODES`.
        topic_prefix: First level of every state topic (``mbuspico``).
        qos: MQTT quality of service of the readings, 0, 1 or 2. Status and
            discovery messages always use QoS 1.
        retain: Retain the reading messages at the broker.
        tls: Connect with TLS.
        ca_file: PEM CA certificates to verify the broker with; None uses the
            system's trusted CAs.
        cert_file: PEM client certificate, for brokers that require one.
        key_file: Private key of ``cert_file`` (None when it is in ``cert_file``).
        tls_insecure: Do not check that the broker's certificate names ``host``
            (the chain is still verified).
        discovery: Publish Home Assistant MQTT discovery configs (retained) on
            every connect, built from the first reading.
        discovery_prefix: Home Assistant's discovery prefix.
        telegram_json: In ``obis`` mode, also publish the whole reading as
            JSON on ``<prefix>/telegram``.
        status: Returns the statistics sent with ``"state": "online"`` on
            ``<prefix>/status`` (a JSON-serialisable mapping; called on paho's
            and the status thread); None sends the state alone.
        status_interval: Seconds between status messages while connected
            (besides the one on every connect); 0 sends the state alone, on
            connect only.
        maxsize: Readings kept while delivery is slow (see :class:`Sink`).

    Raises:
        ValueError: ``mode`` or ``qos`` is not valid, ``topic_prefix`` is
            empty or holds a wildcard, or ``status_interval`` is negative.
        OSError: The TLS files could not be read (``ssl.SSLError`` when they are
            not valid PEM).

    A reading delivered while the broker is not connected is counted as failed
    (:meth:`status` ``failed``), not kept for later: the next reading will be
    newer. Nothing touches the network before :meth:`start`.

    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        mode: str = "mbuspico",
        topic_prefix: str = "mbuspico",
        qos: int = 0,
        retain: bool = False,
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_insecure: bool = False,
        discovery: bool = False,
        discovery_prefix: str = "homeassistant",
        telegram_json: bool = False,
        status: Callable[[], Mapping[str, Any]] | None = None,
        status_interval: float = 60.0,
        maxsize: int = 100,
    ) -> None:
        """Configure the sink; the connection is opened by :meth:`start`."""
        if mode not in MODES:
            raise ValueError(f"mqtt mode must be one of {', '.join(MODES)}, not {mode!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"mqtt qos must be 0, 1 or 2, not {qos!r}")
        prefix = topic_prefix.strip("/")
        if not prefix or "+" in prefix or "#" in prefix:
            raise ValueError(
                f"mqtt topic_prefix must be a topic without wildcards: {topic_prefix!r}"
            )
        if not status_interval >= 0:  # also NaN
            raise ValueError(f"mqtt status_interval must be 0 or more, not {status_interval!r}")
        super().__init__("mqtt", maxsize)
        self.host = host
        self.port = port
        self.username = username
        self.client_id = client_id or f"mbuspico-{socket.gethostname()}"
        self.mode = mode
        self.topic_prefix = prefix
        self.qos = qos
        self.retain = retain
        self.tls = tls
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix.strip("/")
        self.telegram_json = telegram_json
        self.status_topic = f"{prefix}/status"
        """Availability and statistics topic: JSON with ``state`` ``online`` /
        ``offline``, retained."""
        self.status_interval = status_interval
        self._status = status
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None

        self._connected = threading.Event()
        self._started = False
        self._skipped_logged = False
        self._discovery_lock = threading.Lock()
        self._configs: dict[str, str] = {}  # discovery topic -> JSON payload

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls:
            context = ssl.create_default_context(cafile=ca_file)  # system CAs when None
            if cert_file is not None:
                context.load_cert_chain(cert_file, key_file)
            context.sslsocket_class = _ClosingSSLSocket
            client.tls_set_context(context)
            if tls_insecure:
                client.tls_insecure_set(True)
        client.will_set(self.status_topic, _OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(1, 60)
        client.max_queued_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client

    def __repr__(self) -> str:
        """Where and how the sink publishes; never the password."""
        return (
            f"MqttSink(host={self.host!r}, port={self.port}, mode={self.mode!r}, "
            f"topic_prefix={self.topic_prefix!r}, username={self.username!r}, "
            f"tls={self.tls}, discovery={self.discovery})"
        )

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def status(self) -> dict[str, Any]:
        """Counters for ``/api/status``, plus ``connected`` (bool)."""
        out = super().status()
        out["connected"] = self.connected
        return out

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the connection; whether it is up."""
        return self._connected.wait(timeout)

    # -- Sink ------------------------------------------------------------------------------------

    def publish(self, reading: Mapping[str, Any]) -> None:
        """Queue ``reading``; never blocks, never raises.

        Readings the mode cannot show are skipped without being counted:
        anything but DLMS in the ``mbuspico`` and ``evn-*`` modes, readings
        without an ``"apdu"`` in ``evn-raw``.
        """
        if self.mode == "evn-raw":
            accepted = reading.get("apdu") is not None
        elif self.mode == "obis":
            accepted = True
        else:
            accepted = reading.get("protocol") == "dlms"
        if not accepted:
            if not self._skipped_logged:
                self._skipped_logged = True
                log.info("mqtt: mode %s skips %s readings", self.mode, reading.get("protocol"))
            return
        super().publish(reading)

    def connect(self) -> None:
        """Start paho's network thread; it connects and reconnects in the background."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.host, self.port, keepalive=60)
        self._client.loop_start()
        if self.status_interval > 0:
            self._status_stop.clear()
            self._status_thread = threading.Thread(
                target=self._status_loop, name="mbuspico-mqtt-status", daemon=True
            )
            self._status_thread.start()

    def disconnect(self) -> None:
        """Publish ``{"state": "offline"}``, disconnect and stop the network thread."""
        if not self._started:
            return
        self._started = False
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(5)
            self._status_thread = None
        if self._connected.is_set():
            try:
                info = self._client.publish(self.status_topic, _OFFLINE, qos=1, retain=True)
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):  # the connection dropped meanwhile
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def deliver(self, reading: Mapping[str, Any]) -> None:
        """Publish one reading as the mode lays it out.

        Raises:
            ConnectionError: The broker is not connected, or paho refused a message.

        """
        if not self._connected.is_set():
            raise ConnectionError(f"not connected to MQTT broker {self.host}:{self.port}")
        if self.discovery:
            self._add_discovery(reading)
        for topic, payload in self._messages(reading):
            self._send(f"{self.topic_prefix}/{topic}", payload, self.qos, self.retain)

    # -- paho callbacks (network thread) ---------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning(
                "mqtt: broker %s:%s refused the connection: %s", self.host, self.port, reason_code
            )
            return
        log.info("mqtt: connected to %s:%s", self.host, self.port)
        with self._discovery_lock:
            configs = list(self._configs.items())
        for topic, payload in configs:
            client.publish(topic, payload, qos=1, retain=True)
        self._connected.set()
        # After set(): the statistics show this connection as up.
        client.publish(self.status_topic, self.status_payload(), qos=1, retain=True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and self._started:
            log.warning("mqtt: lost the connection to %s:%s: %s", self.host, self.port, reason_code)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.debug("mqtt: could not connect to %s:%s; retrying", self.host, self.port)

    # -- status ----------------------------------------------------------------------------------

    def status_payload(self) -> str:
        """The JSON of ``<prefix>/status`` while running: ``{"state": "online", ...}``.

        The statistics of ``status`` follow ``state`` (not with
        ``status_interval`` 0); when the callable raises, the state goes alone
        (logged at debug level).
        """
        doc: dict[str, Any] = {"state": "online"}
        if self._status is not None and self.status_interval > 0:
            try:
                doc.update(self._status())
            except Exception as e:  # statistics must never stop the availability message
                log.debug("mqtt: no statistics for %s: %s", self.status_topic, e)
            doc["state"] = "online"
        return json.dumps(doc, ensure_ascii=False, default=_json_default)

    def _status_loop(self) -> None:
        """Republish the status every ``status_interval`` seconds while connected."""
        while not self._status_stop.wait(self.status_interval):
            if not self._connected.is_set():
                continue
            payload = self.status_payload()
            info = self._client.publish(self.status_topic, payload, qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.debug("mqtt: status not sent: %s", mqtt.error_string(info.rc))

    # -- messages --------------------------------------------------------------------------------

    def _send(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def _messages(self, reading: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(topic below the prefix, payload)`` for one reading in this mode."""
        if self.mode == "mbuspico":
            return _mbuspico_messages(reading)
        if self.mode == "evn-raw":
            apdu = reading["apdu"]
            raw = bytes(apdu) if isinstance(apdu, (bytes, bytearray, memoryview)) else None
            if raw is None:
                raw = bytes.fromhex(str(apdu))  # ValueError: counted as failed
            return [("raw", raw.hex())]
        if self.mode == "evn-topics":
            return [
                (name, _text(value))
                for name, value in _evn_values(reading).items()
                if value is not None
            ]
        if self.mode == "evn-json":
            return [("json", json.dumps(_evn_values(reading), separators=(",", ":")))]
        out = [(name, _text(value)) for name, value in _obis_values(reading).items()]
        if self.telegram_json:
            out.append(("telegram", json.dumps(dict(reading), default=_json_default)))
        return out

    # -- Home Assistant discovery ----------------------------------------------------------------

    def _add_discovery(self, reading: Mapping[str, Any]) -> None:
        """Build configs for sensors not seen before and publish the new ones."""
        new: list[tuple[str, str]] = []
        with self._discovery_lock:
            for topic, payload in self._discovery_configs(reading):
                if topic not in self._configs:
                    self._configs[topic] = payload
                    new.append((topic, payload))
        for topic, payload in new:
            self._send(topic, payload, 1, True)

    def _discovery_configs(self, reading: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(config topic, JSON config)`` for each sensor this reading shows."""
        protocol = reading.get("protocol")
        meter = _meter_id(reading)
        ident = _SAFE.sub("_", meter or self.client_id).strip("_") or "mbuspico"
        node_id = f"mbuspico_{ident}"
        if protocol == "dsmr":
            model = f"DSMR {reading.get('header') or 'P1'}"
        elif protocol == "mbus":
            model = f"M-Bus {reading.get('manufacturer') or ''} {reading.get('medium') or ''}"
            model = " ".join(model.split())
        else:
            model = "DLMS/COSEM push"
        device = {
            "identifiers": [node_id],
            "name": f"Meter {meter}" if meter else "mbuspico meter",
            "manufacturer": "mbuspico",
            "model": model,
        }
        out = []
        for object_id, name, kind, extra in self._sensors(reading):
            config: dict[str, Any] = {
                "name": name,
                "unique_id": f"{node_id}_{_SAFE.sub('_', object_id)}",
                "state_topic": f"{self.topic_prefix}/{object_id}",
                "availability_topic": self.status_topic,
                "availability_template": "{{ value_json.state }}",
                "device": device,
            }
            config.update(extra)
            if kind.device_class:
                config["device_class"] = kind.device_class
            if kind.state_class:
                config["state_class"] = kind.state_class
            if kind.unit:
                config["unit_of_measurement"] = kind.unit
            topic = f"{self.discovery_prefix}/sensor/{node_id}/{_SAFE.sub('_', object_id)}/config"
            out.append((topic, json.dumps(config, ensure_ascii=False)))
        return out

    def _sensors(self, reading: Mapping[str, Any]) -> list[tuple[str, str, _Kind, dict[str, Any]]]:
        """``(topic below the prefix, name, kind, extra config)`` per sensor."""
        out: list[tuple[str, str, _Kind, dict[str, Any]]] = []
        if self.mode == "mbuspico":
            for field in MBUSPICO_FIELDS:
                name, kind = _DLMS_META[field]
                extra: dict[str, Any] = {}
                if field == "powerFactor":  # MBusPico sends cos φ x 1000
                    extra["value_template"] = "{{ (value | float / 1000) | round(3) }}"
                out.append((field, name, kind, extra))
        elif self.mode in ("evn-topics", "evn-json"):
            for short, field in _EVN.items():
                if field not in _DLMS_META:
                    continue  # meternumber, timestamp
                name, kind = _DLMS_META[field]
                extra = {}
                if self.mode == "evn-json":
                    extra["state_topic"] = f"{self.topic_prefix}/json"
                    extra["value_template"] = f"{{{{ value_json.{short} }}}}"
                out.append((short, name, kind, extra))
        elif self.mode == "obis":
            for name, kind in _obis_kinds(reading).items():
                label = _DLMS_META[name][0] if name in _DLMS_META else None
                out.append((name, label or name.replace("_", " ").capitalize(), kind, {}))
        return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def _meter_id(reading: Mapping[str, Any]) -> str | None:
    """Meter number (DLMS), equipment identifier (DSMR) or id (M-Bus)."""
    protocol = reading.get("protocol")
    if protocol == "dsmr":
        value = reading.get("obis", {}).get("0-0:96.1.1", {}).get("value")
    elif protocol == "mbus":
        value = reading.get("id")
    else:
        value = reading.get("meterNumber")
    return value if isinstance(value, str) and value else None


def _mbuspico_messages(reading: Mapping[str, Any]) -> list[tuple[str, str]]:
    """MBusPico's topics with the texts of :func:`mbuspico.compat.to_mbuspico_json`."""
    timestamp = reading.get("timestamp")
    out = [
        ("timestamp", timestamp[:19] + "Z" if timestamp else ""),
        ("lxTimestamp", str(reading.get("lxTimestamp") or 0)),
        ("meterNumber", str(reading.get("meterNumber") or "")),
    ]
    for field in MBUSPICO_FIELDS:
        value = reading.get(field)
        if _DLMS_META[field][1].total and not _valid_total(value):
            continue
        # MBusPico shows unsent values as 0.00.
        number = 0.0 if isinstance(value, bool) or not isinstance(value, (int, float)) else value
        if field == "powerFactor":
            number *= 1000
        out.append((field, f"{number:.2f}"))
    return out


def _evn_values(reading: Mapping[str, Any]) -> dict[str, Any]:
    """The EVN names with the reading's values.

    None for values the meter did not send and for energy totals that are zero.
    """
    out: dict[str, Any] = {}
    for short, field in _EVN.items():
        value = reading.get(field)
        meta = _DLMS_META.get(field)
        if meta is not None and meta[1].total and not _valid_total(value):
            value = None
        out[short] = value
    return out


def _obis_kinds(reading: Mapping[str, Any]) -> dict[str, _Kind]:
    """The kind of each :func:`flat_values` name of ``reading``."""
    protocol = reading.get("protocol")
    names = flat_values(reading)
    out: dict[str, _Kind] = {}
    if protocol == "dsmr":
        mbus = reading.get("mbus", {})
        for code, entry in reading.get("obis", {}).items():
            name = _NAME.sub("_", entry.get("name") or code).strip("_")
            if name not in names or name in out:
                continue
            unit = entry.get("unit")
            if unit in ("m3", "m³"):
                channel = code.split(":")[0].split("-")[-1]
                out[name] = _volume_kind(mbus.get(channel, {}).get("deviceType"))
            else:
                out[name] = _unit_kind(unit)
        for channel, device in mbus.items():
            name = f"mbus_{channel}"
            if name in names:
                unit = device.get("unit")
                volume = unit in ("m3", "m³")
                out[name] = _volume_kind(device.get("deviceType")) if volume else _unit_kind(unit)
    elif protocol == "mbus":
        medium = str(reading.get("medium") or "").lower()
        units: dict[str, Any] = {}
        for record in reading.get("records", []):
            quantity = _NAME.sub("_", (record.get("quantity") or "value").lower()).strip("_")
            key = (
                f"{quantity}_{record.get('storageNumber', 0)}_{record.get('tariff', 0)}"
                f"_{record.get('subunit', 0)}"
            )
            units.setdefault(key, record.get("unit"))
        for name in names:
            unit = units.get(name)
            if unit == "m^3":
                out[name] = _GAS if "gas" in medium else _WATER if "water" in medium else _VOLUME
            else:
                out[name] = _unit_kind(unit)
    for name in names:
        if protocol == "dlms":
            out[name] = _DLMS_META[name][1] if name in _DLMS_META else _PLAIN
        out.setdefault(name, _PLAIN)
    return out


def _obis_values(reading: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`flat_values`, integral values as int, totals that are zero left out."""
    kinds = _obis_kinds(reading)
    out: dict[str, Any] = {}
    for name, value in flat_values(reading).items():
        if kinds[name].total and not _valid_total(value):
            continue
        out[name] = int(value) if value.is_integer() and abs(value) < 2**53 else value
    return out
