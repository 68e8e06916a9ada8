"""HTTP of ``mbuspico serve``: routes, authentication and pages (microdot).

* ``GET /``: MBusPico's JSON exactly (204 before the first reading);
  ``/api/reading`` the full reading; ``/api/status`` the counters
  (:meth:`mbuspico.serve.Service.status`); ``/status.html`` a small page;
  ``/dashboard`` the dashboard and ``/api/events`` its live readings
  (Server-Sent Events; :mod:`mbuspico.serve.pages`, :mod:`mbuspico.serve.events`);
  ``/reboot`` and ``/update`` are 404 as MBusPico answers off the Pico.
* ``/api/history``: the history in SQLite, JSON or CSV
  (:func:`mbuspico.serve.history.add_history_routes`).
* ``/settings`` and ``/api/settings``: the settings page
  (:mod:`mbuspico.serve.settings_page`), only with a password set.
* ``/files/...``: the CSV logs when CSV logging is on
  (:func:`mbuspico.serve.sinks.csvlog.add_file_routes`).

Optional Basic authentication as MBusPico (RFC 7617): 401 without
credentials, 403 with wrong ones, on every route. Every response carries
MBusPico's no-cache headers.

Source of the behaviour: raven-worx/MBusPico ``python/dist/provider/www.py``.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Callable, Protocol

from .config import Config, ConfigError
from .events import EventHub
from .history import ServiceHistory, add_history_routes
from .meter import Latest
from .pages import dashboard_html, live_status, status_html

__all__ = ["NO_CACHE", "Served", "authorised", "make_app", "respond", "status_html"]

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
}
"""Headers of every response, as MBusPico sends them."""

_HTML = "text/html; charset=utf-8"


class Served(Protocol):
    """What the routes need of the running service (:class:`mbuspico.serve.Service`)."""

    config: Config
    saved_config: Config
    state: Latest
    settings_token: str
    settings_passkey: str | None
    events: EventHub
    history: ServiceHistory | None

    def status(self) -> dict[str, Any]:
        """The JSON of ``/api/status``."""
        ...

    def freshness(self) -> tuple[bool, float | None, float]:
        """Whether the latest reading is stale, its age (s, None before one), the threshold (s)."""
        ...

    async def apply_settings(self, changes: Mapping[str, Any]) -> dict[str, list[str]]:
        """Validate, save and apply changed settings."""
        ...

    def in_effect(self) -> dict[str, Any]:
        """Settings in effect with other values than :attr:`config`'s (the demo's)."""
        ...


def authorised(config: Config, header: str | None) -> int:
    """200 when authentication passes or is off, else 401 (none given) or 403.

    Args:
        config: The settings (``http_user``, ``http_password``).
        header: The request's ``Authorization`` header, None without one.

    """
    if not config.http_user and not config.http_password:
        return 200
    if header is None:
        return 401
    token = base64.b64encode(f"{config.http_user}:{config.http_password}".encode()).decode()
    expected = f"Basic {token}".encode()
    # Bytes of both (compare_digest takes str only if ASCII); a character
    # that cannot be encoded cannot match the ASCII token either.
    given = header.encode("utf-8", "replace")
    return 200 if hmac.compare_digest(given, expected) else 403


def respond(body: str | bytes, status: int = 200, ctype: str = "application/json") -> Any:
    """A microdot ``Response`` with MBusPico's no-cache headers and the status's reason phrase."""
    from microdot import Response

    reason = None if status == 200 else _reason(status)
    return Response(body, status, {**NO_CACHE, "Content-Type": ctype}, reason=reason)


def _reason(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _aged(response: Any, reading_at: float, now: float) -> Any:
    """Add ``Age`` (RFC 9111 §5.1) and ``Last-Modified`` (RFC 9110 §8.8.2) of a reading."""
    response.headers["Age"] = str(max(0, int(now - reading_at)))
    response.headers["Last-Modified"] = formatdate(reading_at, usegmt=True)
    return response


def make_app(service: Served) -> Any:
    """The microdot application serving ``service``."""
    import time

    from microdot import Microdot

    app = Microdot()
    state = service.state

    @app.before_request
    async def auth(request: Any) -> Any:
        status = authorised(service.config, request.headers.get("Authorization"))
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
        _, text, reading_at = state.snapshot()
        if text is None or reading_at is None:
            return respond(b"", 204)
        now = time.time()
        stale, age, threshold = service.freshness()
        if stale and not service.config.http_serve_stale:
            reason = f"stale: no reading from the meter for {age or 0:.0f} s"
            response = respond(reason, 503, "text/plain")
            response.headers["Retry-After"] = str(max(1, math.ceil(threshold / 3)))
            return _aged(response, reading_at, now)
        return _aged(respond(text), reading_at, now)

    async def api_reading(request: Any) -> Any:
        reading, _, reading_at = state.snapshot()
        if reading is None or reading_at is None:
            return respond(b"", 204)
        return _aged(respond(json.dumps(reading, ensure_ascii=False)), reading_at, time.time())

    async def api_status(request: Any) -> Any:
        return respond(json.dumps(service.status()))

    async def status_page(request: Any) -> Any:
        return respond(status_html(service.status(), state.snapshot()[0]), ctype=_HTML)

    async def dashboard(request: Any) -> Any:
        reading, _, reading_at = state.snapshot()
        status = service.status()
        live = live_status(status, time.time())
        return respond(dashboard_html(status["hostname"], reading, reading_at, live), ctype=_HTML)

    async def api_events(request: Any) -> Any:
        hub = service.events
        if hub.full():
            response = respond("busy: too many event streams", 503, "text/plain")
            response.headers["Retry-After"] = "5"
            return response
        sock = getattr(request, "sock", None)
        writer = sock[1] if isinstance(sock, tuple) and len(sock) == 2 else None
        abort = writer.transport.abort if writer is not None else None
        stream = hub.stream(lambda: live_status(service.status(), time.time()), abort)
        return respond(stream, ctype="text/event-stream")  # type: ignore[arg-type]

    async def pico_only(request: Any) -> Any:
        return respond("Not found", 404, "text/plain")

    # Registered by call: microdot's route decorator is untyped.
    for path, handler in (
        ("/", index),
        ("/api/reading", api_reading),
        ("/api/status", api_status),
        ("/status.html", status_page),
        ("/dashboard", dashboard),
        ("/api/events", api_events),
        ("/reboot", pico_only),
        ("/update", pico_only),
    ):
        app.route(path)(handler)
    _add_settings_routes(app, service, respond)
    add_history_routes(app, lambda: service.history, respond)
    if service.config.csv_directory:
        from .sinks.csvlog import add_file_routes

        # Basic authentication is checked by the before_request hook above.
        add_file_routes(app, service.config.csv_directory, None)
    return app


def _add_settings_routes(app: Any, service: Served, respond: Callable[..., Any]) -> None:
    """``/settings`` and ``/api/settings`` (see :mod:`mbuspico.serve.settings_page`)."""
    from .settings_page import describe, render, same_origin, submitted_changes

    async def settings(request: Any) -> Any:
        headers = request.headers
        as_json = request.path == "/api/settings" or "application/json" in (
            headers.get("Accept") or ""
        )

        def page(status: int = 200, **notice: str | None) -> Any:
            body = render(
                service.config,
                service.saved_config,
                service.settings_token,
                effect=service.in_effect(),
                **notice,
            )
            return respond(body, status, _HTML)

        def fail(status: int, reason: str) -> Any:
            if as_json:
                return respond(json.dumps({"error": reason}), status)
            return page(status, error=reason)

        # Before_request has checked the credentials; without any, the page
        # (which can change the service) takes the generated passkey.
        if not service.config.http_password:
            passkey = service.settings_passkey
            if passkey is None:
                reason = (
                    "the settings page needs HTTP authentication: set http.user and "
                    "http.password (MBUSPICO_HTTP_AUTH_USER, MBUSPICO_HTTP_AUTH_PWD), or "
                    "start with --config FILE for a generated passkey"
                )
                if as_json:
                    return respond(json.dumps({"error": reason}), 403)
                return respond(reason, 403, "text/plain")  # not the page: it holds the token
            if not _passkey_given(headers.get("Authorization"), passkey):
                response = respond("Unauthorized: the settings passkey", 401, "text/plain")
                response.headers["WWW-Authenticate"] = 'Basic realm="mbuspico settings"'
                return response
        if request.method == "GET":
            if as_json:
                described = describe(service.config, service.saved_config, service.in_effect())
                return respond(json.dumps(described))
            return page()
        ctype = headers.get("Content-Type") or ""
        mime = ctype.split(";")[0].strip().lower()
        as_json = as_json or mime == "application/json"
        if not same_origin(headers):
            return fail(403, "refused: a request from another site (Origin/Referer)")
        if mime not in ("application/json", "application/x-www-form-urlencoded"):
            return fail(415, "send the settings as application/json or as the page's form")
        try:
            changes, token = submitted_changes(request.body, ctype, service.saved_config)
        except ConfigError as e:
            return fail(400, str(e))
        if token is not None and not hmac.compare_digest(
            token.encode(), service.settings_token.encode()
        ):
            return fail(403, "refused: the form's token is missing or old; reload the page")
        if service.config.config_file is None:
            return fail(409, "no --config FILE to save settings in: start with --config")
        try:
            result = await service.apply_settings(changes)
        except ConfigError as e:
            return fail(400, str(e))
        except OSError as e:
            return fail(500, f"cannot write {service.config.config_file}: {e.strerror}")
        if as_json:
            return respond(json.dumps({**result, "file": service.config.config_file}))
        if not result["changed"]:
            return page(message="Nothing changed.")
        message = f"Saved {', '.join(result['changed'])}."
        if result["applied"]:
            message += f" In effect now: {', '.join(result['applied'])}."
        if result["restart"]:
            message += f" Applies at the next start: {', '.join(result['restart'])}."
        if result.get("overridden"):
            message += (
                f" Set by a flag at start, which overrides the file at the next start: "
                f"{', '.join(result['overridden'])}."
            )
        return page(message=message)

    for path in ("/settings", "/api/settings"):
        app.route(path, methods=["GET", "POST"])(settings)


def _passkey_given(header: str | None, passkey: str) -> bool:
    """Whether Basic credentials carry ``passkey`` as the password (any user name)."""
    if header is None or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return hmac.compare_digest(given.encode(), passkey.encode())
