"""Publish readings to an MQTT broker (paho-mqtt 2.x), with Home Assistant discovery.

:class:`MqttSink` is a :class:`~mbuspico.serve.sinks.Sink`: :meth:`~MqttSink.publish`
queues and returns at once; paho's network thread connects in the background
and reconnects with backoff (1 s doubling to 60 s), so an unreachable broker
never delays or stops reading the meter.

Topics (``<prefix>`` is ``topic_prefix``, default ``mbuspico``; empty puts
the topics at the top level) by ``mode``: see :mod:`mbuspico.serve.sinks.mqtt_topics`
(``mbuspico``, ``evn-raw``, ``evn-topics``, ``evn-json``, ``obis``).

TLS verifies the broker against a CA file (or the system's CAs), or pins it by
its certificate's SHA-1 or SHA-256 fingerprint as EVN Kaifa to MQTT does
(``fingerprint``; without a CA file the chain is then not checked, only the
certificate). A failed handshake is logged once with its reason (certificate
verify failed, fingerprint mismatch), and once more when a connection works
again.

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

import hashlib
import hmac
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any, Callable, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ...compat import MBUSPICO_FIELDS
from ..stats import wifi_rssi
from . import Sink
from .mqtt_topics import (
    DLMS_META,
    EVN_FIELDS,
    evn_json,
    evn_values,
    json_default,
    mbuspico_messages,
    obis_kinds,
    obis_values,
)

__all__ = ["MODES", "MqttSink"]

log = logging.getLogger("mbuspico.serve")

MODES = ("mbuspico", "evn-raw", "evn-topics", "evn-json", "obis")
"""The values of ``MqttSink(mode=...)``."""

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_OFFLINE = json.dumps({"state": "offline"})


class FingerprintMismatch(ssl.SSLError):
    """The broker's certificate is not the pinned one."""


