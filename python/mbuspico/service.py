"""``mbuspico serve``: the MBusPico service, HTTP and UDP, next to the meter.

A reader thread keeps the latest reading (:class:`mbuspico.SerialReader`, which
reconnects by itself when the port vanishes); an asyncio loop serves it:

* HTTP (microdot): ``GET /`` MBusPico's JSON exactly (204 before the first
  reading), ``/api/reading`` the full reading, ``/api/status`` counters,
  ``/status.html`` a small page; optional Basic authentication as MBusPico
  (401 without credentials, 403 with wrong ones); ``/reboot`` and ``/update``
  are 404 as MBusPico answers off the Pico.
* UDP: MBusPico's JSON to a receiver every interval, nothing before the first
  reading.
* mDNS: the HTTP endpoint announced as ``_http._tcp.local.``
  (:mod:`mbuspico.mdns`), on unless ``mdns_enabled`` is false.

:meth:`Service.status` (``/api/status``, and ``<prefix>/status`` on MQTT) adds
the telegram counters, memory and CPU temperature (:mod:`mbuspico.stats`).

Source of the behaviour: raven-worx/MBusPico ``python/dist/provider/www.py``,
``udp.py``, ``config.py``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import html
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Union

from . import __version__
from ._core import Decoder, SerialReader
from .compat import to_mbuspico_json
from .config import DEMO_AUTH_KEY, DEMO_KEY, Config, ConfigError
from .sinks import Sink
from .stats import THERMAL_BASE, cpu_temperature, hostname, rss_mib
from .types import DsmrReading, MbusReading, Reading

AnyReading = Union[Reading, DsmrReading, MbusReading]

__all__ = ["BurstFilter", "Service"]

log = logging.getLogger("mbuspico.serve")

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
}


class BurstFilter(logging.Filter):
    """Collapses bursts of "dropped a telegram" warnings to one line a minute.

    The first bad telegram is logged; later ones within ``window`` seconds are
    counted and reported in the next line that passes.
    """

    def __init__(self, window: float = 60.0) -> None:
        """Create the filter."""
        super().__init__()
        self.window = window
        self._since = -window
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the first of a burst through, count the rest."""
        if not str(record.msg).startswith("dropped a telegram"):
            return True
        now = time.monotonic()
        if now - self._since < self.window:
            self._suppressed += 1
            return False
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} more bad telegrams before this)"
            record.args = None
        self._since, self._suppressed = now, 0
        return True


