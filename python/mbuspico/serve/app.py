"""``mbuspico serve``: the MBusPico service next to the meter, wired together.

:class:`Service` starts and stops the parts, each in a module of its own:

* :mod:`~mbuspico.serve.meter`: the reader thread and the latest reading;
* :mod:`~mbuspico.serve.http`: HTTP routes, authentication and pages (microdot);
* :mod:`~mbuspico.serve.udp`: MBusPico's JSON by UDP at an interval;
* :mod:`~mbuspico.serve.sinks`: MQTT, CSV, Graphite and InfluxDB;
* :mod:`~mbuspico.serve.mdns`: the ``_http._tcp.local.`` announcement;
* :mod:`~mbuspico.serve.settings_page`: the settings page, applied here live.

Source of the behaviour: raven-worx/MBusPico ``python/dist/provider/www.py``,
``udp.py``, ``config.py``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from .._core import __version__
from .config import Config, ConfigError
from .events import EventHub
from .gate import HttpGate, Limits
from .history import ServiceHistory
from .http import authorised, make_app, respond
from .meter import AnyReading, Latest, Meter
from .sinks import Sink, demo_prefix, make_sinks
from .stats import THERMAL_BASE, machine
from .udp import UdpSender

__all__ = ["BurstFilter", "Service", "set_log_level"]

log = logging.getLogger("mbuspico.serve")


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


_LEVELS = {
    "none": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def set_log_level(level: str) -> None:
    """Log at ``level`` from now on: ``none``, ``error``, ``warning``, ``info`` or ``debug``.

    MBusPico's ``MBUSPICO_LOG_LEVEL`` values map to these (``LOG_NONE`` ...
    ``LOG_DEBUG``; :data:`mbuspico.serve.config.LOG_LEVELS`). Sets the root
    logger, so the libraries the service uses (paho-mqtt, zeroconf) follow.
    """
    value = _LEVELS[level]
    logging.getLogger().setLevel(value)
    logging.getLogger("mbuspico").setLevel(value)


class Service:
    """The running service: the meter's reader thread, HTTP, UDP, mDNS and the sinks.

    Args:
        config: The settings (see :mod:`mbuspico.serve.config`).

    Use :meth:`run` to serve until SIGINT/SIGTERM (the command line), or
    :meth:`start` / :meth:`stop` to run it in a background thread (tests,
    embedding).

    """

    def __init__(self, config: Config) -> None:
        """Prepare the service; nothing is opened until it runs."""
        self.config = config
        self.meter = Meter(config, self._publish)
        """The reader of the meter (:class:`mbuspico.serve.meter.Meter`)."""
        self.state: Latest = self.meter.latest
        """The latest reading and counters."""
        self.udp = UdpSender(self.state, lambda: not self.freshness()[0])
        """The UDP sender and its counters."""
        self.events = EventHub(config.http_max_event_streams)
        """The dashboard's live event streams (``/api/events``; :mod:`mbuspico.serve.events`)."""
        self.history = ServiceHistory(config) if config.history_enabled else None
        """The history (:mod:`mbuspico.serve.history`); None with ``history.enabled`` off."""
        self.http_port: int | None = None
        """The bound HTTP port once serving (useful with port 0)."""
        self.sinks: list[Sink] = []
        """The publishing sinks (MQTT, CSV, Graphite, InfluxDB) configured."""
        self.thermal_base = THERMAL_BASE
        """Thermal sysfs directory :meth:`status` reads the CPU temperature from."""
        self.saved_config = config
        """The settings the ``--config`` file holds after ``POST /settings``:
        :attr:`config` plus the changes that apply at the next start."""
        self.settings_token = secrets.token_urlsafe(32)
        """The settings form's anti-forgery token, new at every start."""
        self.gate: HttpGate | None = None
        """The HTTP gate while serving (its ``counters`` show what it refused)."""
        self.settings_passkey: str | None = None
        """The settings page's generated passkey when no HTTP password is set
        and a ``--config`` file is (see :func:`mbuspico.serve.settings_page.passkey`)."""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._announcer: Any = None  # mdns.Announcer while mDNS is on
        self._settings_lock: asyncio.Lock | None = None
        self._udp_task: asyncio.Future[None] | None = None
        self._started_with = config  # what the reader thread was built from

    @property
    def port(self) -> str | None:
        """The serial device read (the demo meter's pseudo-terminal with ``--demo``)."""
        return self.meter.port

    @property
    def key(self) -> str | None:
        """The decryption key in use (the demo meter's when none is configured)."""
        return self.meter.key

    @property
    def udp_sent(self) -> int:
        """UDP datagrams sent."""
        return self.udp.sent

    @property
    def udp_failed(self) -> int:
        """UDP sends that failed (logged once per run of failures)."""
        return self.udp.failed

    @property
    def _reader_thread(self) -> threading.Thread | None:
        return self.meter.thread

    def _publish(self, reading: AnyReading) -> None:
        if self.history is not None:
            self.history.add(reading)
        for sink in self.sinks:
            sink.publish(reading)
        self.events.notify(reading)

    def _authorised(self, header: str | None) -> int:
        """200 when authentication passes or is off, else 401 (none given) or 403."""
        return authorised(self.config, header)

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
        memory, MiB; :func:`mbuspico.serve.stats.rss_mib`); ``memAvailableMiB``
        (the system's available memory, MiB); ``cpuTemperatureC`` (°C,
        None where the board has no thermal zone;
        :func:`mbuspico.serve.stats.cpu_temperature`); ``hostname``; ``clientId``
        (the MQTT client id, None without MQTT); ``mdns`` (``{"name": ...}``,
        the announced instance name, None until registered; None when off);
        ``stale``, ``ageSeconds`` (of the latest reading, None before one) and
        ``staleAfterSeconds`` (:meth:`stale_after`); ``http``: connections
        ``active`` and what the gate refused (:class:`mbuspico.serve.gate.HttpGate`),
        ``eventStreams`` open and ``eventStreamsRefused`` (:mod:`mbuspico.serve.events`).
        """
        announcer = self._announcer
        mqtt = [sink for sink in self.sinks if sink.name == "mqtt"]
        stale, age, threshold = self.freshness()
        gate = self.gate
        return {
            "version": __version__,
            "device": self.config.device,
            "protocol": self.config.protocol,
            **self.state.figures(self.meter.port),
            "sinks": {sink.name: sink.status() for sink in self.sinks},
            **machine(self.thermal_base),
            "clientId": getattr(mqtt[0], "client_id", None) if mqtt else None,
            "mdns": None if announcer is None else {"name": announcer.name},
            "history": None if self.history is None else self.history.status(),
            "stale": stale,
            "ageSeconds": None if age is None else round(age, 1),
            "staleAfterSeconds": round(threshold, 1),
            "http": None
            if gate is None
            else {
                "active": gate.active,
                **gate.counters,
                "eventStreams": self.events.active,
                "eventStreamsRefused": self.events.refused,
            },
        }

    # -- settings ------------------------------------------------------------

    def in_effect(self) -> dict[str, Any]:
        """Settings in effect with other values than :attr:`config`'s, by name.

        The history file when none is set (``history_path``: the default one).
        Under ``--demo`` besides: the simulated meter's pseudo-terminal
        (``serial_port``), the keys it was given where none is configured
        (``key``, ``auth_key``) and the MQTT topic prefix
        (:func:`mbuspico.serve.sinks.demo_prefix`). The settings page shows
        these as the values in effect.
        """
        c = self.config
        effect: dict[str, Any] = {}
        if self.history is not None and not c.history_path:
            effect["history_path"] = str(self.history.path)
        if not c.demo:
            return effect
        effect["mqtt_prefix"] = demo_prefix(c.mqtt_prefix)
        meter = self.meter
        for name, value in (
            ("serial_port", meter.port),
            ("key", meter.key),
            ("auth_key", meter.auth_key),
        ):
            if value != getattr(c, name):
                effect[name] = value
        return effect

    async def apply_settings(self, changes: Mapping[str, Any]) -> dict[str, list[str]]:
        """Validate, save and apply changed settings (``POST /settings``).

        The changes are checked as at start-up (:func:`mbuspico.serve.config.update`),
        new sinks are built, then the ``--config`` file is rewritten atomically
        (:func:`mbuspico.serve.settings_page.write_settings`), and only then are the
        live settings applied: UDP restarts its sender, MQTT/Graphite/InfluxDB
        changes close the sinks and start new ones, HTTP user and password
        hold from the next request. Settings of
        :data:`mbuspico.serve.settings_page.AT_RESTART` are saved only. Changes are
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
                (:data:`mbuspico.serve.settings_page.EDITABLE`), or an invalid value
                or combination; nothing is written or applied.
            OSError: The file could not be written; nothing is applied.

        """
        from .settings_page import plan_change, write_settings

        if self._settings_lock is None:
            self._settings_lock = asyncio.Lock()
        async with self._settings_lock:
            change = plan_change(self.config, self.saved_config, self._started_with, changes)
            sinks = None
            if change.sinks:
                try:
                    sinks = make_sinks(change.running, self.status)
                except ValueError as e:  # what only the sink checks, e.g. a topic with '#'
                    raise ConfigError(str(e)) from None
            loop = asyncio.get_running_loop()
            if change.updates:
                await loop.run_in_executor(None, write_settings, change.path, change.updates)
            self.saved_config, self.config = change.saved, change.running
            self.meter.config = change.running
            if "log_level" in change.live:
                set_log_level(change.running.log_level)
            if change.udp:
                if self._udp_task is not None:
                    self._udp_task.cancel()
                    self._udp_task = None
                if change.running.udp_enabled:
                    self._udp_task = asyncio.ensure_future(self.udp.run(change.running, self._stop))
            if sinks is not None:
                old, self.sinks = self.sinks, sinks  # readings queue until started

                def close_old() -> None:
                    for sink in old:
                        sink.close()

                await loop.run_in_executor(None, close_old)
                for sink in sinks:
                    sink.start()
            result = change.result()
            if change.updates:  # names only: values may be secrets
                log.info(
                    "settings saved to %s: %s in effect now, %s at the next start",
                    change.path,
                    ", ".join(result["applied"]) or "none",
                    ", ".join(result["restart"]) or "none",
                )
            return result

    def _registered(self, announcer: Any) -> None:
        self._announcer = announcer

    async def _announce(self) -> None:
        from .mdns import announce  # zeroconf is imported only when mDNS is on

        txt = {"path": "/", "version": __version__, "device": self.config.device}
        await announce(
            self.http_port or 0, self.config, self.state, self._stop, txt, self._registered
        )

    # -- running -------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until :meth:`stop`."""
        c = self.config
        for warning in c.warnings:  # e.g. a config file with keys others can read
            log.warning("%s", warning)
        if c.http_enabled and not c.http_password and c.config_file is not None:
            self._make_passkey(c.config_file)
        self.sinks = make_sinks(c, self.status)
        if self.history is not None:
            self.history.start()  # before the meter: its first reading is recorded
        self.meter.start()  # the demo meter first: a device it cannot play fails here
        for sink in self.sinks:
            sink.start()
        tasks = []
        if c.udp_enabled:
            self._udp_task = asyncio.ensure_future(self.udp.run(c, self._stop))
            tasks.append(self._udp_task)
        server = None
        if c.http_enabled:
            self.events.bind(asyncio.get_running_loop())
            server = await self._start_http()
            self.http_port = server.sockets[0].getsockname()[1]
        tasks.append(asyncio.ensure_future(self._watch()))
        mdns = None
        if server is not None and c.mdns_enabled:
            mdns = asyncio.ensure_future(self._announce())
        self._log_start(server is not None)
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
                self.events.close()  # ends the event streams, so the gate need not wait
                if self.gate is not None:
                    await self.gate.close()
                await server.wait_closed()

    async def _start_http(self) -> asyncio.Server:
        """Microdot behind the gate (:mod:`mbuspico.serve.gate`), listening."""
        c = self.config
        limits = Limits(
            connections=c.http_max_connections,
            header_timeout=c.http_header_timeout,
            header_bytes=c.http_max_header_bytes,
            headers=c.http_max_headers,
            body=c.http_max_body,
        )
        self.gate = HttpGate(
            make_app(self), limits, lambda header: authorised(self.config, header), respond
        )
        return await asyncio.start_server(
            self.gate.handle,
            c.http_host,
            c.http_port,
            limit=c.http_max_header_bytes,
            backlog=min(c.http_max_connections, 128),
        )

    def stale_after(self) -> float:
        """Seconds without a reading before the latest is stale.

        ``stale_after`` when set, else 3 x the meter's observed interval (the
        poll interval for wired M-Bus; 10 s before two readings have come),
        at least 10 s.
        """
        c = self.config
        if c.stale_after > 0:
            return c.stale_after
        interval = self.state.interval()
        if interval is None:
            interval = c.mbus_interval if c.protocol == "mbus" else 10.0
        return max(10.0, 3 * interval)

    def freshness(self) -> tuple[bool, float | None, float]:
        """Whether the latest reading is stale, its age (s; None before one), the threshold (s)."""
        age, threshold = self.state.age(), self.stale_after()
        return age is not None and age > threshold, age, threshold

    async def _watch(self) -> None:
        """Once a second: the gate's log summary, and the meter going quiet or coming back.

        Quiet (no reading for :meth:`stale_after`, or none at all that long
        after the start) is logged once when it starts and once when it ends;
        MQTT's availability says ``stale`` meanwhile.
        """
        quiet_since: float | None = None
        while not self._stop.is_set():
            await asyncio.sleep(1.0)
            if self.gate is not None:
                self.gate.flush_summary()
            stale, age, threshold = self.freshness()
            silent = age is None and time.time() - self.state.started > threshold
            if (stale or silent) and quiet_since is None:
                quiet_since = time.time() - (age if age is not None else threshold)
                if age is None:
                    seen = self.meter.seen()
                    log.warning(
                        "meter on %s: no reading yet after %.0f s%s; MQTT says stale until one "
                        "comes",
                        self.meter.port,
                        threshold,
                        f" ({seen})" if seen else "",
                    )
                else:
                    log.warning(
                        "meter on %s: no reading for %.0f s (stale after %.0f s): GET / answers "
                        "503, UDP pauses and MQTT says stale until readings come again",
                        self.meter.port,
                        age,
                        threshold,
                    )
                self._set_state("stale")
            elif not (stale or silent) and quiet_since is not None:
                log.info(
                    "meter on %s: readings again after %.0f s without",
                    self.meter.port,
                    time.time() - quiet_since,
                )
                quiet_since = None
                self._set_state("online")

    def _set_state(self, state: str) -> None:
        for sink in self.sinks:
            set_state = getattr(sink, "set_state", None)
            if set_state is not None:
                set_state(state)

    def _make_passkey(self, config_file: str) -> None:
        from .settings_page import passkey

        try:
            path, self.settings_passkey, made = passkey(config_file)
        except OSError as e:
            log.warning("settings page: no passkey (%s); set http.password to use it", e)
            return
        log.info(
            "settings page: no http.password set, so it takes the passkey %s in %s "
            "(any user name; read it with: sudo cat %s)",
            "made now" if made else "kept",
            path,
            path,
        )

    def _log_start(self, http: bool) -> None:
        c = self.config
        if c.protocol == "dsmr" and (c.baudrate, c.parity) == (2400, "even"):
            line = "115200 Bd, parity none"
        else:
            line = f"{c.baudrate} Bd, parity {c.parity}"
        # The protocol served and the meter: the device's profile, or in the
        # demo the meter simulated.
        played = getattr(self.meter._simulator, "meter", None) if c.demo else None
        device = f"simulated {played}" if played else None
        if c.protocol == "mbus":
            meter = f"wired M-Bus meter {c.mbus_address}"
            if c.device != "auto":
                meter += f" ({c.device})"
        else:
            kind = {"dsmr": "DSMR P1 meter", "auto": "DLMS push or P1 meter"}.get(
                c.protocol, "DLMS push meter"
            )
            name = device or (c.device if c.device != "auto" else None)
            if device and c.device != "auto" and c.device != played:
                name = f"{device}, device {c.device}"
            meter = f"{kind} ({name})" if name else f"{kind} (any)"
        log.info(
            "mbuspico %s serving %s from %s (%s)%s%s%s",
            __version__,
            meter,
            self.port,
            line,
            f"; HTTP on {c.http_host}:{self.http_port}" if http else "",
            f"; UDP to {c.udp_host}:{c.udp_port} every {c.udp_interval:g} s"
            if c.udp_enabled
            else "",
            f"; publishing to {', '.join(sink.name for sink in self.sinks)}" if self.sinks else "",
        )
        if c.demo and c.mqtt_enabled:
            log.info("demo: MQTT topics under %s, not the real meter's", demo_prefix(c.mqtt_prefix))

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
        self.meter.stop()
        if self.history is not None:
            self.history.stop()  # writes the minute in progress
        for sink in self.sinks:
            sink.close()
        self.sinks = []
