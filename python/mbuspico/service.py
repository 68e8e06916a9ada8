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

Source of the behaviour: raven-worx/MBusPico ``python/dist/provider/www.py``,
``udp.py``, ``config.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import html
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from . import __version__
from ._core import SerialReader
from .compat import to_mbuspico_json
from .config import DEMO_KEY, DEVICES, Config
from .types import Reading

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
        self.reading: Reading | None = None
        self.mbuspico_json: str | None = None
        self.reading_at: float | None = None
        self.stats: Mapping[str, object] = {}
        self.connected = False
        self.started = time.time()

    def update(self, reading: Reading | None, stats: Mapping[str, object], connected: bool) -> None:
        text = to_mbuspico_json(reading) if reading is not None else None
        with self.lock:
            if reading is not None:
                self.reading, self.mbuspico_json, self.reading_at = reading, text, time.time()
            self.stats, self.connected = stats, connected

    def snapshot(self) -> tuple[Reading | None, str | None, float | None]:
        with self.lock:
            return self.reading, self.mbuspico_json, self.reading_at


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

    # -- reading -------------------------------------------------------------

    def _start_demo(self) -> None:
        from .simulator import Simulator

        profile = DEVICES[self.config.device]
        self.key = self.config.key or DEMO_KEY
        self._simulator = Simulator(profile, key=self.key, interval=1.0)
        self.port = self._simulator.open()
        self._simulator.start()

    def _read_loop(self) -> None:
        c = self.config
        assert self.port is not None  # noqa: S101 - checked by config.load / demo
        reader = SerialReader(
            self.port,
            key=self.key,
            auth_key=c.auth_key,
            baudrate=c.baudrate,
            parity=c.parity,
            timeout=0.5,
            reconnect=True,
        )
        with reader:
            while not self._stop.is_set():
                got = reader.read()
                # MBusPico's JSON is a DLMS push reading.
                reading = got if got is not None and got["protocol"] == "dlms" else None
                self.state.update(reading, reader.stats, reader.connected)

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
        return 200 if hmac.compare_digest(header.encode(), expected) else 403

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
        return app

    def status(self) -> dict[str, Any]:
        """The service's status: uptime, serial port, counters, last good reading."""
        reading, _, reading_at = self.state.snapshot()
        with self.state.lock:
            stats, connected = dict(self.state.stats), self.state.connected
        return {
            "version": __version__,
            "device": self.config.device,
            "uptimeSeconds": round(time.time() - self.state.started, 1),
            "serialPort": {"path": self.port, "connected": connected},
            "counters": stats,
            "lastReadingAt": _iso(reading_at),
            "lastMeterTime": reading["timestamp"] if reading else None,
        }

    def _status_html(self) -> str:
        reading, _, _ = self.state.snapshot()
        status = self.status()
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(code)}</td><td class=n>{esc(str(v['value']))}</td>"
            f"<td>{esc(v['unit'] or '')}</td></tr>"
            for code, v in (reading["obis"].items() if reading else [])
        )
        counters = "".join(
            f"<tr><td>{esc(k)}</td><td class=n>{v}</td></tr>" for k, v in status["counters"].items()
        )
        port = status["serialPort"]
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
<h2>Reading</h2><table>{rows or "<tr><td>no reading yet</td></tr>"}</table>
<h2>Counters</h2><table>{counters}</table>
<p><a href="/">MBusPico JSON</a> · <a href="/api/reading">reading</a> ·
<a href="/api/status">status</a></p></body></html>
"""

    # -- UDP -----------------------------------------------------------------

    async def _udp_loop(self) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
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
                    log.warning("UDP to %s:%s failed: %s", c.udp_host, c.udp_port, e)

    # -- running -------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until :meth:`stop`."""
        c = self.config
        if c.demo:
            self._start_demo()
        self._loop = asyncio.get_running_loop()
        self._reader_thread = threading.Thread(target=self._read_loop, daemon=True)
        self._reader_thread.start()
        tasks = []
        if c.udp_enabled:
            tasks.append(asyncio.ensure_future(self._udp_loop()))
        server = None
        if c.http_enabled:
            self._app = self._make_app()
            server = await self._app.start_server(
                host=c.http_host, port=c.http_port, start_serving=False
            )
            self.http_port = server.sockets[0].getsockname()[1]
            await server.start_serving()
        log.info(
            "mbuspico %s serving %s from %s (%d Bd, parity %s)%s%s",
            __version__,
            c.device,
            self.port,
            c.baudrate,
            c.parity,
            f"; HTTP on {c.http_host}:{self.http_port}" if server else "",
            f"; UDP to {c.udp_host}:{c.udp_port} every {c.udp_interval:g} s"
            if c.udp_enabled
            else "",
        )
        self._ready.set()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            for t in tasks:
                t.cancel()
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
        if self._simulator is not None:
            self._simulator.close()
            self._simulator = None