class _CheckedSSLSocket(ssl.SSLSocket):
    """Checks the pinned fingerprint after the handshake; closes itself when either fails.

    paho leaves the socket of a failed handshake (untrusted certificate) open
    for the garbage collector; with a reconnect every minute that would leak
    one descriptor per attempt until collected. The failure is reported to the
    sink (``report``) so that its reason reaches the log.
    """

    fingerprint: str | None = None
    """Lower-case hex SHA-1 (40 digits) or SHA-256 (64) of the DER certificate."""
    report: Callable[[BaseException | None], None] | None = None

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
            expected = type(self).fingerprint
            if expected is not None:
                der = self.getpeercert(binary_form=True) or b""
                digest = hashlib.sha1 if len(expected) == 40 else hashlib.sha256
                got = digest(der).hexdigest()
                if not hmac.compare_digest(got, expected):
                    name = "SHA-1" if len(expected) == 40 else "SHA-256"
                    msg = f"fingerprint mismatch: the broker's certificate has {name} {got}"
                    raise FingerprintMismatch(msg)
        except BaseException as e:
            self.close()
            report = type(self).report
            if report is not None:
                report(e)
            raise
        report = type(self).report
        if report is not None:
            report(None)


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
        topic_prefix: First levels of every state topic (``mbuspico``); empty
            puts the topics at the top level (``json``, ``status``).
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
        fingerprint: Pin the broker's certificate: its SHA-1 (40 hex digits,
            as EVN Kaifa to MQTT) or SHA-256 (64) fingerprint; turns TLS on.
            Without ``ca_file`` only the fingerprint is checked (a self-signed
            broker certificate works); with it, the chain too.
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
        maxsize: Readings kept while the broker is away or slow (setting
            ``mqtt.buffer``, default 3600: an hour of one-second readings).

    Raises:
        ValueError: ``mode`` or ``qos`` is not valid, ``topic_prefix`` holds
            a wildcard, ``fingerprint`` is not 40 or 64 hex digits, or
            ``status_interval`` is negative.
        OSError: The TLS files could not be read (``ssl.SSLError`` when they are
            not valid PEM).

    Readings wait, in order, while the broker is away (up to ``maxsize``; the
    oldest is dropped and counted beyond it) and go when it is back; with QoS
    1 or 2 the next reading goes only once the broker has acknowledged this
    one, so none is lost to a broker restart (at least once: a reading whose
    acknowledgement was lost is sent again). Nothing touches the network
    before :meth:`start`.

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
        fingerprint: str | None = None,
        discovery: bool = False,
        discovery_prefix: str = "homeassistant",
        telegram_json: bool = False,
        status: Callable[[], Mapping[str, Any]] | None = None,
        status_interval: float = 60.0,
        maxsize: int = 3600,
    ) -> None:
        """Configure the sink; the connection is opened by :meth:`start`."""
        if mode not in MODES:
            raise ValueError(f"mqtt mode must be one of {', '.join(MODES)}, not {mode!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"mqtt qos must be 0, 1 or 2, not {qos!r}")
        prefix = topic_prefix.strip("/")
        if "+" in prefix or "#" in prefix:
            raise ValueError(
                f"mqtt topic_prefix must be a topic without wildcards: {topic_prefix!r}"
            )
        pin = None if fingerprint is None else fingerprint.replace(":", "").replace(" ", "").lower()
        if pin is not None and (len(pin) not in (40, 64) or not _is_hex(pin)):
            raise ValueError("mqtt fingerprint must be 40 (SHA-1) or 64 (SHA-256) hex digits")
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
        self.tls = tls or pin is not None
        self.fingerprint = pin
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix.strip("/")
        self.telegram_json = telegram_json
        self.status_topic = self.topic("status")
        """Availability and statistics topic: JSON with ``state`` ``online`` /
        ``offline``, retained."""
        self.status_interval = status_interval
        self.state = "online"
        """What ``<prefix>/status`` says while running: ``online`` or ``stale``."""
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
        self.local_address: str | None = None
        """The address of this host on the broker connection (EVN's ``ip``)."""
        self._tls_failing = 0  # handshakes failed in a row
        self._refusals = 0  # connections refused in a row (CONNACK failure)
        if self.tls:
            if pin is not None and ca_file is None:
                # Pinned: the fingerprint is the trust, as on EVN Kaifa to MQTT.
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                tls_insecure = True
            else:
                context = ssl.create_default_context(cafile=ca_file)  # system CAs when None
            if cert_file is not None:
                context.load_cert_chain(cert_file, key_file)
            context.sslsocket_class = type(
                "_PinnedSSLSocket",
                (_CheckedSSLSocket,),
                {"fingerprint": pin, "report": staticmethod(self._tls_result)},
            )
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

    def topic(self, name: str) -> str:
        """The full topic of ``name`` below the prefix (``name`` itself without one)."""
        return f"{self.topic_prefix}/{name}" if self.topic_prefix else name

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
        wired M-Bus readings in the ``mbuspico`` and ``evn-*`` modes (they have
        no MBusPico fields; DLMS push and DSMR P1 readings do), readings without
        an ``"apdu"`` in ``evn-raw``.
        """
        if self.mode == "evn-raw":
            accepted = reading.get("apdu") is not None
        elif self.mode == "obis":
            accepted = True
        else:
            accepted = reading.get("protocol") in ("dlms", "dsmr")
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
        messages = self._messages(reading)
        while True:
            while not self._connected.is_set():  # kept, in order, while the broker is away
                if self.closing.is_set() or not self._started:
                    raise ConnectionError(f"not connected to MQTT broker {self.host}:{self.port}")
                self._connected.wait(0.5)
            try:
                if self.discovery:
                    self._add_discovery(reading)
                infos = [
                    self._send(self.topic(topic), payload, self.qos, self.retain)
                    for topic, payload in messages
                ]
                if self.qos > 0:  # the broker has them before the next reading goes
                    for info in infos:
                        info.wait_for_publish(10.0)
                        if not info.is_published():
                            raise ConnectionError("no acknowledgement from the broker")
                return
            except (ConnectionError, RuntimeError, ValueError) as e:
                if self.closing.is_set() or not self._started:
                    raise
                log.debug("mqtt: sending again after %s", e)
                self._connected.wait(1.0)

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
            self._refusals += 1
            if self._refusals == 1:
                log.warning(
                    "mqtt: broker %s:%s refused the connection: %s (not logged again until "
                    "it accepts)",
                    self.host,
                    self.port,
                    reason_code,
                )
            return
        if self._refusals:
            log.info("mqtt: accepted after %d refusals", self._refusals)
            self._refusals = 0
        log.info("mqtt: connected to %s:%s", self.host, self.port)
        try:
            sock = cast("socket.socket | None", client.socket())
            self.local_address = sock.getsockname()[0] if sock is not None else None
        except OSError:  # closed meanwhile
            self.local_address = None
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

    def _tls_result(self, error: BaseException | None) -> None:
        """A TLS handshake ended: log the first failure of a run with its reason, and the end."""
        if error is None:
            if self._tls_failing:
                log.info(
                    "mqtt: TLS with %s:%s works again after %d failed handshakes",
                    self.host,
                    self.port,
                    self._tls_failing,
                )
            self._tls_failing = 0
            return
        if not self._tls_failing:
            if isinstance(error, FingerprintMismatch):
                text = str(error.args[0])
            elif isinstance(error, ssl.SSLCertVerificationError):
                text = f"certificate verify failed: {error.verify_message}"
            else:
                text = getattr(error, "reason", None) or str(error) or type(error).__name__
            log.warning(
                "mqtt: TLS handshake with %s:%s failed: %s (not logged again until it works)",
                self.host,
                self.port,
                text,
            )
        self._tls_failing += 1

    # -- status ----------------------------------------------------------------------------------

    def status_payload(self) -> str:
        """The JSON of ``<prefix>/status`` while running: ``{"state": "online", ...}``.

        ``state`` is :attr:`state` (``stale`` while the meter is silent).

        The statistics of ``status`` follow ``state`` (not with
        ``status_interval`` 0); when the callable raises, the state goes alone
        (logged at debug level).
        """
        doc: dict[str, Any] = {"state": self.state}
        if self._status is not None and self.status_interval > 0:
            try:
                doc.update(self._status())
            except Exception as e:  # statistics must never stop the availability message
                log.debug("mqtt: no statistics for %s: %s", self.status_topic, e)
            doc["state"] = self.state
        return json.dumps(doc, ensure_ascii=False, default=json_default)

    def set_state(self, state: str) -> None:
        """Say ``state`` (``"online"``, ``"stale"``) on ``<prefix>/status`` from now on, at once.

        ``stale`` while the meter sends nothing: Home Assistant's availability
        template (``{{ value_json.state }}``, available on ``online``) shows
        the sensors unavailable rather than an old value as current.
        """
        if state == self.state:
            return
        self.state = state
        if self._connected.is_set():
            self._client.publish(self.status_topic, self.status_payload(), qos=1, retain=True)

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

    def _send(
        self, topic: str, payload: str | bytes, qos: int, retain: bool
    ) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")
        return info

    def _messages(self, reading: Mapping[str, Any]) -> list[tuple[str, str | bytes]]:
        """``(topic below the prefix, payload)`` for one reading in this mode."""
        if self.mode == "mbuspico":
            return list(mbuspico_messages(reading))
        if self.mode == "evn-raw":
            apdu = reading["apdu"]
            raw = bytes(apdu) if isinstance(apdu, (bytes, bytearray, memoryview)) else None
            if raw is None:
                raw = bytes.fromhex(str(apdu))  # ValueError: counted as failed
            return [("raw", raw)]
        if self.mode == "evn-topics":
            return [
                (name, _text(value))
                for name, value in evn_values(reading).items()
                if value is not None
            ]
        if self.mode == "evn-json":
            ip = self.local_address
            return [("json", evn_json(reading, ip, wifi_rssi(ip) if ip else None))]
        out: list[tuple[str, str | bytes]] = [
            (name, _text(value)) for name, value in obis_values(reading).items()
        ]
        if self.telegram_json:
            out.append(("telegram", json.dumps(dict(reading), default=json_default)))
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
        meter = _discovery_id(reading)
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
                "state_topic": self.topic(object_id),
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

    def _sensors(self, reading: Mapping[str, Any]) -> list[tuple[str, str, Any, dict[str, Any]]]:
        """``(topic below the prefix, name, kind, extra config)`` per sensor."""
        out: list[tuple[str, str, Any, dict[str, Any]]] = []
        if self.mode == "mbuspico":
            for field in MBUSPICO_FIELDS:
                name, kind = DLMS_META[field]
                extra: dict[str, Any] = {}
                if field == "powerFactor":  # MBusPico sends cos φ x 1000
                    extra["value_template"] = "{{ (value | float / 1000) | round(3) }}"
                out.append((field, name, kind, extra))
        elif self.mode in ("evn-topics", "evn-json"):
            for short, field in EVN_FIELDS.items():
                if field not in DLMS_META:
                    continue  # meternumber, timestamp
                name, kind = DLMS_META[field]
                extra = {}
                if self.mode == "evn-json":
                    extra["state_topic"] = self.topic("json")
                    extra["value_template"] = f"{{{{ value_json.{short} }}}}"
                out.append((short, name, kind, extra))
        elif self.mode == "obis":
            for name, kind in obis_kinds(reading).items():
                label = DLMS_META[name][0] if name in DLMS_META else None
                out.append((name, label or name.replace("_", " ").capitalize(), kind, {}))
        return out


def _text(value: Any) -> str:
    """A value as MQTT text: numbers plain (``1055``, ``234.5``), None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _discovery_id(reading: Mapping[str, Any]) -> str | None:
    """The meter in Home Assistant's unique ids.

    Meter number (DLMS), equipment id as sent (DSMR), identification number
    (M-Bus): kept as first published, so existing entities stay.
    """
    protocol = reading.get("protocol")
    if protocol == "dsmr":
        value = reading.get("obis", {}).get("0-0:96.1.1", {}).get("value")
    elif protocol == "mbus":
        value = reading.get("id")
    else:
        value = reading.get("meterNumber")
    return value if isinstance(value, str) and value else None
