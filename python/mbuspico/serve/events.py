"""Live readings pushed to browsers: Server-Sent Events (``GET /api/events``), bounded.

An event stream is a long-lived HTTP response, so :class:`EventHub` bounds
what the streams can make the service hold:

* **Count**: at most ``max_streams`` streams at once (setting
  ``http.max_event_streams``); one more is refused with 503 and
  ``Retry-After``. Each stream is also a connection of the HTTP gate
  (:mod:`mbuspico.serve.gate`) for as long as it lasts, so streams count
  against ``http.max_connections`` too.
* **A client that stops reading**: every stream gets an event at least every
  ``heartbeat`` seconds (a ``status`` event, which also carries what the page
  shows between readings: freshness and telegram counters). A stream whose
  last event has not been written within ``3 x heartbeat`` seconds (its
  socket buffer full) is aborted.
* **Shutdown**: :meth:`EventHub.close` ends every stream at once.

Wire format (WHATWG HTML, "Server-sent events"): ``retry: 3000`` first, then
``event: reading`` with the reading's JSON and ``event: status`` with the
status, each ``data:`` one line of JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Callable

__all__ = ["EventHub", "event"]

log = logging.getLogger("mbuspico.serve")


def event(name: str, doc: Any) -> bytes:
    """One Server-Sent Event: ``event: <name>`` and ``doc`` as one line of JSON."""
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {name}\ndata: {data}\n\n".encode()


class _Stream:
    def __init__(self, abort: Callable[[], None] | None) -> None:
        self.wake = asyncio.Event()
        self.progress = time.monotonic()
        self.abort = abort


class EventHub:
    """The open event streams and the readings they wait for.

    Args:
        max_streams: Streams at once (0: event streams off).
        heartbeat: Seconds between ``status`` events on a stream without readings.

    Attributes:
        refused: Streams refused because ``max_streams`` were open.
        aborted: Streams aborted because their client stopped reading.

    """

    def __init__(self, max_streams: int, heartbeat: float = 2.0) -> None:
        """No stream yet; :meth:`bind` ties the hub to the serving event loop."""
        self.max_streams = max_streams
        self.heartbeat = heartbeat
        self.refused = 0
        self.aborted = 0
        self._streams: set[_Stream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._latest: tuple[Any, float] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def active(self) -> int:
        """Streams open now."""
        return len(self._streams)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve streams on ``loop`` (the service's); a hub closed before opens again."""
        self._loop = loop
        self._closed = False

    def notify(self, reading: Any) -> None:
        """A new reading (any thread): every stream sends it as a ``reading`` event."""
        self._latest = (reading, time.time())
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed since the check
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for stream in self._streams:
            stream.wake.set()

    def full(self) -> bool:
        """Whether one more stream would be refused (and counts it as refused when so)."""
        if self._closed or len(self._streams) >= self.max_streams:
            self.refused += 1
            return True
        return False

    async def stream(
        self, status: Callable[[], Any], abort: Callable[[], None] | None = None
    ) -> AsyncIterator[bytes]:
        """The events of one stream, until the hub closes or the client goes.

        Args:
            status: Called for each ``status`` event; its result is the event's JSON.
            abort: Drops the client's connection (the watchdog's last resort).

        Yields:
            ``retry``, then the latest reading (if any) and a status, then a
            ``reading`` event per new reading and a ``status`` event every
            ``heartbeat`` seconds.

        """
        me = _Stream(abort)
        self._streams.add(me)
        self._arm_watchdog()
        try:
            yield b"retry: 3000\n\n"
            sent_at: float | None = None
            while not self._closed:
                latest = self._latest
                if latest is not None and latest[1] != sent_at:
                    sent_at = latest[1]
                    yield event("reading", {"reading": latest[0], "at": latest[1]})
                    me.progress = time.monotonic()
                yield event("status", status())
                me.progress = time.monotonic()
                me.wake.clear()
                if self._closed:
                    break
                latest = self._latest
                if latest is not None and latest[1] != sent_at:
                    continue  # a reading came while writing
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(me.wake.wait(), self.heartbeat)
        finally:
            self._streams.discard(me)

    def _arm_watchdog(self) -> None:
        if self._watchdog is None and self._loop is not None:
            self._watchdog = self._loop.call_later(self.heartbeat, self._check)

    def _check(self) -> None:
        """Abort streams whose client has not taken an event for 3 heartbeats."""
        self._watchdog = None
        limit = time.monotonic() - 3 * self.heartbeat
        for stream in list(self._streams):
            if stream.progress < limit and stream.abort is not None:
                self.aborted += 1
                log.debug("event stream aborted: its client stopped reading")
                stream.abort()
                stream.abort = None
        if self._streams and not self._closed:
            self._arm_watchdog()

    def close(self) -> None:
        """End every stream (the service stops); new ones are refused until :meth:`bind`."""
        self._closed = True
        self._wake_all()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