class _State:
    """The latest reading and counters, shared by the reader thread and the servers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reading: AnyReading | None = None
        self.mbuspico_json: str | None = None
        self.reading_at: float | None = None
        self.stats: Mapping[str, object] = {}
        self.connected = False
        self.started = time.time()

    def update(
        self, reading: AnyReading | None, stats: Mapping[str, object], connected: bool
    ) -> None:
        if reading is None:
            text = None
        elif reading["protocol"] == "dlms":
            text = to_mbuspico_json(reading)
        else:  # MBusPico's JSON is a DLMS push reading; other meters get theirs
            text = json.dumps(reading, ensure_ascii=False)
        with self.lock:
            if reading is not None:
                self.reading, self.mbuspico_json, self.reading_at = reading, text, time.time()
            self.stats, self.connected = stats, connected

    def snapshot(self) -> tuple[AnyReading | None, str | None, float | None]:
        with self.lock:
            return self.reading, self.mbuspico_json, self.reading_at


def _checksum_failed(data: bytes) -> bool:
    """Whether a garbled M-Bus answer is one frame whose checksum failed (EN 13757-2 §5)."""
    from .errors import ChecksumError, DecodeError

    try:
        Decoder(protocol="mbus").decode(data)
    except ChecksumError:
        return True
    except DecodeError:
        return False
    return False


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


class Service:
    """The running service: reader thread, HTTP server, UDP sender.

    Args:
        config: The settings (see :mod:`mbuspico.config`).

    Use :meth:`run` to serve until SIGINT/SIGTERM (the command line), or
    :meth:`start` / :meth:`stop` to run it in a background thread (tests,
    embedding).

    """

    def __init__(self, config: Config) -> None:
        """Prepare the service; nothing is opened until it runs."""
        self.config = config
        self.state = _State()
        self.http_port: int | None = None
        """The bound HTTP port once serving (useful with port 0)."""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reader_thread: threading.Thread | None = None
        self._app: Any = None
        self._simulator: Any = None
        self._error: BaseException | None = None
        self.port = config.serial_port
        self.key = config.key
        self.auth_key = config.auth_key
        self.sinks: list[Sink] = []
        """The publishing sinks (MQTT, CSV, Graphite, InfluxDB) configured."""
        self.udp_sent = 0
        """UDP datagrams sent."""
        self.udp_failed = 0
        """UDP sends that failed (logged once per run of failures)."""
        self.thermal_base = THERMAL_BASE
        """Thermal sysfs directory :meth:`status` reads the CPU temperature from."""
        self._announcer: Any = None  # mdns.Announcer while mDNS is on
        self.saved_config = config
        """The settings the ``--config`` file holds after ``POST /settings``:
        :attr:`config` plus the changes that apply at the next start."""
        self._settings_token = secrets.token_urlsafe(32)
        self._settings_lock: asyncio.Lock | None = None
        self._udp_task: asyncio.Future[None] | None = None
        self._started_with = config  # what the reader thread was built from

    # -- reading -------------------------------------------------------------

    def _start_demo(self) -> None:
        c = self.config
        profile = c.profile
        if c.protocol == "dsmr":
            from .p1_simulator import ENCRYPTED_METERS, SMARTY_AUTH_KEY, P1Simulator

            meter = profile.simulator if profile and profile.simulator else "dsmr5"
            encrypted = meter in ENCRYPTED_METERS
            self.key = (c.key or DEMO_KEY) if encrypted else None
            if encrypted:
                self.auth_key = c.auth_key or SMARTY_AUTH_KEY
            self._simulator = P1Simulator(meter, key=self.key, auth_key=self.auth_key, interval=1.0)
        else:
            from .simulator import AUTHENTICATED, Simulator

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

    def _publish(self, reading: AnyReading) -> None:
        for sink in self.sinks:
            sink.publish(reading)

    def _read_loop(self) -> None:
        if self.config.protocol == "mbus":
            self._poll_loop()
            return
        c = self.config
        assert self.port is not None  # noqa: S101 - checked by config.load / demo
        p1 = c.protocol == "dsmr"
        profile = c.profile
        names = None
        if c.names_file:
            from .dsmr import load_names

            names = load_names(c.names_file)
        reader = SerialReader(
            self.port,
            key=self.key,
            auth_key=self.auth_key,
            protocol="dsmr" if p1 else "dlms",
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
                if got is not None and got["protocol"] != c.protocol:
                    got = None  # a wired M-Bus telegram on a DLMS push port: not ours
                if got is not None:
                    self._publish(got)
                self.state.update(got, reader.stats, reader.connected)

    def _poll_loop(self) -> None:
        """Wired M-Bus: request the meter's data every ``mbus_interval`` seconds."""
        from .errors import CollisionError, DecodeError, MbusPicoError, SerialPortError
        from .master import MBusMaster

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
                    self._publish(reading)  # type: ignore[arg-type]
                self.state.update(reading, dict(counters), master is not None)  # type: ignore[arg-type]
                self._stop.wait(self.config.mbus_interval)  # changeable on /settings
        finally:
            if master is not None:
                master.close()

    def _make_sinks(self, config: Config | None = None) -> list[Sink]:
        c = self.config if config is None else config
        sinks: list[Sink] = []
        if c.mqtt_enabled:
            from .sinks.mqtt import MqttSink

            sinks.append(
                MqttSink(
                    host=c.mqtt_host,
                    port=c.mqtt_port,
                    username=c.mqtt_user,
                    password=c.mqtt_password,
                    client_id=c.mqtt_client_id,
                    mode=c.mqtt_mode,
                    topic_prefix=c.mqtt_prefix,
                    qos=c.mqtt_qos,
                    retain=c.mqtt_retain,
                    tls=c.mqtt_tls,
                    ca_file=c.mqtt_ca_file,
                    cert_file=c.mqtt_cert_file,
                    key_file=c.mqtt_key_file,
                    tls_insecure=c.mqtt_tls_insecure,
                    discovery=c.mqtt_discovery,
                    discovery_prefix=c.mqtt_discovery_prefix,
                    telegram_json=c.mqtt_telegram_json,
                    status=self.status,
                    status_interval=c.mqtt_status_interval,
                )
            )
        if c.csv_directory:
            from .sinks.csvlog import CsvLogSink

            sinks.append(CsvLogSink(c.csv_directory))
        if c.graphite_host:
            from .sinks.metrics import GraphiteSink

            sinks.append(GraphiteSink(c.graphite_host, c.graphite_port, prefix=c.graphite_prefix))
        if c.influx_url:
            from .sinks.metrics import InfluxSink

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
                )
            )
        return sinks

    # -- HTTP ----------------------------------------------------------------

    def _authorised(self, header: str | None) -> int:
        """200 when authentication passes or is off, else 401 (none given) or 403."""
        c = self.config
        if not c.http_user and not c.http_password:
            return 200
        if header is None:
            return 401
        token = base64.b64encode(f"{c.http_user}:{c.http_password}".encode()).decode()
        expected = f"Basic {token}".encode()
        # Bytes of both (compare_digest takes str only if ASCII); a character
        # that cannot be encoded cannot match the ASCII token either.
        given = header.encode("utf-8", "replace")
        return 200 if hmac.compare_digest(given, expected) else 403

    def _make_app(self) -> Any:
        from microdot import Microdot, Response

        app = Microdot()
        state = self.state

        def respond(body: str | bytes, status: int = 200, ctype: str = "application/json") -> Any:
            return Response(body, status, {**NO_CACHE, "Content-Type": ctype})

        @app.before_request
        async def auth(request: Any) -> Any:
            status = self._authorised(request.headers.get("Authorization"))
            if status == 401:
                response = respond("Unauthorized", 401, "text/plain")
                response.headers["WWW-Authenticate"] = 'Basic realm="MBusPico"'
                return response
            if status == 403:
                return respond("Forbidden", 403, "text/plain")
            return None

        @app.after_error_request
        async def no_cache(request: Any, response: Any) -> Any:
            response.headers.update(NO_CACHE)
            return response

        async def index(request: Any) -> Any:
            _, text, _ = state.snapshot()
            return respond(b"", 204) if text is None else respond(text)

        async def api_reading(request: Any) -> Any:
            reading, _, _ = state.snapshot()
            if reading is None:
                return respond(b"", 204)
            return respond(json.dumps(reading, ensure_ascii=False))

        async def api_status(request: Any) -> Any:
            return respond(json.dumps(self.status()))

        async def status_page(request: Any) -> Any:
            return respond(self._status_html(), ctype="text/html; charset=utf-8")

        async def pico_only(request: Any) -> Any:
            return respond("Not found", 404, "text/plain")

        # Registered by call: microdot's route decorator is untyped.
        for path, handler in (
            ("/", index),
            ("/api/reading", api_reading),
            ("/api/status", api_status),
            ("/status.html", status_page),
            ("/reboot", pico_only),
            ("/update", pico_only),
        ):
            app.route(path)(handler)
        self._add_settings_routes(app, respond)
        if self.config.csv_directory:
            from .sinks.csvlog import add_file_routes

            # Basic authentication is checked by the before_request hook above.
            add_file_routes(app, self.config.csv_directory, None)
        return app

    def status(self) -> dict[str, Any]:
        """The service's status, the JSON of ``GET /api/status`` and ``<prefix>/status``.

        Keys: ``version``, ``device``, ``protocol``; ``uptimeSeconds`` (s);
        ``serialPort`` (``path``, ``connected``); ``counters`` (the reader's
        :class:`mbuspico.ReaderStats`, or the wired M-Bus poll counters);
        ``telegrams``, the same four figures for every protocol: ``good``
        (readings decoded), ``badChecksum`` (frames whose checksum failed),
        ``decryptionFailures`` (wrong key, tag mismatch), ``bytesSkipped``
        (bytes outside any telegram); ``sinks`` (each sink's counters);
        ``lastReadingAt`` (UTC, ISO 8601) and ``lastMeterTime`` (the meter's
        clock) of the last good reading, None before; ``rssMiB`` (resident
        memory, MiB; :func:`mbuspico.stats.rss_mib`); ``cpuTemperatureC`` (°C,
        None where the board has no thermal zone;
        :func:`mbuspico.stats.cpu_temperature`); ``hostname``; ``clientId``
        (the MQTT client id, None without MQTT); ``mdns`` (``{"name": ...}``,
        the announced instance name, None until registered; None when off).
        """
        reading, _, reading_at = self.state.snapshot()
        with self.state.lock:
            stats, connected = dict(self.state.stats), self.state.connected

        def count(name: str) -> int:
            value = stats.get(name, 0)
            return value if isinstance(value, int) else 0

        announcer = self._announcer
        return {
            "version": __version__,
            "device": self.config.device,
            "protocol": self.config.protocol,
            "uptimeSeconds": round(time.time() - self.state.started, 1),
            "serialPort": {"path": self.port, "connected": connected},
            "counters": stats,
            "sinks": {sink.name: sink.status() for sink in self.sinks},
            "lastReadingAt": _iso(reading_at),
            "lastMeterTime": reading.get("timestamp") if reading else None,
            "telegrams": {
                "good": count("readings"),
                "badChecksum": count("bad_checksums"),
                "decryptionFailures": count("decryption_errors"),
                "bytesSkipped": count("bytes_skipped"),
            },
            "rssMiB": rss_mib(),
            "cpuTemperatureC": cpu_temperature(self.thermal_base),
            "hostname": hostname(),
            "clientId": next(
                (getattr(sink, "client_id", None) for sink in self.sinks if sink.name == "mqtt"),
                None,
            ),
            "mdns": None if announcer is None else {"name": announcer.name},
        }

    def _status_html(self) -> str:
        reading, _, _ = self.state.snapshot()
        status = self.status()
        esc = html.escape
        if reading is None:
            values: list[tuple[str, Any, Any]] = []
        elif reading["protocol"] == "mbus":
            values = [(r["quantity"] or "", r["value"], r["unit"]) for r in reading["records"]]
        else:
            values = [(code, v["value"], v["unit"]) for code, v in reading["obis"].items()]
        rows = "".join(
            f"<tr><td>{esc(code)}</td><td class=n>{esc(str(value))}</td>"
            f"<td>{esc(unit or '')}</td></tr>"
            for code, value, unit in values
        )
        counters = "".join(
            f"<tr><td>{esc(k)}</td><td class=n>{v}</td></tr>" for k, v in status["counters"].items()
        )
        port = status["serialPort"]
        tg = status["telegrams"]
        cpu = "—" if status["cpuTemperatureC"] is None else f"{status['cpuTemperatureC']} °C"
        return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=5>
