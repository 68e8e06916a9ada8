"""Configuration of ``mbuspico serve``: environment, TOML file, command-line flags.

Every setting has MBusPico's environment variable where MBusPico has one (so an
existing MBusPico setup keeps working), a TOML key, and a flag. Later sources
override earlier ones: defaults < environment < ``--config`` file < flags.
An invalid value raises :class:`ConfigError`, whose message is one line naming
the setting and where the value came from, never the value of a secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import MbusPicoError
from ..profiles import Profile
from ..simulate import DEMO_AUTH_KEY, DEMO_KEY

__all__ = [
    "DEMO_AUTH_KEY",
    "DEMO_KEY",
    "DEVICES",
    "SECTIONS",
    "SETTINGS",
    "SOURCES",
    "Config",
    "ConfigError",
    "Setting",
    "load",
    "remove_leftover_temp_files",
    "update",
]

DEVICES: dict[str, str] = {
    "KAIFA_MA309M_NETZNOE": "kaifa-ma309m-netznoe",
    "SAGEMCOM_T210D": "sagemcom-t210d-netznoe",
    "KSM_WEST": "ksm-west",
}
"""MBusPico's ``MBUSPICO_DEVICE`` values and the meter profile each selects.
``MBUSPICO_DEVICE`` also takes any profile name of :data:`mbuspico.profiles.PROFILES`
(``wienernetze-im350``, ``burgenland-e450``, ``dsmr5``, ...): the profile gives
the protocol and serial settings unless they are set, the checks telegrams must
pass, and the simulated meter of ``--demo``."""


class ConfigError(MbusPicoError, ValueError):
    """Raised for an invalid setting; the message names it and its source."""


class _UnshownValueError(ValueError):
    """A parse error whose message says all: the value given is not repeated.

    The value may hold a password, or the message already shows it in full.
    """


def _text(value: Any) -> str:
    if not isinstance(value, str):
        msg = "must be text"
        raise ValueError(msg)
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    msg = "must be true or false"
    raise ValueError(msg)


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            number = None
        if number is None or isinstance(value, bool) or not low <= number <= high:
            msg = f"must be a whole number from {low} to {high}"
            raise ValueError(msg)
        return number

    return parse


def _seconds(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 < number < 86_400 * 365:
        msg = "must be a number of seconds above 0"
        raise ValueError(msg)
    return number


def _key(value: Any) -> str | None:
    text = "".join(_text(value).split())
    if not text:
        return None
    if len(text) != 32 or any(c not in string.hexdigits for c in text):
        msg = f"must be 32 hexadecimal digits (the value given has {len(text)} characters)"
        raise ValueError(msg)
    return text


def _device(value: Any) -> str:
    from ..profiles import PROFILES, find

    text = _text(value).strip()
    if text.lower() == "auto":
        return "auto"
    if text.upper() in DEVICES:
        return text.upper()
    try:
        return find(text).name
    except ValueError:
        msg = f"unknown device {text!r}; one of auto, {', '.join((*DEVICES, *PROFILES))}"
        raise ValueError(msg) from None


def _parity(value: Any) -> str:
    text = _text(value).strip().lower()
    if text not in ("even", "none", "odd"):
        msg = 'must be "even", "none" or "odd"'
        raise ValueError(msg)
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            msg = "must be one of " + ", ".join(f'"{c}"' for c in choices)
            raise ValueError(msg)
        return text

    return parse


def _optional(value: Any) -> str | None:
    text = _text(value).strip()
    return text or None


def _zone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = _text(value).strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        msg = 'must be an IANA time zone such as "Europe/Amsterdam"'
        raise ValueError(msg) from None
    return text


def _code_table(value: Any) -> str | None:
    from ..dsmr import load_names

    text = _optional(value)
    if text is not None:
        try:
            load_names(text)
        except OSError as e:
            msg = f"cannot read the code table: {e.strerror}"
            raise ValueError(msg) from None
        except ValueError as e:  # bad TOML (TOMLDecodeError) or a bad entry
            msg = f"not a valid code table: {e}"
            raise ValueError(msg) from None
    return text


def _interval(value: Any) -> float:
    """Seconds between periodic messages; 0 turns them off."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number < 86_400 * 365:
        msg = "must be a number of seconds, 0 (off) or more"
        raise ValueError(msg)
    return number


def _instance_name(value: Any) -> str | None:
    """An mDNS service instance name (RFC 6763 section 4.1.1: at most 63 bytes of UTF-8)."""
    text = _optional(value)
    if text is None:
        return None
    if len(text.encode("utf-8")) > 63 or any(not c.isprintable() for c in text):
        msg = "must be at most 63 bytes (UTF-8) of printable text"
        raise ValueError(msg)
    return text


def _address(value: Any) -> str:
    text = _text(value).strip()
    if text.isdigit() and 0 <= int(text) <= 250:
        return text
    if len(text) == 16 and all(c in string.hexdigits for c in text):
        return text.upper()
    msg = "must be a primary address 0..250 or a 16-digit secondary address"
    raise ValueError(msg)


def _topic_prefix(value: Any) -> str:
    """An MQTT topic prefix: empty (topics at the top level) or topic levels without wildcards."""
    text = _text(value).strip().strip("/")
    if any(c in text for c in "+#\0"):
        msg = "must be a topic without the MQTT wildcards + and # (or empty: topics at the top)"
        raise ValueError(msg)
    return text


