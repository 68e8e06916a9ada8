"""The HTTP front door of ``mbuspico serve``: what a client can make the service hold is bounded.

microdot (MBusPico's own server library, whose responses the service keeps
byte for byte) reads a request however slowly and however large it comes, and
its asyncio server accepts until the process runs out of file descriptors.
None of the Python servers built for exposure closes a client that trickles
its headers (uvicorn, hypercorn and aiohttp reset their timeouts on every byte
received; uvicorn's issue #157 has the request-start timeout still open), so
the service puts this gate in front of microdot instead of trading one
server for another:

* **Connections**: at most :attr:`Limits.connections` at once. A connection
  beyond it takes the place of the oldest one still sending its headers
  (that one gets 408 and is closed), so clients that never finish their
  headers cannot lock the door; when every connection is past its headers,
  the newcomer is refused at once with 503 and ``Retry-After``.
* **Time**: the request line, headers and body must arrive within
  :attr:`Limits.header_timeout` seconds (408 otherwise), whatever the rate.
* **Size**: at most :attr:`Limits.header_bytes` bytes of request line and
  headers and :attr:`Limits.headers` header lines (431), a body of at most
  :attr:`Limits.body` bytes with a ``Content-Length`` (413; 411 without one;
  chunked bodies are not taken).
* **Authentication** on every method, ``OPTIONS`` included, when the service
  has a password; an address that sends wrong credentials 5 times within a
  minute (with no right ones between) gets 429 until a minute after its last
  failure; other addresses, and so the right password elsewhere, are not
  affected.
* **Logs**: client errors are counted (:attr:`HttpGate.counters`) and
  summarised in at most one line a minute, never a traceback.

A whole request then goes to microdot on a reader that holds exactly it;
microdot answers and closes the connection (one request per connection, as
MBusPico's server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MethodType
from typing import Any, Callable

__all__ = ["HttpGate", "Limits"]

log = logging.getLogger("mbuspico.serve")

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
_AUTH_FAILURES = 5  # failures within _AUTH_WINDOW seconds before an address gets 429
_AUTH_WINDOW = 60.0
_AUTH_ADDRESSES = 1024  # addresses remembered; the least recent is forgotten beyond it
_SUMMARY_EVERY = 60.0


@dataclass(frozen=True)
class Limits:
    """What one client may make the server hold (settings ``http.*``)."""

    connections: int = 64
    """Connections at once."""
    header_timeout: float = 10.0
    """Seconds for the request line, headers and body to arrive."""
    header_bytes: int = 8192
    """Bytes of request line and headers."""
    headers: int = 64
    """Header lines."""
    body: int = 65536
    """Bytes of a body."""


class _RefusedError(Exception):
    """A request the gate answers itself."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class _Connection:
    writer: asyncio.StreamWriter
    address: str
    started: float
    evicted: bool = False