<title>mbuspico {esc(status["device"])}</title>
<style>body{{font:15px system-ui,sans-serif;margin:2em}}td{{padding:2px 12px}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body>
<h1>mbuspico</h1>
<p>{esc(status["device"])} on {esc(str(port["path"]))}:
{"connected" if port["connected"] else "<b>not connected</b>"};
up {status["uptimeSeconds"]:.0f} s; last reading {esc(str(status["lastReadingAt"]))}
(meter time {esc(str(status["lastMeterTime"]))})</p>
<p>{esc(status["hostname"])}: memory {status["rssMiB"]} MiB; CPU {cpu};
telegrams {tg["good"]} good, {tg["badChecksum"]} bad checksum,
{tg["decryptionFailures"]} not decrypted, {tg["bytesSkipped"]} bytes skipped</p>
<h2>Reading</h2><table>{rows or "<tr><td>no reading yet</td></tr>"}</table>
<h2>Counters</h2><table>{counters}</table>
<p><a href="/">MBusPico JSON</a> · <a href="/api/reading">reading</a> ·
<a href="/api/status">status</a></p></body></html>
"""

    # -- settings ------------------------------------------------------------

    async def apply_settings(self, changes: Mapping[str, Any]) -> dict[str, list[str]]:
        """Validate, save and apply changed settings (``POST /settings``).

        The changes are checked as at start-up (:func:`mbuspico.config.update`),
        new sinks are built, then the ``--config`` file is rewritten atomically
        (:func:`mbuspico.settings_page.write_settings`), and only then are the
        live settings applied: UDP restarts its sender, MQTT/Graphite/InfluxDB
        changes close the sinks and start new ones, HTTP user and password
        hold from the next request. Settings of
        :data:`mbuspico.settings_page.AT_RESTART` are saved only. Changes are
        applied one request at a time.

        Args:
            changes: New values by setting name (``{"udp_interval": "5"}``):
                text as in the file, or typed values.

        Returns:
            TOML keys: ``{"changed": [...], "applied": [...], "restart": [...]}``,
            what differs from the saved settings, what is in effect now, and
            what waits for the next start (``mqtt.mode`` too when switching to
            ``evn-raw``, whose APDUs the running reader does not keep).

        Raises:
            ConfigError: No ``--config`` file, a setting off the allow-list
                (:data:`mbuspico.settings_page.EDITABLE`), or an invalid value
                or combination; nothing is written or applied.
            OSError: The file could not be written; nothing is applied.

        """
        from .config import SETTINGS, update
        from .settings_page import EDITABLE, LIVE, SINK_PREFIXES, UDP, write_settings

        if self._settings_lock is None:
            self._settings_lock = asyncio.Lock()
        async with self._settings_lock:
            path = self.config.config_file
            if path is None:
                msg = (
                    "the service was started without --config FILE, so there is no file "
                    "to save settings in; start it with --config"
                )
                raise ConfigError(msg)
            for name in changes:
                if name not in EDITABLE:
                    key = next((s.toml for s in SETTINGS if s.name == name), name)
                    msg = f"{key} cannot be changed on the settings page"
                    raise ConfigError(msg)
            before = self.saved_config
            saved = update(before, changes)
            changed = [s for s in SETTINGS if getattr(saved, s.name) != getattr(before, s.name)]
            live = {s.name: getattr(saved, s.name) for s in changed if s.name in LIVE}
            running = dataclasses.replace(self.config, **live)
            sinks = None
            if any(name.startswith(SINK_PREFIXES) for name in live):
                try:
                    sinks = self._make_sinks(running)
                except ValueError as e:  # what only the sink checks, e.g. a topic with '#'
                    raise ConfigError(str(e)) from None
            loop = asyncio.get_running_loop()
            if changed:
                updates = {s.toml: getattr(saved, s.name) for s in changed}
                await loop.run_in_executor(None, write_settings, path, updates)
            self.saved_config, self.config = saved, running
            if UDP & live.keys():
                if self._udp_task is not None:
                    self._udp_task.cancel()
                    self._udp_task = None
                if running.udp_enabled:
                    self._udp_task = asyncio.ensure_future(self._udp_loop())
            if sinks is not None:
                old, self.sinks = self.sinks, sinks  # readings queue until started

                def close_old() -> None:
                    for sink in old:
                        sink.close()

                await loop.run_in_executor(None, close_old)
                for sink in sinks:
                    sink.start()
            restart = [s.toml for s in changed if s.name not in LIVE]
            raw = self._started_with.mqtt_enabled and self._started_with.mqtt_mode == "evn-raw"
            wants_raw = running.mqtt_enabled and running.mqtt_mode == "evn-raw"
            if wants_raw and not raw and {"mqtt_enabled", "mqtt_mode"} & live.keys():
                restart.append("mqtt.mode")
            result = {
                "changed": [s.toml for s in changed],
                "applied": [s.toml for s in changed if s.name in LIVE],
                "restart": restart,
            }
            if changed:  # names only: values may be secrets
                log.info(
                    "settings saved to %s: %s in effect now, %s at the next start",
                    path,
                    ", ".join(result["applied"]) or "none",
                    ", ".join(restart) or "none",
                )
            return result

    def _add_settings_routes(self, app: Any, respond: Callable[..., Any]) -> None:
        """``/settings`` and ``/api/settings`` (see :mod:`mbuspico.settings_page`)."""
        from .settings_page import describe, render, same_origin, submitted_changes

        html_type = "text/html; charset=utf-8"

        async def settings(request: Any) -> Any:
            headers = request.headers
            as_json = request.path == "/api/settings" or "application/json" in (
                headers.get("Accept") or ""
            )

            def page(status: int = 200, **notice: str | None) -> Any:
                body = render(self.config, self.saved_config, self._settings_token, **notice)
                return respond(body, status, html_type)

            def fail(status: int, reason: str) -> Any:
                if as_json:
                    return respond(json.dumps({"error": reason}), status)
                return page(status, error=reason)

            # Before_request has checked the credentials; without any there are
            # none to check, and this page can change the service.
            if not self.config.http_password:
                reason = (
                    "the settings page needs HTTP authentication: set http.user and "
                    "http.password (MBUSPICO_HTTP_AUTH_USER, MBUSPICO_HTTP_AUTH_PWD)"
                )
                if as_json:
                    return respond(json.dumps({"error": reason}), 403)
                return respond(reason, 403, "text/plain")  # not the page: it holds the token
            if request.method == "GET":
                if as_json:
                    return respond(json.dumps(describe(self.config, self.saved_config)))
                return page()
            ctype = headers.get("Content-Type") or ""
            mime = ctype.split(";")[0].strip().lower()
            as_json = as_json or mime == "application/json"
            if not same_origin(headers):
                return fail(403, "refused: a request from another site (Origin/Referer)")
            if mime not in ("application/json", "application/x-www-form-urlencoded"):
                return fail(415, "send the settings as application/json or as the page's form")
            try:
                changes, token = submitted_changes(request.body, ctype, self.saved_config)
            except ConfigError as e:
                return fail(400, str(e))
            if token is not None and not hmac.compare_digest(
                token.encode(), self._settings_token.encode()
            ):
                return fail(403, "refused: the form's token is missing or old; reload the page")
            if self.config.config_file is None:
                return fail(409, "no --config FILE to save settings in: start with --config")
            try:
                result = await self.apply_settings(changes)
            except ConfigError as e:
                return fail(400, str(e))
            except OSError as e:
                return fail(500, f"cannot write {self.config.config_file}: {e.strerror}")
            if as_json:
                return respond(json.dumps({**result, "file": self.config.config_file}))
            if not result["changed"]:
                return page(message="Nothing changed.")
            message = f"Saved {', '.join(result['changed'])}."
            if result["applied"]:
                message += f" In effect now: {', '.join(result['applied'])}."
            if result["restart"]:
                message += f" Applies at the next start: {', '.join(result['restart'])}."
            return page(message=message)

        for path in ("/settings", "/api/settings"):
            app.route(path, methods=["GET", "POST"])(settings)

    # -- UDP -----------------------------------------------------------------

    async def _udp_loop(self) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        failing = 0  # sends failed in a row: the first is logged, then one line on recovery
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self._stop.is_set():
                await asyncio.sleep(c.udp_interval)
                _, text, _ = self.state.snapshot()
                if text is None:
                    continue
                try:
                    await loop.run_in_executor(
                        None, sock.sendto, text.encode(), (c.udp_host, c.udp_port)
                    )
                except OSError as e:  # receiver gone, network down: keep serving
                    self.udp_failed += 1
                    if not failing:
                        log.warning(
                            "UDP to %s:%s failed: %s (not logged again until a send works)",
                            c.udp_host,
                            c.udp_port,
                            e,
                        )
                    failing += 1
                else:
                    self.udp_sent += 1
                    if failing:
                        log.info(
                            "UDP to %s:%s works again after %d failed sends",
                            c.udp_host,
                            c.udp_port,
                            failing,
                        )
                    failing = 0

    # -- mDNS ----------------------------------------------------------------

    async def _mdns_loop(self) -> None:
        """Announce HTTP as ``_http._tcp.local.`` until cancelled, then withdraw it.

        Without ``mdns_name``: ``mbuspico-<host name>`` at once, renamed to
        ``mbuspico-<meter number>`` when the first reading that shows one
        arrives (once per run). A failure is logged; HTTP keeps serving.
        """
        c = self.config
        try:
            from .mdns import Announcer, default_name, meter_number

            txt = {"path": "/", "version": __version__, "device": c.device}
            self._announcer = announcer = Announcer(self.http_port or 0, c.http_host, txt)
            name = c.mdns_name or default_name(self.state.snapshot()[0])
            await announcer.register(name)
            log.info("mDNS: announcing %s on %s", announcer.name, "_http._tcp.local.")
            while c.mdns_name is None and not self._stop.is_set():
                reading = self.state.snapshot()[0]
                if meter_number(reading) is not None:
                    if default_name(reading) != name:
                        await announcer.register(default_name(reading))
                        log.info("mDNS: announcing %s (the meter's number)", announcer.name)
                    break
                await asyncio.sleep(0.5)
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            pass
        except Exception as e:  # no multicast, port 5353 refused: HTTP works without it
            log.warning("mDNS: could not announce the HTTP service: %s", e)
        finally:
            if self._announcer is not None:
                try:
                    await self._announcer.close()
                except Exception as e:  # sockets gone already
                    log.debug("mDNS: closing: %s", e)
            self._announcer = None

    # -- running -------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until :meth:`stop`."""
        c = self.config
        for warning in c.warnings:  # e.g. a config file with keys others can read
            log.warning("%s", warning)
        if c.demo:
            self._start_demo()
        self.sinks = self._make_sinks()
        for sink in self.sinks:
            sink.start()
        self._loop = asyncio.get_running_loop()
        self._reader_thread = threading.Thread(target=self._read_loop, daemon=True)
        self._reader_thread.start()
        tasks = []
        if c.udp_enabled:
            self._udp_task = asyncio.ensure_future(self._udp_loop())
            tasks.append(self._udp_task)
        server = None
        if c.http_enabled:
            self._app = self._make_app()
            server = await self._app.start_server(
                host=c.http_host, port=c.http_port, start_serving=False
            )
            self.http_port = server.sockets[0].getsockname()[1]
            await server.start_serving()
        mdns = None
        if server is not None and c.mdns_enabled:
            mdns = asyncio.ensure_future(self._mdns_loop())
        if c.protocol == "dsmr" and (c.baudrate, c.parity) == (2400, "even"):
            meter, line = "a P1 meter (DSMR)", "115200 Bd, parity none"
        else:
            meter = c.device if c.protocol == "dlms" else f"M-Bus meter {c.mbus_address}"
            line = f"{c.baudrate} Bd, parity {c.parity}"
        log.info(
            "mbuspico %s serving %s from %s (%s)%s%s%s",
            __version__,
            meter,
            self.port,
            line,
            f"; HTTP on {c.http_host}:{self.http_port}" if server else "",
            f"; UDP to {c.udp_host}:{c.udp_port} every {c.udp_interval:g} s"
            if c.udp_enabled
            else "",
            f"; publishing to {', '.join(sink.name for sink in self.sinks)}" if self.sinks else "",
        )
        self._ready.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            for t in tasks:
                t.cancel()
            if mdns is not None:
                mdns.cancel()
                await asyncio.gather(mdns, return_exceptions=True)  # withdraws the name
            if self._udp_task is not None:  # restarted by POST /settings
                self._udp_task.cancel()
            if server is not None:
                server.close()
                await server.wait_closed()

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM."""
        import signal

        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        try:
            asyncio.run(self.serve())
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()

    def start(self, timeout: float = 10.0) -> None:
        """Serve in a background thread; returns once the servers listen."""

        def main() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as e:
                self._error = e
                self._ready.set()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            msg = "the service did not start"
            raise RuntimeError(msg) from self._error

    def stop(self) -> None:
        """Stop serving and reading; close the demo meter."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._shutdown()

    def _shutdown(self) -> None:
        self._stop.set()
        if self._reader_thread is not None:
            self._reader_thread.join(5)
            self._reader_thread = None
        for sink in self.sinks:
            sink.close()
        self.sinks = []
        if self._simulator is not None:
            self._simulator.close()
            self._simulator = None