def _listen_host(value: Any) -> str:
    """The address HTTP listens on: an IP address or a name that resolves (empty: every one)."""
    import ipaddress
    import socket

    text = _text(value).strip()
    if not text:
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return text
    try:
        socket.getaddrinfo(text, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as e:  # gaierror; UnicodeError for a label too long
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        msg = f"must be an IP address or a host name that resolves ({reason})"
        raise ValueError(msg) from None
    return text


def _readable_file(value: Any) -> str | None:
    """A file the service reads (a TLS certificate or key): it must exist and be readable."""
    text = _optional(value)
    if text is None:
        return None
    try:
        if not stat.S_ISREG(os.stat(text).st_mode):
            msg = f"{text} is not a file"
            raise _UnshownValueError(msg)
        with open(text, "rb"):
            pass
    except OSError as e:
        msg = f"cannot read {text}: {e.strerror or e}"
        raise _UnshownValueError(msg) from None
    return text


def _influx_url(value: Any) -> str | None:
    """An InfluxDB base URL: http:// or https://, a host, no credentials.

    No error repeats the value: a URL may carry a password.
    """
    from urllib.parse import urlsplit

    text = _optional(value)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        msg = "must be a URL such as http://host:8086 (the value given does not parse)"
        raise _UnshownValueError(msg) from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        msg = (
            "must not hold credentials (user:password@): set influx.user and "
            "influx.password (InfluxDB 1.x) or influx.token (InfluxDB 2) instead"
        )
        raise _UnshownValueError(msg)
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f'"{parts.scheme}://"' if parts.scheme.isalnum() else "something else"
        msg = f"must start with http:// or https://, not {scheme}, as in http://host:8086"
        raise _UnshownValueError(msg)
    if not parts.hostname:
        msg = "must name a host, as in http://host:8086"
        raise _UnshownValueError(msg)
    return text


def _history_path(value: Any) -> str | None:
    """The history's file: an absolute path, or empty for the default."""
    text = _optional(value)
    if text is not None and not os.path.isabs(text):
        msg = "must be an absolute path (the service does not run in your working directory)"
        raise ValueError(msg)
    return text


def _writable_directory(text: str) -> None:
    """Raise ValueError unless ``text`` is an absolute path to a writable directory.

    The directory must exist, or be one that can be made in a writable one.
    """
    path = Path(text)
    if not path.is_absolute():
        msg = "must be an absolute path (the service does not run in your working directory)"
        raise ValueError(msg)
    probe = Path(os.path.realpath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        msg = f"{probe} is not a directory"
        raise ValueError(msg)
    if not os.access(probe, os.W_OK | os.X_OK):
        msg = f"the service cannot write in {probe}"
        raise ValueError(msg)


MQTT_MODE_NUMBERS = {"0": "evn-raw", "1": "evn-topics", "2": "evn-json"}
"""EVN Kaifa to MQTT's message modes (0 raw, 1 topics, 2 json) as mbuspico's modes."""


def _mqtt_mode(value: Any) -> str:
    text = _text(str(value) if isinstance(value, int) and not isinstance(value, bool) else value)
    text = text.strip().lower()
    text = MQTT_MODE_NUMBERS.get(text, text)
    if text not in ("mbuspico", "evn-raw", "evn-topics", "evn-json", "obis"):
        msg = (
            "must be one of mbuspico, evn-raw, evn-topics, evn-json, obis "
            "(or EVN's numbers: 0 raw, 1 topics, 2 json)"
        )
        raise ValueError(msg)
    return text


def _fingerprint(value: Any) -> str | None:
    """A certificate fingerprint: SHA-1 (40 hex digits) or SHA-256 (64), ``:`` and spaces allowed.

    EVN Kaifa to MQTT's ``[insecure]`` (no pinning) is taken as unset.
    """
    text = _text(value).strip()
    if not text or text.lower() == "[insecure]":
        return None
    digits = "".join(c for c in text if c not in ": ").lower()
    if len(digits) not in (40, 64) or any(c not in string.hexdigits for c in digits):
        msg = (
            "must be the broker certificate's SHA-1 (40 hex digits) or SHA-256 (64) "
            f"fingerprint (the value given has {len(digits)} digits)"
        )
        raise ValueError(msg)
    return digits


LOG_LEVELS = {
    "log_none": "none",
    "log_error": "error",
    "log_warning": "warning",
    "log_info": "info",
    "log_debug": "debug",
}
"""MBusPico's ``MBUSPICO_LOG_LEVEL`` values and mbuspico's level names."""


def _log_level(value: Any) -> str:
    text = _text(value).strip().lower()
    text = LOG_LEVELS.get(text, text)
    if text not in LOG_LEVELS.values():
        msg = (
            "must be LOG_NONE, LOG_ERROR, LOG_INFO or LOG_DEBUG "
            "(or none, error, warning, info, debug)"
        )
        raise ValueError(msg)
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its name on :class:`Config` and in each source.

    ``section``, ``label`` and ``applies`` are for people (the settings page,
    ``GET /api/settings``): the part of the service it belongs to (one of
    :data:`SECTIONS`; empty: the section named by the TOML key's table), a
    short name, and what a change on the page does: ``"now"`` applied at once,
    ``"restart"`` saved and in effect from the next start, ``"file"`` not
    changeable on the page (edit the file, then restart).
    """

    name: str
    env: str | None
    toml: str
    flag: str
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    section: str = ""
    label: str = ""
    applies: str = "file"


SECTIONS: tuple[str, ...] = (
    "Meter",
    "HTTP",
    "UDP",
    "MQTT",
    "CSV",
    "Graphite",
    "InfluxDB",
    "mDNS",
    "History",
    "Logging",
)
"""The sections of the settings page, in its order (:attr:`Setting.section`)."""

SOURCES: tuple[str, ...] = ("default", "profile", "environment", "file", "flag", "demo")
"""Where a setting's value comes from (:attr:`Config.sources`): MBusPico's
default, the meter profile ``device`` selects (protocol, serial settings, time
zone), an environment variable, the ``--config`` file (or a change saved by
the settings page), a command-line flag, or ``--demo`` (its own defaults, and
at run time the simulated meter's port and keys)."""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "log_level",
        "MBUSPICO_LOG_LEVEL",
        "log.level",
        "--log-level",
        _log_level,
        "log verbosity: LOG_NONE, LOG_ERROR, LOG_INFO or LOG_DEBUG (each telegram)",
        section="Logging",
        label="Log level",
        applies="now",
    ),
    Setting(
        "device",
        "MBUSPICO_DEVICE",
        "device",
        "--device",
        _device,
        "meter profile (see Supported meters) or auto",
        section="Meter",
        label="Meter profile",
        applies="restart",
    ),
    Setting(
        "key",
        "MBUSPICO_DEVICE_KEY",
        "key",
        "--key",
        _key,
        "encryption key (32 hex)",
        secret=True,
        section="Meter",
        label="Decryption key",
        applies="restart",
    ),
    Setting(
        "auth_key",
        "MBUSPICO_DEVICE_AUTH_KEY",
        "auth_key",
        "--auth-key",
        _key,
        "authentication key, for meters with a tag (32 hex)",
        secret=True,
        section="Meter",
        label="Authentication key",
        applies="restart",
    ),
    Setting(
        "protocol",
        "MBUSPICO_PROTOCOL",
        "protocol",
        "--protocol",
        _choice("dlms", "dsmr", "mbus", "auto"),
        "dlms push, dsmr (P1 port), mbus (poll a wired meter), or auto (DLMS or P1, "
        "from the first telegram)",
        section="Meter",
        label="Protocol",
        applies="restart",
    ),
    Setting(
        "serial_port",
        "MBUSPICO_SERIAL_PORT",
        "serial.port",
        "--port",
        _text,
        "the serial device the meter is on (/dev/ttyAMA0, /dev/ttyUSB0, ...)",
        section="Meter",
        label="Serial port",
        applies="restart",
    ),
    Setting(
        "baudrate",
        "MBUSPICO_SERIAL_BAUDRATE",
        "serial.baudrate",
        "--baudrate",
        _int(50, 4_000_000),
        "serial speed in baud",
        section="Meter",
        label="Baud rate",
        applies="restart",
    ),
    Setting(
        "parity",
        "MBUSPICO_SERIAL_PARITY",
        "serial.parity",
        "--parity",
        _parity,
        "serial parity: even, none or odd",
        section="Meter",
        label="Parity",
        applies="restart",
    ),
    Setting(
        "http_enabled",
        "MBUSPICO_HTTP_ENABLED",
        "http.enabled",
        "--http",
        _bool,
        "serve HTTP: the JSON, the pages and the settings page",
        section="HTTP",
        label="HTTP server",
        applies="file",
    ),
    Setting(
        "http_host",
        "MBUSPICO_HTTP_HOST",
        "http.host",
        "--http-host",
        _listen_host,
        "address HTTP listens on (0.0.0.0: every IPv4 address)",
        section="HTTP",
        label="Listen address",
        applies="restart",
    ),
    Setting(
        "http_port",
        "MBUSPICO_HTTP_SERVER_PORT",
        "http.port",
        "--http-port",
        _int(0, 65535),
        "TCP port HTTP listens on",
        section="HTTP",
        label="Port",
        applies="restart",
    ),
    Setting(
        "http_user",
        "MBUSPICO_HTTP_AUTH_USER",
        "http.user",
        "--http-user",
        _text,
        "user name of the Basic authentication every request needs (with a password)",
        section="HTTP",
        label="User name",
        applies="now",
    ),
    Setting(
        "http_password",
        "MBUSPICO_HTTP_AUTH_PWD",
        "http.password",
        "--http-password",
        _text,
        "password of the Basic authentication every request needs",
        secret=True,
        section="HTTP",
        label="Password",
        applies="now",
    ),
    Setting(
        "http_max_connections",
        "MBUSPICO_HTTP_MAX_CONNECTIONS",
        "http.max_connections",
        "--http-max-connections",
        _int(1, 4096),
        "HTTP connections at once; more are refused at once (503)",
        section="HTTP",
        label="Connections at once",
        applies="restart",
    ),
    Setting(
        "http_header_timeout",
        "MBUSPICO_HTTP_HEADER_TIMEOUT_S",
        "http.header_timeout",
        "--http-header-timeout",
        _seconds,
        "seconds a client has to send a request's headers (and body); then 408",
        section="HTTP",
        label="Header timeout (s)",
        applies="restart",
    ),
    Setting(
        "http_max_header_bytes",
        "MBUSPICO_HTTP_MAX_HEADER_BYTES",
        "http.max_header_bytes",
        "--http-max-header-bytes",
        _int(1024, 1 << 20),
        "bytes of a request line and headers; more is refused (431)",
        section="HTTP",
        label="Header size limit (bytes)",
        applies="restart",
    ),
    Setting(
        "http_max_headers",
        "MBUSPICO_HTTP_MAX_HEADERS",
        "http.max_headers",
        "--http-max-headers",
        _int(4, 1000),
        "header lines of a request; more are refused (431)",
        section="HTTP",
        label="Header line limit",
        applies="restart",
    ),
    Setting(
        "http_max_body",
        "MBUSPICO_HTTP_MAX_BODY",
        "http.max_body",
        "--http-max-body",
        _int(0, 16 << 20),
        "bytes of a request body; more is refused (413)",
        section="HTTP",
        label="Body size limit (bytes)",
        applies="restart",
    ),
    Setting(
        "http_max_event_streams",
        "MBUSPICO_HTTP_MAX_EVENT_STREAMS",
        "http.max_event_streams",
        "--http-max-event-streams",
        _int(0, 1024),
        "live dashboards at once (event streams, each also an HTTP connection); more: 503",
        section="HTTP",
        label="Live dashboards at once",
        applies="restart",
    ),
    Setting(
        "http_serve_stale",
        "MBUSPICO_HTTP_SERVE_STALE",
        "http.serve_stale",
        "--http-serve-stale",
        _bool,
        "GET / keeps answering 200 with the last reading when it is stale (MBusPico)",
        section="HTTP",
        label="Serve stale readings",
        applies="now",
    ),
    Setting(
        "stale_after",
        "MBUSPICO_STALE_AFTER_S",
        "stale_after",
        "--stale-after",
        _interval,
        "seconds without a reading before it is stale (0: 3x the meter's interval, >= 10 s)",
        section="Meter",
        label="Stale after (s)",
        applies="now",
    ),
    Setting(
        "mdns_enabled",
        "MBUSPICO_MDNS_ENABLED",
        "mdns.enabled",
        "--mdns",
        _bool,
        "announce the HTTP service by mDNS (_http._tcp)",
        section="mDNS",
        label="Announce by mDNS",
        applies="restart",
    ),
    Setting(
        "mdns_name",
        "MBUSPICO_MDNS_NAME",
        "mdns.name",
        "--mdns-name",
        _instance_name,
        "mDNS instance name (default mbuspico-<meter number>)",
        section="mDNS",
        label="Instance name",
        applies="restart",
    ),
    Setting(
        "udp_enabled",
        "MBUSPICO_UDP_ENABLED",
        "udp.enabled",
        "--udp",
        _bool,
        "send MBusPico's JSON to a UDP receiver",
        section="UDP",
        label="Send UDP",
        applies="now",
    ),
    Setting(
        "udp_host",
        "MBUSPICO_UDP_RECEIVER_HOST",
        "udp.host",
        "--udp-host",
        _text,
        "host the UDP datagrams go to",
        section="UDP",
        label="Receiver host",
        applies="now",
    ),
    Setting(
        "udp_port",
        "MBUSPICO_UDP_RECEIVER_PORT",
        "udp.port",
        "--udp-port",
        _int(0, 65535),
        "port the UDP datagrams go to (must be set when UDP is on)",
        section="UDP",
        label="Receiver port",
        applies="now",
    ),
    Setting(
        "udp_interval",
        "MBUSPICO_UDP_INTERVAL_S",
        "udp.interval",
        "--udp-interval",
        _seconds,
        "seconds between UDP packets",
        section="UDP",
        label="Interval (s)",
        applies="now",
    ),
    Setting(
        "tz",
        "MBUSPICO_TZ",
        "dsmr.tz",
        "--tz",
        _zone,
        "the meter's time zone: of P1 timestamps, and of the history's days and months",
        section="Meter",
        label="Time zone",
        applies="restart",
    ),
    Setting(
        "names_file",
        "MBUSPICO_DSMR_NAMES",
        "dsmr.names",
        "--dsmr-names",
        _code_table,
        "OBIS code table (TOML) naming P1 values and MQTT topics",
        section="Meter",
        label="P1 code table",
        applies="restart",
    ),
    Setting(
        "mbus_address",
        "MBUSPICO_MBUS_ADDRESS",
        "mbus.address",
        "--mbus-address",
        _address,
        "wired M-Bus meter to poll (primary or secondary address)",
        section="Meter",
        label="M-Bus address",
        applies="restart",
    ),
    Setting(
        "mbus_interval",
        "MBUSPICO_MBUS_INTERVAL_S",
        "mbus.interval",
        "--mbus-interval",
        _seconds,
        "seconds between M-Bus polls",
        section="Meter",
        label="M-Bus poll interval (s)",
        applies="now",
    ),
    Setting(
        "mqtt_enabled",
        "MBUSPICO_MQTT_ENABLED",
        "mqtt.enabled",
        "--mqtt",
        _bool,
        "publish the readings to an MQTT broker",
        section="MQTT",
        label="Publish to MQTT",
        applies="now",
    ),
    Setting(
        "mqtt_host",
        "MBUSPICO_MQTT_BROKER_ADDRESS",
        "mqtt.host",
        "--mqtt-host",
        _text,
        "MQTT broker host name or address",
        section="MQTT",
        label="Broker host",
        applies="now",
    ),
    Setting(
        "mqtt_port",
        "MBUSPICO_MQTT_BROKER_PORT",
        "mqtt.port",
        "--mqtt-port",
        _int(1, 65535),
        "MQTT broker port",
        section="MQTT",
        label="Broker port",
        applies="now",
    ),
    Setting(
        "mqtt_user",
        "MBUSPICO_MQTT_AUTH_USER",
        "mqtt.user",
        "--mqtt-user",
        _optional,
        "MQTT user name (none: anonymous)",
        section="MQTT",
        label="User name",
        applies="now",
    ),
    Setting(
        "mqtt_password",
        "MBUSPICO_MQTT_AUTH_PWD",
        "mqtt.password",
        "--mqtt-password",
        _optional,
        "MQTT password",
        secret=True,
        section="MQTT",
        label="Password",
        applies="now",
    ),
    Setting(
        "mqtt_prefix",
        "MBUSPICO_MQTT_TOPIC_PREFIX",
        "mqtt.topic_prefix",
        "--mqtt-prefix",
        _topic_prefix,
        "MQTT topic prefix (empty: topics at the top level)",
        section="MQTT",
        label="Topic prefix",
        applies="now",
    ),
    Setting(
        "mqtt_mode",
        "MBUSPICO_MQTT_MODE",
        "mqtt.mode",
        "--mqtt-mode",
        _mqtt_mode,
        "MQTT topics: mbuspico, evn-raw, evn-topics, evn-json or obis (EVN's 0, 1, 2)",
        section="MQTT",
        label="Topic layout",
        applies="now",
    ),
    Setting(
        "mqtt_client_id",
        "MBUSPICO_MQTT_CLIENT_ID",
        "mqtt.client_id",
        "--mqtt-client-id",
        _optional,
        "MQTT client id",
        section="MQTT",
        label="Client id",
        applies="now",
    ),
    Setting(
        "mqtt_qos",
        "MBUSPICO_MQTT_QOS",
        "mqtt.qos",
        "--mqtt-qos",
        _int(0, 2),
        "MQTT quality of service: 0 at most once, 1 at least once, 2 exactly once",
        section="MQTT",
        label="QoS",
        applies="now",
    ),
    Setting(
        "mqtt_retain",
        "MBUSPICO_MQTT_RETAIN",
        "mqtt.retain",
        "--mqtt-retain",
        _bool,
        "MQTT retain: the broker keeps each topic's last value for new subscribers",
        section="MQTT",
        label="Retain messages",
        applies="now",
    ),
    Setting(
        "mqtt_tls",
        "MBUSPICO_MQTT_TLS",
        "mqtt.tls",
        "--mqtt-tls",
        _bool,
        "connect to the MQTT broker over TLS",
        section="MQTT",
        label="TLS",
        applies="now",
    ),
    Setting(
        "mqtt_ca_file",
        "MBUSPICO_MQTT_CA_FILE",
        "mqtt.ca_file",
        "--mqtt-ca-file",
        _readable_file,
        "CA certificate file (TLS)",
        section="MQTT",
        label="CA certificate file",
        applies="now",
    ),
    Setting(
        "mqtt_cert_file",
        "MBUSPICO_MQTT_CERT_FILE",
        "mqtt.cert_file",
        "--mqtt-cert-file",
        _readable_file,
        "client certificate file (TLS)",
        section="MQTT",
        label="Client certificate file",
        applies="now",
    ),
    Setting(
        "mqtt_key_file",
        "MBUSPICO_MQTT_KEY_FILE",
        "mqtt.key_file",
        "--mqtt-key-file",
        _readable_file,
        "client key file (TLS)",
        section="MQTT",
        label="Client key file",
        applies="now",
    ),
    Setting(
        "mqtt_fingerprint",
        "MBUSPICO_MQTT_FINGERPRINT",
        "mqtt.fingerprint",
        "--mqtt-fingerprint",
        _fingerprint,
        "pin the broker's certificate by its SHA-1 or SHA-256 fingerprint (turns TLS on)",
        section="MQTT",
        label="Certificate fingerprint",
        applies="now",
    ),
    Setting(
        "mqtt_tls_insecure",
        "MBUSPICO_MQTT_TLS_INSECURE",
        "mqtt.tls_insecure",
        "--mqtt-tls-insecure",
        _bool,
        "skip the broker certificate check",
        section="MQTT",
        label="Skip certificate check",
        applies="now",
    ),
    Setting(
        "mqtt_discovery",
        "MBUSPICO_MQTT_DISCOVERY",
        "mqtt.discovery",
        "--mqtt-discovery",
        _bool,
        "Home Assistant MQTT discovery",
        section="MQTT",
        label="Home Assistant discovery",
        applies="now",
    ),
    Setting(
        "mqtt_discovery_prefix",
        "MBUSPICO_MQTT_DISCOVERY_PREFIX",
        "mqtt.discovery_prefix",
        "--mqtt-discovery-prefix",
        _text,
        "topic prefix of Home Assistant MQTT discovery",
        section="MQTT",
        label="Discovery prefix",
        applies="now",
    ),
    Setting(
        "mqtt_telegram_json",
        "MBUSPICO_MQTT_TELEGRAM_JSON",
        "mqtt.telegram_json",
        "--mqtt-telegram-json",
        _bool,
        "obis mode: also the whole reading as JSON",
        section="MQTT",
        label="Whole reading as JSON",
        applies="now",
    ),
    Setting(
        "mqtt_status_interval",
        "MBUSPICO_MQTT_STATUS_INTERVAL_S",
        "mqtt.status_interval",
        "--mqtt-status-interval",
        _interval,
        "seconds between statistics on <prefix>/status (0: off)",
        section="MQTT",
        label="Status interval (s)",
        applies="now",
    ),
    Setting(
        "mqtt_buffer",
        "MBUSPICO_MQTT_BUFFER",
        "mqtt.buffer",
        "--mqtt-buffer",
        _int(1, 1_000_000),
        "readings kept while the broker is away (the oldest dropped beyond)",
        section="MQTT",
        label="Buffer (readings)",
        applies="now",
    ),
    Setting(
        "csv_directory",
        "MBUSPICO_CSV_DIRECTORY",
        "csv.directory",
        "--csv-directory",
        _optional,
        "CSV log directory (one file a month; off when empty)",
        section="CSV",
        label="Log directory",
        applies="restart",
    ),
    Setting(
        "graphite_host",
        "MBUSPICO_GRAPHITE_HOST",
        "graphite.host",
        "--graphite-host",
        _optional,
        "Graphite (carbon) host; off when empty",
        section="Graphite",
        label="Carbon host",
        applies="now",
    ),
    Setting(
        "graphite_port",
        "MBUSPICO_GRAPHITE_PORT",
        "graphite.port",
        "--graphite-port",
        _int(1, 65535),
        "Graphite plaintext port",
        section="Graphite",
        label="Port",
        applies="now",
    ),
    Setting(
        "graphite_prefix",
        "MBUSPICO_GRAPHITE_PREFIX",
        "graphite.prefix",
        "--graphite-prefix",
        _text,
        "Graphite metric prefix",
        section="Graphite",
        label="Metric prefix",
        applies="now",
    ),
    Setting(
        "influx_url",
        "MBUSPICO_INFLUX_URL",
        "influx.url",
        "--influx-url",
        _influx_url,
        "InfluxDB URL, e.g. http://host:8086; off when empty",
        section="InfluxDB",
        label="URL",
        applies="now",
    ),
    Setting(
        "influx_version",
        "MBUSPICO_INFLUX_VERSION",
        "influx.version",
        "--influx-version",
        _int(1, 2),
        "InfluxDB API version (1 or 2)",
        section="InfluxDB",
        label="API version",
        applies="now",
    ),
    Setting(
        "influx_database",
        "MBUSPICO_INFLUX_DATABASE",
        "influx.database",
        "--influx-database",
        _optional,
        "InfluxDB 1.x database",
        section="InfluxDB",
        label="Database (1.x)",
        applies="now",
    ),
    Setting(
        "influx_user",
        "MBUSPICO_INFLUX_USER",
        "influx.user",
        "--influx-user",
        _optional,
        "InfluxDB 1.x user",
        section="InfluxDB",
        label="User (1.x)",
        applies="now",
    ),
    Setting(
        "influx_password",
        "MBUSPICO_INFLUX_PASSWORD",
        "influx.password",
        "--influx-password",
        _optional,
        "InfluxDB 1.x password",
        secret=True,
        section="InfluxDB",
        label="Password (1.x)",
        applies="now",
    ),
    Setting(
        "influx_buffer",
        "MBUSPICO_INFLUX_BUFFER",
        "influx.buffer",
        "--influx-buffer",
        _int(1, 10_000_000),
        "readings kept while InfluxDB is away (the oldest dropped beyond)",
        section="InfluxDB",
        label="Buffer (readings)",
        applies="now",
    ),
    Setting(
        "influx_org",
        "MBUSPICO_INFLUX_ORG",
        "influx.org",
        "--influx-org",
        _optional,
        "InfluxDB 2 org",
        section="InfluxDB",
        label="Organisation (2)",
        applies="now",
    ),
    Setting(
        "influx_bucket",
        "MBUSPICO_INFLUX_BUCKET",
        "influx.bucket",
        "--influx-bucket",
        _optional,
        "InfluxDB 2 bucket",
        section="InfluxDB",
        label="Bucket (2)",
        applies="now",
    ),
    Setting(
        "influx_token",
        "MBUSPICO_INFLUX_TOKEN",
        "influx.token",
        "--influx-token",
        _optional,
        "InfluxDB 2 token",
        secret=True,
        section="InfluxDB",
        label="Token (2)",
        applies="now",
    ),
    Setting(
        "history_enabled",
        "MBUSPICO_HISTORY_ENABLED",
        "history.enabled",
        "--history",
        _bool,
        "keep a history of the readings in SQLite (the dashboard's plots, /api/history)",
        section="History",
        label="Keep a history",
        applies="restart",
    ),
    Setting(
        "history_path",
        "MBUSPICO_HISTORY_PATH",
        "history.path",
        "--history-path",
        _history_path,
        "the history's SQLite file (default: history.sqlite3 in $STATE_DIRECTORY, "
        "else in ~/.local/state/mbuspico)",
        section="History",
        label="History file",
        applies="restart",
    ),
    Setting(
        "history_days",
        "MBUSPICO_HISTORY_DAYS",
        "history.days",
        "--history-days",
        _int(1, 36_500),
        "days of per-minute values kept (hourly ones are kept for ever)",
        section="History",
        label="Minute values kept (days)",
        applies="restart",
    ),
    Setting(
        "history_raw_days",
        "MBUSPICO_HISTORY_RAW_DAYS",
        "history.raw_days",
        "--history-raw-days",
        _int(0, 366),
        "days of every reading's power kept (0: none)",
        section="History",
        label="Every reading kept (days)",
        applies="restart",
    ),
)
"""Every setting, in the order of the README table."""


@dataclass(frozen=True)
class Config:
    """The settings of ``mbuspico serve`` (defaults as in MBusPico)."""

    log_level: str = "info"
    device: str = "auto"
    protocol: str = "dlms"
    key: str | None = dataclasses.field(default=None, repr=False)
    auth_key: str | None = dataclasses.field(default=None, repr=False)
    serial_port: str | None = None
    baudrate: int = 2400
    parity: str = "even"
    http_enabled: bool = True
    http_host: str = "0.0.0.0"  # noqa: S104 - a home service for the LAN, as MBusPico
    http_port: int = 80
    http_user: str = ""
    http_password: str = dataclasses.field(default="", repr=False)
    http_max_connections: int = 64
    http_header_timeout: float = 10.0
    http_max_header_bytes: int = 8192
    http_max_headers: int = 64
    http_max_body: int = 65536
    http_max_event_streams: int = 8
    http_serve_stale: bool = False
    stale_after: float = 0.0
    mdns_enabled: bool = True
    mdns_name: str | None = None
    udp_enabled: bool = False
    udp_host: str = "127.0.0.1"
    udp_port: int = 0
    udp_interval: float = 30.0
    tz: str = "Europe/Amsterdam"
    names_file: str | None = None
    mbus_address: str = "0"
    mbus_interval: float = 60.0
    mqtt_enabled: bool = False
    mqtt_host: str = "localhost"
    mqtt_port: int = 1883
    mqtt_user: str | None = None
    mqtt_password: str | None = dataclasses.field(default=None, repr=False)
    mqtt_prefix: str = "mbuspico"
    mqtt_mode: str = "mbuspico"
    mqtt_client_id: str | None = None
    mqtt_qos: int = 0
    mqtt_retain: bool = False
    mqtt_tls: bool = False
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    mqtt_fingerprint: str | None = None
    mqtt_tls_insecure: bool = False
    mqtt_discovery: bool = False
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_telegram_json: bool = False
    mqtt_status_interval: float = 60.0
    mqtt_buffer: int = 3600
    csv_directory: str | None = None
    graphite_host: str | None = None
    graphite_port: int = 2003
    graphite_prefix: str = "mbuspico"
    influx_url: str | None = None
    influx_version: int = 1
    influx_database: str | None = None
    influx_user: str | None = None
    influx_password: str | None = dataclasses.field(default=None, repr=False)
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_token: str | None = dataclasses.field(default=None, repr=False)
    influx_buffer: int = 7200
    history_enabled: bool = True
    history_path: str | None = None
    history_days: int = 730
    history_raw_days: int = 7
    demo: bool = False
    config_file: str | None = None
    """The ``--config`` file the settings came from, as an absolute path (None:
    none); ``POST /settings`` writes changes to it."""
    warnings: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    """Problems worth a warning at start-up (a ``--config`` file with secrets
    that others can read); the service logs each once."""
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    """Where each setting's value came from, by name: one of :data:`SOURCES`
    (a setting missing here has its default). :func:`load` records it;
    :func:`update` marks what it changed as ``"file"``."""

    def source(self, name: str) -> str:
        """Where setting ``name``'s value came from: one of :data:`SOURCES`."""
        return self.sources.get(name, "default")

    @property
    def sinks_enabled(self) -> bool:
        """Whether any sink besides HTTP and UDP is configured."""
        return bool(
            self.mqtt_enabled or self.csv_directory or self.graphite_host or self.influx_url
        )

    @property
    def profile(self) -> Profile | None:
        """The meter profile ``device`` selects; None for ``auto``.

        See :mod:`mbuspico.profiles`; with ``auto`` mbuspico decodes whatever
        the meter sends.
        """
        return _find_profile(self.device)


def _lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _read_toml(path: Path) -> Mapping[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the interpreter
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
            return doc
    except OSError as e:
        msg = f"--config {path}: {e.strerror}"
        raise ConfigError(msg) from e
    except tomllib.TOMLDecodeError as e:
        msg = f"--config {path}: not valid TOML: {e}"
        raise ConfigError(msg) from e
    except UnicodeDecodeError as e:
        msg = f"--config {path}: not valid TOML: not UTF-8 (byte {e.start})"
        raise ConfigError(msg) from e


def _check_keys(doc: Mapping[str, Any], config_file: str | Path) -> None:
    """Refuse keys and tables of the file that are no setting, suggesting the one meant."""
    keys = [s.toml for s in SETTINGS]
    tables = {key.split(".")[0] for key in keys if "." in key}
    for top, sub in doc.items():
        if top in tables:
            if not isinstance(sub, Mapping):
                inside = ", ".join(k.split(".", 1)[1] for k in keys if k.startswith(f"{top}."))
                msg = (
                    f"invalid {top} in {config_file}: must be a table, not a value "
                    f"([{top}] with {inside})"
                )
                raise ConfigError(msg)
            names = [f"{top}.{k}" for k in sub]
        elif "." in top and top in keys:  # "http.port" = 80: a quoted key, not a table
            msg = (
                f"unknown setting {top!r} in {config_file}: a quoted key; write "
                f"{top} = ... without the quotes"
            )
            raise ConfigError(msg)
        elif isinstance(sub, Mapping) and sub:  # a table that is no setting's
            names = [f"{top}.{k}" for k in sub]
        else:
            names = [top]
        for name in names:
            if name not in keys:
                close = difflib.get_close_matches(name, keys, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                msg = f"unknown setting {name!r} in {config_file}{hint}"
                raise ConfigError(msg)


_PARSE_ERRORS = (ValueError, TypeError, OverflowError)
"""What a setting's ``parse`` raises for a bad value (typed values from TOML or JSON too)."""


def _invalid(where: str, setting: Setting, raw: Any, error: Exception) -> ConfigError:
    """The one-line error for a value of ``setting`` from ``where`` that does not parse."""
    hidden = setting.secret or isinstance(error, _UnshownValueError)
    shown = "" if hidden else f" ({str(raw)[:40]!r})"
    return ConfigError(f"invalid {where}{shown}: {error}")


def _exposed_secrets(path: Path, doc: Mapping[str, Any]) -> str | None:
    """A warning when ``path`` holds secrets and group or others may read it."""
    held = [s.toml for s in SETTINGS if s.secret and _lookup(doc, s.toml) is not None]
    if not held or os.name == "nt":  # Windows has no mode bits to check
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"--config {path} holds {', '.join(held)} and group or others have access to it "
        f"(mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}"
    )


def _find_profile(device: str) -> Profile | None:
    """The profile of a ``device`` value; None for ``auto``."""
    from ..profiles import find

    return None if device == "auto" else find(DEVICES.get(device, device))


DEMO_DEFAULTS: dict[str, Any] = {"http_port": 8080, "http_host": "127.0.0.1", "mdns_enabled": False}
"""What ``--demo`` sets where no source does: the simulated meter stays on this host."""


TEMP_SUFFIX = ".tmp"
"""The temporary file of :func:`mbuspico.serve.settings_page.write_settings` is
``.<name>.<random>.tmp`` beside the file (``<random>``: :func:`tempfile.mkstemp`'s
letters, digits and ``_``)."""


def temp_prefix(target: Path) -> str:
    """The start of a temporary file's name beside ``target`` (see :data:`TEMP_SUFFIX`)."""
    return f".{target.name}."


def remove_leftover_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a settings save of ``path`` left behind.

    A save cut short (the process killed, the power lost) between making its
    temporary file and renaming it leaves the file behind, mode 0600 and
    holding the secrets. :func:`load` calls this at every start with a
    ``--config`` file. Only files named as
    :func:`mbuspico.serve.settings_page.write_settings` names them
    (``.<name>.<random>.tmp``), beside the file (a symlink's target, as
    written), regular and owned by this user, are removed; errors are ignored.

    Returns:
        The files removed.

    """
    target = Path(os.path.realpath(path))
    pattern = re.compile(re.escape(temp_prefix(target)) + r"[a-z0-9_]+" + re.escape(TEMP_SUFFIX))
    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if not pattern.fullmatch(name):
            continue
        tmp = target.parent / name
        try:
            st = tmp.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                continue
            tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
    return removed


def load(
    env: Mapping[str, str],
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    *,
    demo: bool = False,
) -> Config:
    """Build the configuration from the environment, a TOML file and flags.

    A temporary file left beside ``config_file`` by a settings save that was
    cut short is removed here (:func:`remove_leftover_temp_files`), with a
    warning in :attr:`Config.warnings`.

    Args:
        env: Environment variables (``os.environ``).
        config_file: A TOML file, or None.
        flags: Values from the command line by setting name; None means unset.
        demo: Serve the simulated meter: key and serial port need not be
            configured, and where no source sets them HTTP listens on
            127.0.0.1 port 8080 and mDNS is off.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: A value is invalid, a required setting is missing, the
            file cannot be read or holds a key that is no setting; the message
            names the setting and its source.

    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}  # the kind of each source, for Config.sources
    doc = _read_toml(Path(config_file)) if config_file is not None else {}
    if config_file is not None:
        _check_keys(doc, config_file)
    for s in SETTINGS:
        candidates = [
            (env.get(s.env) if s.env else None, f"environment variable {s.env}", "environment"),
            (_lookup(doc, s.toml), f"{s.toml} in {config_file}", "file"),
            ((flags or {}).get(s.name), s.flag, "flag"),
        ]
        for raw, source, origin in candidates:
            if raw is None:
                continue
            try:
                values[s.name] = s.parse(raw)
            except _PARSE_ERRORS as e:
                raise _invalid(source, s, raw, e) from None
            sources[s.name] = source
            origins[s.name] = origin
    if demo:  # the simulated meter stays on this host unless a source says otherwise
        for name, value in DEMO_DEFAULTS.items():
            if name not in values:
                values[name] = value
                origins[name] = "demo"
    profile = _find_profile(values.get("device", Config.device))
    if profile is not None and "protocol" not in values:
        values["protocol"] = profile.protocol
        origins["protocol"] = "profile"
    elif profile is not None and values["protocol"] != profile.protocol:
        msg = (
            f"invalid {sources['protocol']}: device {values['device']} is a "
            f"{profile.protocol} meter, not {values['protocol']}"
        )
        raise ConfigError(msg)
    # Serial settings: the profile's, unless set; a P1 port without a matching
    # profile runs 115200 8N1.
    protocol = values.get("protocol", Config.protocol)
    if profile is not None:
        for name in ("baudrate", "parity", "tz"):
            if name not in values:
                values[name] = getattr(profile, name)
                origins[name] = "profile"
    elif protocol == "dsmr":
        values.setdefault("baudrate", 115200)
        values.setdefault("parity", "none")
    warnings: tuple[str, ...] = ()
    if config_file is not None:
        exposed = _exposed_secrets(Path(config_file), doc)
        warnings = (exposed,) if exposed else ()
        warnings += tuple(
            f"removed {tmp}, left behind by a settings save that was cut short"
            for tmp in remove_leftover_temp_files(config_file)
        )
    config = dataclasses.replace(
        Config(),
        demo=demo,
        warnings=warnings,
        config_file=None if config_file is None else os.path.abspath(config_file),
        sources=origins,
        **values,
    )
    _check(config, sources)
    return config


def _check(config: Config, sources: Mapping[str, str]) -> None:
    """The checks across settings, for :func:`load` and :func:`update`."""
    demo = config.demo
    if not demo:
        if config.key is None and config.protocol == "dlms":
            msg = "missing key: set MBUSPICO_DEVICE_KEY, key in the config file, or --key"
            raise ConfigError(msg)
        if not config.serial_port:
            msg = "missing serial port: set MBUSPICO_SERIAL_PORT, serial.port, or --port"
            raise ConfigError(msg)
    if config.udp_enabled and config.udp_port == 0:
        where = sources.get("udp_port", "MBUSPICO_UDP_RECEIVER_PORT")
        msg = f"invalid {where}: UDP is enabled but the receiver port is 0 (not set)"
        raise ConfigError(msg)
    if demo and config.protocol == "mbus":
        msg = "--demo simulates a DLMS push or P1 meter, not a wired M-Bus one (protocol mbus)"
        raise ConfigError(msg)
    if config.mqtt_enabled and (config.mqtt_tls or config.mqtt_fingerprint):
        _check_tls_files(config, sources)
    if config.influx_url:
        if config.influx_version == 1 and not config.influx_database:
            msg = "missing influx.database: InfluxDB 1.x needs a database"
            raise ConfigError(msg)
        if config.influx_version == 2 and not (config.influx_org and config.influx_bucket):
            msg = "missing influx.org or influx.bucket: InfluxDB 2 needs both"
            raise ConfigError(msg)
    if not (config.http_enabled or config.udp_enabled or config.sinks_enabled):
        msg = (
            "nothing to serve: HTTP (MBUSPICO_HTTP_ENABLED), UDP, MQTT, CSV, Graphite "
            "and InfluxDB are all off"
        )
        raise ConfigError(msg)


def _reason(error: Exception) -> str:
    """An error's text for a one-line message: an OSError's strerror, else its message."""
    text = (error.strerror if isinstance(error, OSError) else None) or str(error)
    return " ".join(text.split())


def _check_tls_files(config: Config, sources: Mapping[str, str]) -> None:
    """The MQTT CA file must hold certificates, the client certificate and key a pair."""
    import ssl

    if config.mqtt_ca_file:
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cafile=config.mqtt_ca_file)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            where = sources.get("mqtt_ca_file", "mqtt.ca_file")
            msg = (
                f"invalid {where}: {config.mqtt_ca_file} holds no usable PEM "
                f"CA certificate ({_reason(e)})"
            )
            raise ConfigError(msg) from None
    if config.mqtt_cert_file:

        def no_password() -> bytes:
            msg = "the key is encrypted; the service cannot ask for its password"
            raise ValueError(msg)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(
                config.mqtt_cert_file, config.mqtt_key_file, password=no_password
            )
        except (OSError, ValueError) as e:
            names = ["mqtt_cert_file"] + (["mqtt_key_file"] if config.mqtt_key_file else [])
            where = " and ".join(sources.get(n, n.replace("_", ".", 1)) for n in names)
            msg = f"invalid {where}: cannot load the client certificate and key ({_reason(e)})"
            raise ConfigError(msg) from None


def update(config: Config, changes: Mapping[str, Any]) -> Config:
    """Validate changed settings against a configuration, as :func:`load` does.

    Each value is parsed by its :data:`SETTINGS` entry (text as in the TOML file
    or the environment, or an already typed value), then the result passes the
    same checks across settings as at start-up. A ``device`` change without a
    ``protocol`` takes the new profile's protocol, as :func:`load` does.
    A ``csv_directory`` (the settings page's) must besides be an absolute path
    to a directory that exists, or can be made, and that the service can write
    in: the service's working directory is not the user's.

    Args:
        config: The configuration to change.
        changes: New values by setting name (``"udp_interval"``, ...).

    Returns:
        A new configuration; ``config`` is unchanged.

    Raises:
        ConfigError: An unknown setting, an invalid value or an invalid
            combination; the message names the setting by its TOML key
            (``invalid udp.interval ('0'): must be a number of seconds above 0``)
            and never shows the value of a secret.

    """
    by_name = {s.name: s for s in SETTINGS}
    sources = {s.name: s.toml for s in SETTINGS}
    values: dict[str, Any] = {}
    for name, raw in changes.items():
        s = by_name.get(name)
        if s is None:
            msg = f"unknown setting {name!r}"
            raise ConfigError(msg)
        try:
            values[name] = s.parse(raw)
            if name == "csv_directory" and values[name] is not None:
                _writable_directory(values[name])
        except _PARSE_ERRORS as e:  # typed values (JSON) too
            raise _invalid(s.toml, s, raw, e) from None
    origins = dict(config.sources)
    origins.update((n, "file") for n, v in values.items() if v != getattr(config, n))
    new = dataclasses.replace(config, sources=origins, **values)
    profile = _find_profile(new.device)
    if profile is not None and new.protocol != profile.protocol:
        if "protocol" in values or "device" not in values:
            msg = (
                f"invalid protocol: device {new.device} is a {profile.protocol} meter, "
                f"not {new.protocol}"
            )
            raise ConfigError(msg)
        origins["protocol"] = "profile"
        new = dataclasses.replace(new, protocol=profile.protocol)
    _check(new, sources)
    return new