class HttpGate:
    """Bounds connections, time, header and body size and authentication failures.

    Args:
        app: The microdot application.
        limits: The limits.
        authorised: ``authorised(header)`` -> 200, 401 (no credentials) or 403
            (wrong ones); None: the service has no password.
        respond: ``respond(body, status, content_type)`` -> a microdot
            ``Response``, so the gate's answers carry the service's headers.

    Attributes:
        counters: Requests the gate refused, by reason: ``busy`` (503),
            ``evicted`` and ``timeout`` (408), ``too_large`` (431, 413),
            ``malformed`` (400, 411), ``unauthorised`` (401, 403),
            ``throttled`` (429); and ``served``.

    """

    def __init__(
        self,
        app: Any,
        limits: Limits,
        authorised: Callable[[str | None], int] | None,
        respond: Callable[..., Any],
    ) -> None:
        """Prepare the gate; :meth:`handle` serves one connection."""
        self.app = app
        self.limits = limits
        self.authorised = authorised
        self.respond = respond
        self.counters: Counter[str] = Counter()
        self._open: OrderedDict[int, _Connection] = OrderedDict()  # waiting for headers first
        self._all: dict[int, _Connection] = {}
        self._active = 0
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: Counter[tuple[str, str]] = Counter()  # (reason, address) since the summary
        self._summary_at = 0.0

    @property
    def active(self) -> int:
        """Connections being served."""
        return self._active

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (the ``asyncio.start_server`` callback)."""
        _add_microdot_methods(writer)
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if self._active >= self.limits.connections and not self._evict_one():
            self._note("busy", address)
            try:
                await self._answer(writer, 503, "busy: too many connections", {"Retry-After": "1"})
            finally:
                writer.close()
            return
        self._active += 1
        conn = _Connection(writer, address, time.monotonic())
        self._open[id(conn)] = conn
        self._all[id(conn)] = conn
        try:
            await self._serve(conn, reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass  # evicted, or the client went away: nothing to answer
        finally:
            self._open.pop(id(conn), None)
            self._all.pop(id(conn), None)
            self._active -= 1
            if not writer.is_closing():
                writer.close()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        limits = self.limits
        deadline = conn.started + limits.header_timeout
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limits.header_timeout)
            self._open.pop(id(conn), None)  # past its headers: no longer to be evicted
            method, headers = _parse(head, limits)
            self._check_auth(method, headers, conn.address)
            body = b""
            length = _content_length(headers, limits)
            if length:
                left = max(0.01, deadline - time.monotonic())
                body = await asyncio.wait_for(reader.readexactly(length), left)
        except asyncio.TimeoutError:
            if conn.evicted:  # its deadline came as it was evicted: counted once, there
                return
            self._note("timeout", conn.address)
            await self._answer(conn.writer, 408, "timeout: the request took too long to arrive")
            return
        except asyncio.LimitOverrunError:
            self._note("too_large", conn.address)
            await self._answer(conn.writer, 431, "request headers too large")
            return
        except _RefusedError as e:
            if e.status in (400, 411, 413, 431):
                self._note("malformed" if e.status in (400, 411) else "too_large", conn.address)
            await self._answer(conn.writer, e.status, str(e), _extra(e.status))
            return
        whole = asyncio.StreamReader()
        whole.feed_data(head + body)
        whole.feed_eof()
        self.counters["served"] += 1
        await self.app.handle_request(whole, conn.writer)

    def _check_auth(self, method: str, headers: Mapping[str, str], address: str) -> None:
        """Refuse a throttled address (429) and failed credentials (401, 403), any method.

        The answers are MBusPico's (``Unauthorized``/``Forbidden``, its realm),
        made with the service's own ``respond``.
        """
        if self.authorised is None:
            return
        now = time.monotonic()
        failures = self._failures.get(address)
        if failures is not None:
            while failures and now - failures[0] > _AUTH_WINDOW:
                failures.popleft()
            if len(failures) >= _AUTH_FAILURES:
                self._note("throttled", address)
                raise _RefusedError(
                    429, "too many failed logins from this address; try again later"
                )
        status = self.authorised(headers.get("authorization"))
        if status == 200:
            self._failures.pop(address, None)  # the right password: its count starts over
            return
        self._note("unauthorised", address)
        if status == 403:  # wrong credentials (401, none given, is a browser's first try)
            entry = self._failures.pop(address, None) or deque()
            entry.append(now)
            self._failures[address] = entry  # the most recent last
            while len(self._failures) > _AUTH_ADDRESSES:
                self._failures.popitem(last=False)
        raise _RefusedError(status, _REASONS.get(status, "Forbidden"))

    async def close(self, timeout: float = 2.0) -> None:
        """Drop every connection still open (the service stops), and wait for their handlers."""
        for conn in list(self._all.values()):
            conn.writer.transport.abort()
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _evict_one(self) -> bool:
        """Close the oldest connection still sending its headers; whether there was one."""
        while self._open:
            _, victim = self._open.popitem(last=False)
            if not victim.writer.is_closing():
                victim.evicted = True
                self._note("evicted", victim.address)
                victim.writer.write(_plain(408, "timeout: made room for another connection"))
                victim.writer.transport.abort()
                return True
        return False

    def _note(self, reason: str, address: str) -> None:
        """Count a refusal; log the first of a quiet minute, summarise the rest later."""
        self.counters[reason] += 1
        self._pending[(reason, address)] += 1
        now = time.monotonic()
        if now - self._summary_at >= _SUMMARY_EVERY:
            self.flush_summary(now)

    def flush_summary(self, now: float | None = None) -> None:
        """Log what the gate refused since the last summary, in one line (at most once a minute)."""
        now = time.monotonic() if now is None else now
        if not self._pending or now - self._summary_at < _SUMMARY_EVERY:
            return
        by_reason: Counter[str] = Counter()
        addresses: dict[str, set[str]] = {}
        for (reason, address), count in self._pending.items():
            by_reason[reason] += count
            addresses.setdefault(reason, set()).add(address)
        parts = [
            f"{count} {reason} ({', '.join(sorted(addresses[reason])[:3])}"
            f"{', ...' if len(addresses[reason]) > 3 else ''})"
            for reason, count in by_reason.most_common()
        ]
        log.warning("HTTP: refused %s (next summary in a minute at the earliest)", "; ".join(parts))
        self._pending.clear()
        self._summary_at = now

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        text: str,
        headers: Mapping[str, str] | None = None,
        close: bool = True,
    ) -> None:
        """Send the gate's own answer (the service's headers; ``Connection: close``) and close.

        401 and 403 are MBusPico's exact answers (its body, no ``Connection``).
        """
        if status in (401, 403):
            text = _REASONS[status]
            close = False
        response = self.respond(text, status, "text/plain")
        response.reason = _REASONS.get(status)
        response.headers.update(headers or {})
        if close:
            response.headers["Connection"] = "close"
        # A client that is gone or does not read: closing is all that is left.
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(response.write(writer), 2.0)


def _parse(head: bytes, limits: Limits) -> tuple[str, dict[str, str]]:
    """The method and headers (names lower-case) of a request head; refused if bad."""
    if len(head) > limits.header_bytes:
        raise _RefusedError(431, "request headers too large")
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise _RefusedError(400, "not an HTTP request") from None
    lines = text.split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # empty lines before the request line (RFC 9112 §2.2)
    request = lines[0].split(" ") if lines else []
    if len(request) != 3 or not request[0].isalpha() or not request[2].startswith("HTTP/1."):
        raise _RefusedError(400, "not an HTTP/1.x request line")
    fields = [line for line in lines[1:] if line]
    if len(fields) > limits.headers:
        raise _RefusedError(431, f"more than {limits.headers} header lines")
    headers: dict[str, str] = {}
    for line in fields:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _RefusedError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return request[0], headers


def _content_length(headers: Mapping[str, str], limits: Limits) -> int:
    if "transfer-encoding" in headers:
        raise _RefusedError(411, "send a body with Content-Length")
    text = headers.get("content-length")
    if text is None:
        return 0
    if not text.isdigit():
        raise _RefusedError(400, "malformed Content-Length")
    length = int(text)
    if length > limits.body:
        raise _RefusedError(413, f"request body larger than {limits.body} bytes")
    return length


def _extra(status: int) -> dict[str, str]:
    if status == 401:
        return {"WWW-Authenticate": 'Basic realm="MBusPico"'}
    if status == 429:
        return {"Retry-After": str(int(_AUTH_WINDOW))}
    return {}


def _plain(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _add_microdot_methods(writer: asyncio.StreamWriter) -> None:
    """Give the writer the ``awrite``/``aclose`` methods microdot writes responses with."""

    async def awrite(self: asyncio.StreamWriter, data: bytes) -> None:
        self.write(data)
        await self.drain()

    async def aclose(self: asyncio.StreamWriter) -> None:
        self.close()
        await self.wait_closed()

    writer.awrite = MethodType(awrite, writer)  # type: ignore[attr-defined]
    writer.aclose = MethodType(aclose, writer)  # type: ignore[attr-defined]
