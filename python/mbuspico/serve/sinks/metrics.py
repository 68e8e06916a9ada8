r"""Time-series sinks: Graphite (Carbon plaintext) and InfluxDB (line protocol).

Both store :func:`mbuspico.serve.sinks.flat_values` of each reading, stamped with the
reading's own ``timestamp`` (the meter clock) when it has one and with the
receive time otherwise. A ``timestamp`` without a UTC offset is taken as local
time of this host.

* :class:`GraphiteSink` writes the plaintext protocol of Graphite's Carbon
  (Graphite documentation, "Feeding In Your Data", section "The plaintext
  protocol"): one ``<metric path> <metric value> <metric timestamp>\n`` line per
  value, the timestamp in whole seconds since the Unix epoch, over TCP to
  port 2003.
* :class:`InfluxSink` POSTs batches of InfluxDB line protocol (InfluxDB v1
  documentation "Line protocol reference" and HTTP API ``/write``; InfluxDB v2
  documentation "Line protocol" and ``POST /api/v2/write``):
  ``<measurement>,<tag>=<value>,… <field>=<float>,… <timestamp ns>``.

Only the standard library is used (``socket``, ``http.client``).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import math
import queue
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import Sink, flat_values, meter_id

__all__ = ["GraphiteSink", "InfluxSink", "InfluxWriteError"]

log = logging.getLogger("mbuspico.serve")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_GRAPHITE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _reading_time(reading: Mapping[str, Any]) -> datetime | None:
    """The reading's ``timestamp`` as an aware datetime, or None.

    None when the reading has no timestamp or it is not ISO 8601. A timestamp
    without an offset is taken as local time of this host.
    """
    text = reading.get("timestamp")
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # naive: local time of this host
    return stamp


def _unix_ns(reading: Mapping[str, Any]) -> int:
    """Nanoseconds since the Unix epoch of the reading (exact, no float rounding)."""
    stamp = _reading_time(reading)
    if stamp is None:
        return time.time_ns()
    delta = stamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` without NaN and ±inf, which neither Carbon nor InfluxDB store."""
    return {name: value for name, value in values.items() if math.isfinite(value)}


class GraphiteSink(Sink):
    r"""Send readings to Graphite's Carbon over TCP with the plaintext protocol.

    Each reading becomes one line per :func:`~mbuspico.serve.sinks.flat_values` item::

        <prefix>.<name> <value> <unix seconds>\n

    e.g. ``mbuspico.activePowerPlus 1055.0 1643989400``, all lines of a reading
    in one ``sendall`` on a persistent connection. The time is the reading's
    ``timestamp`` (whole seconds, truncated) or, without one, the time of
    delivery. Metric paths contain only ``[A-Za-z0-9_.-]``: other characters of
    the prefix are replaced by ``_``. NaN and infinite values are left out.

    Before sending, a connection Carbon has closed is noticed (Carbon never
    writes to clients, so a readable socket is a closed one) and reopened.
    When a send fails, the sink reconnects once and sends again; if that fails
    too the reading is counted as failed and later readings reconnect with
    exponential backoff (1 s doubling up to 60 s); readings arriving while
    waiting fail at once without touching the network.

    Args:
        host: Carbon host name or address.
        port: Carbon plaintext port.
        prefix: First component(s) of every metric path; ``""`` for none.
        timeout: Seconds for connecting and for each send.
        maxsize: Readings queued while Carbon is slow (see :class:`Sink`).

    """

    max_backoff = 60.0
    """Longest wait, in seconds, between reconnection attempts."""

    def __init__(
        self,
        host: str,
        port: int = 2003,
        *,
        prefix: str = "mbuspico",
        timeout: float = 5.0,
        maxsize: int = 100,
    ) -> None:
        """Create the sink; nothing is opened before :meth:`start`."""
        super().__init__("graphite", maxsize)
        self.host = host
        self.port = port
        self.prefix = _GRAPHITE_NAME.sub("_", prefix).strip(".")
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._backoff = 0.0
        self._retry_at = 0.0

    def __repr__(self) -> str:
        """Where the sink sends to."""
        return f"GraphiteSink({self.host!r}, {self.port}, prefix={self.prefix!r})"

    def lines(self, reading: Mapping[str, Any], now: float | None = None) -> list[str]:
        r"""The plaintext-protocol lines of ``reading``, each ending in ``\n``.

        Args:
            reading: A reading from :meth:`mbuspico.Decoder.decode`.
            now: Unix time used when the reading has no ``timestamp``
                (default: the current time).

        Returns:
            One line per finite value; empty when the reading has none.

        """
        stamp = _reading_time(reading)
        if stamp is not None:
            seconds = int(stamp.timestamp())
        else:
            seconds = int(time.time() if now is None else now)
        head = f"{self.prefix}." if self.prefix else ""
        return [
            f"{head}{_GRAPHITE_NAME.sub('_', name)} {value!r} {seconds}\n"
            for name, value in _finite(flat_values(reading)).items()
        ]

    def connect(self) -> None:
        """Open the TCP connection to Carbon.

        Raises:
            OSError: Carbon cannot be reached; the next attempt waits for the
                backoff.

        """
        self._open()

    def _open(self) -> socket.socket:
        self._close_socket()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError:
            self._fail()
            raise
        log.info("%s: connected to %s:%s", self.name, self.host, self.port)
        self._sock = sock
        return sock

    def _fail(self) -> None:
        """Wait longer before the next connection attempt."""
        self._close_socket()
        self._backoff = min(max(1.0, self._backoff * 2), self.max_backoff)
        self._retry_at = time.monotonic() + self._backoff

    def disconnect(self) -> None:
        """Close the connection."""
        self._close_socket()

    def deliver(self, reading: Mapping[str, Any]) -> None:
        """Send the lines of ``reading`` in one ``sendall``.

        Raises:
            OSError: Not connected and the backoff has not elapsed, the
                connection cannot be opened, or sending failed after one
                reconnection.

        """
        payload = "".join(self.lines(reading)).encode("ascii")
        if not payload:
            return
        if self._sock is not None and self._peer_closed(self._sock):
            log.info("%s: connection closed by %s:%s", self.name, self.host, self.port)
            self._close_socket()
            self._retry_at = 0.0  # a closed connection is reopened at once
        sock = self._sock
        if sock is None:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise OSError(
                    f"not connected to {self.host}:{self.port}, next attempt in {wait:.0f} s"
                )
            sock = self._open()
        try:
            sock.sendall(payload)
        except OSError as e:
            log.info("%s: send failed (%s), reconnecting", self.name, e)
            sock = self._open()
            try:
                sock.sendall(payload)
            except OSError:
                self._fail()
                raise
        self._backoff = 0.0

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """Whether Carbon closed ``sock``: it never sends, so readable means closed."""
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            data = sock.recv(4096, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: still open
        except OSError:
            return True  # reset
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)
        if not data:
            return True  # end of stream
        sock.recv(len(data))  # unexpected bytes from the server: discard
        return False

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _escape(text: str, special: str) -> str:
    r"""Backslash-escape each character of ``special`` in ``text``.

    Backslashes are doubled first, so that no character of ``text`` can escape
    a delimiter (InfluxDB 2 reads ``\\`` back as one backslash; InfluxDB 1
    keeps both). Line protocol cannot carry line breaks in names or tag values;
    they become spaces (and are then escaped when space is special).
    """
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.replace("\\", "\\\\")
    for char in special:
        text = text.replace(char, "\\" + char)
    return text


def _escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key: comma, equals sign, space."""
    return _escape(text, ",= ")


def _escape_measurement(text: str) -> str:
    """Escape a measurement name: comma and space."""
    return _escape(text, ", ")


class InfluxWriteError(Exception):
    """InfluxDB did not accept a write.

    Attributes:
        status: HTTP status, or None when the server could not be reached.
        retryable: Whether sending the same batch again may succeed (5xx,
            429, connection errors); 4xx errors are not retried.

    The message is the server's error text; it never contains credentials.

    """

    def __init__(self, message: str, status: int | None, retryable: bool) -> None:
        """Record the status with the message."""
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class InfluxSink(Sink):
    r"""Write readings to InfluxDB 1.x or 2.x as batches of line protocol.

    Each reading becomes one line::

        <measurement>,meter=<meter id>,protocol=<protocol>[,<tag>=<v>…] \
            <field>=<float>,… <unix ns>

    with ``meter`` from :func:`~mbuspico.serve.sinks.meter_id` (meter number,
    P1 equipment id, M-Bus identification number), the fields from
    :func:`~mbuspico.serve.sinks.flat_values` (NaN and infinite
    values left out; a reading with no value writes nothing), tags sorted by
    key as InfluxDB recommends, and the reading's ``timestamp`` in
    nanoseconds (``precision=ns``), or the time it was queued without one.
    Commas and spaces in the measurement and commas, equals signs and spaces
    in tag keys, tag values and field keys are escaped with a backslash; line
    breaks become spaces; empty tag values are left out.

    Lines are collected into a batch that is POSTed when it holds
    ``batch_size`` lines, ``flush_interval`` seconds after its first line, and
    at :meth:`close`:

    * version 1: ``POST <url>/write?db=<database>&precision=ns``, with HTTP
      Basic authentication when ``username`` is given;
    * version 2: ``POST <url>/api/v2/write?org=<org>&bucket=<bucket>&precision=ns``
      with ``Authorization: Token <token>``.

    A 2xx answer (InfluxDB sends 204) counts the batch's readings as
    published. 5xx, 429 and connection errors are retried up to ``retries``
    times, waiting :attr:`retry_delay` seconds doubled each time (no waiting
    once :meth:`close` was called); a batch that still fails so is kept (see
    ``buffer``) and sent again, before newer ones, at the next flush. Other
    4xx answers are not retried: the batch is counted as failed. Failures are
    logged once when they start (with the server's message) and once when
    writing works again. :meth:`publish` never blocks: readings wait in the
    queue while a batch is being sent.

    The password and token appear in no log record, ``repr()`` or exception.

    Args:
        url: Base URL of the server, ``http://host:8086`` or ``https://…``,
            optionally with a path prefix (reverse proxy); no credentials.
        version: 1 or 2, the write API to use.
        database: Database (version 1; required).
        username: User for Basic authentication (version 1).
        password: Password for Basic authentication (version 1).
        org: Organization name (version 2; required).
        bucket: Bucket name (version 2; required).
        token: API token (version 2).
        measurement: Measurement name of every line.
        tags: Extra tags added to every line (e.g. ``{"site": "home"}``).
        batch_size: Lines per POST (≥ 1).
        buffer: Readings kept, in order, while InfluxDB is unreachable or
            answers 5xx/429; sent before newer ones when it is back; the
            oldest dropped (and counted) beyond it. The default keeps two
            hours of one-second readings.
        flush_interval: Seconds a line waits at most for its batch to fill.
        retries: Additional attempts for a retryable failure (≥ 0).
        timeout: Seconds for connecting and for the answer of each POST.
        maxsize: Readings queued while a batch is being sent (see :class:`Sink`).

    Raises:
        ValueError: Unsupported URL or version, a required name missing,
            credentials in the URL, or a bad batch size, interval or retry
            count.

    """

    retry_delay = 0.5
    """Seconds before the first retry; doubled for each further one."""

    max_retry_delay = 30.0
    """Longest wait, in seconds, between two attempts."""

    def __init__(
        self,
        url: str,
        *,
        version: int = 1,
        database: str | None = None,
        username: str | None = None,
        password: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        token: str | None = None,
        measurement: str = "meter",
        tags: Mapping[str, str] | None = None,
        batch_size: int = 10,
        flush_interval: float = 10.0,
        retries: int = 3,
        timeout: float = 5.0,
        maxsize: int = 100,
        buffer: int = 7200,
    ) -> None:
        """Check the settings; nothing is opened before the first batch."""
        super().__init__("influxdb", maxsize)
        if buffer < 1:
            raise ValueError("InfluxDB buffer must be at least 1 reading")
        self.buffer = buffer
        self._backlog: deque[tuple[list[str], int]] = deque()  # (lines, readings), oldest first
        self._backlog_readings = 0
        self._failing = 0  # batches failed in a row: the first is logged, then the recovery
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("InfluxDB URL must be http://host[:port] or https://host[:port]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("give InfluxDB credentials as arguments, not in the URL")
        if version not in (1, 2):
            raise ValueError(f"InfluxDB version must be 1 or 2, not {version!r}")
        if version == 1 and not database:
            raise ValueError("InfluxDB version 1 needs a database")
        if version == 2 and not (org and bucket):
            raise ValueError("InfluxDB version 2 needs an org and a bucket")
        if batch_size < 1 or flush_interval < 0 or retries < 0:
            raise ValueError("batch_size must be ≥ 1, flush_interval and retries ≥ 0")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.version = version
        self.database = database
        self.username = username
        self.org = org
        self.bucket = bucket
        self.measurement = measurement
        self.tags = dict(tags or {})
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._netloc = parts.netloc
        if version == 1:
            query = {"db": database or "", "precision": "ns"}
            self._path = f"{parts.path.rstrip('/')}/write?{urlencode(query, quote_via=quote)}"
        else:
            query = {"org": org or "", "bucket": bucket or "", "precision": "ns"}
            self._path = (
                f"{parts.path.rstrip('/')}/api/v2/write?{urlencode(query, quote_via=quote)}"
            )
        self._auth: str | None = None  # the Authorization header: secret
        if version == 1 and username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(pair).decode("ascii")
        elif version == 2 and token:
            self._auth = f"Token {token}"
        self._batch: list[str] = []
        self._batch_readings = 0
        self._deadline = 0.0
        self._closing = threading.Event()

    def __repr__(self) -> str:
        """Where the sink writes to, without password or token."""
        where = (
            f"database={self.database!r}"
            if self.version == 1
            else f"org={self.org!r}, bucket={self.bucket!r}"
        )
        return (
            f"InfluxSink({self.url!r}, version={self.version}, {where}, "
            f"measurement={self.measurement!r}, auth={self._auth is not None})"
        )

    def line(self, reading: Mapping[str, Any]) -> str | None:
        """The line-protocol line of ``reading``, without the line break.

        Returns:
            None when the reading has no finite value (line protocol needs at
            least one field).

        """
        values = _finite(flat_values(reading))
        if not values:
            return None
        protocol = str(reading.get("protocol") or "unknown")
        tags = dict(self.tags)
        tags["meter"] = meter_id(reading) or protocol
        tags["protocol"] = protocol
        tag_text = "".join(
            f",{_escape_key(key)}={_escape_key(value)}"
            for key, value in sorted(tags.items())
            if key and value
        )
        fields = ",".join(f"{_escape_key(name)}={value!r}" for name, value in values.items())
        return f"{_escape_measurement(self.measurement)}{tag_text} {fields} {_unix_ns(reading)}"

    def deliver(self, reading: Mapping[str, Any]) -> None:
        """Write ``reading`` at once, outside any batch (with retries).

        Raises:
            InfluxWriteError: InfluxDB did not accept it.

        """
        text = self.line(reading)
        if text is not None:
            self.write([text])

    def write(self, lines: list[str]) -> None:
        """POST ``lines`` as one request, retrying retryable failures.

        Raises:
            InfluxWriteError: The last attempt failed; ``status`` tells why.

        """
        body = ("\n".join(lines) + "\n").encode("utf-8")
        delay = self.retry_delay
        attempt = 0
        while True:
            try:
                self._post(body)
                return
            except InfluxWriteError as e:
                if not e.retryable or attempt >= self.retries:
                    raise
                attempt += 1
                log.debug(
                    "%s: write failed (%s), attempt %d of %d in %.1f s",
                    self.name,
                    e,
                    attempt + 1,
                    self.retries + 1,
                    delay,
                )
                self._closing.wait(delay)
                delay = min(delay * 2, self.max_retry_delay)

    def close(self, timeout: float = 5.0) -> None:
        """Send the pending batch (retries without waiting) within ``timeout`` s, then stop."""
        self._closing.set()
        super().close(timeout)

    def _post(self, body: bytes) -> None:
        connection_type = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = connection_type(self._host, self._port, timeout=self.timeout)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._auth is not None:
            headers["Authorization"] = self._auth
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            answer = response.read(4096)
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as e:
            raise InfluxWriteError(f"{self._netloc}: {type(e).__name__}: {e}", None, True) from None
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        message = f"HTTP {status}: {_server_message(answer)}"
        retryable = status >= 500 or status == 429
        if retry_after and retry_after.isdigit():
            message += f" (Retry-After {retry_after} s)"
        raise InfluxWriteError(message, status, retryable)

    def _flush(self) -> None:
        """POST the kept batches, oldest first, then the pending one; count their readings."""
        lines, count = self._batch, self._batch_readings
        self._batch, self._batch_readings = [], 0
        if count:
            self._keep(lines, count)
        while self._backlog:
            lines, count = self._backlog[0]
            try:
                if lines:
                    self.write(lines)
            except InfluxWriteError as e:
                if e.retryable and not self._closing.is_set():
                    self._failed_run(e, kept=True)
                    return  # kept in order; tried again at the next flush
                self._backlog.popleft()
                self._backlog_readings -= count
                with self._lock:
                    self.failed += count
                self._failed_run(e, kept=False)
                continue
            except Exception as e:  # never fatal: counted
                self._backlog.popleft()
                self._backlog_readings -= count
                with self._lock:
                    self.failed += count
                self._failed_run(e, kept=False)
                continue
            self._backlog.popleft()
            self._backlog_readings -= count
            with self._lock:
                self.published += count
            if self._failing:
                log.info(
                    "%s: writing works again after %d failed attempts (%d readings kept meanwhile)",
                    self.name,
                    self._failing,
                    self._backlog_readings + count,
                )
                self._failing = 0

    def _keep(self, lines: list[str], count: int) -> None:
        """Queue a batch behind the kept ones; drop (and count) the oldest beyond ``buffer``."""
        self._backlog.append((lines, count))
        self._backlog_readings += count
        while self._backlog_readings > self.buffer and len(self._backlog) > 1:
            _, dropped = self._backlog.popleft()
            self._backlog_readings -= dropped
            with self._lock:
                self.dropped += dropped
            if dropped:
                log.debug("%s: buffer full, dropped %d reading(s)", self.name, dropped)

    def _failed_run(self, error: Exception, *, kept: bool) -> None:
        """Log the first failure of a run (WARNING); the rest at debug level."""
        self._failing += 1
        what = "kept to send again" if kept else "not accepted, counted as failed"
        if self._failing == 1:
            log.warning(
                "%s: could not write to %s: %s (%s; not logged again until writing works)",
                self.name,
                self._netloc,
                error,
                what,
            )
        else:
            log.debug("%s: could not write: %s (%s)", self.name, error, what)

    def status(self) -> dict[str, Any]:
        """Counters for ``/api/status``, plus ``kept`` (readings waiting to be sent again)."""
        out = super().status()
        out["kept"] = self._backlog_readings
        return out

    def _run(self) -> None:
        """Collect lines into batches; send them when full, due, or at close."""
        while True:
            timeout = None
            if self._batch_readings:
                timeout = max(0.0, self._deadline - time.monotonic())
            try:
                reading = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._flush()
                continue
            if reading is None:
                self._flush()
                return
            try:
                text = self.line(reading)
            except Exception as e:  # a malformed reading must not stop the sink
                with self._lock:
                    self.failed += 1
                log.warning("%s: could not encode a reading: %s", self.name, e)
                continue
            if not self._batch_readings:
                self._deadline = time.monotonic() + self.flush_interval
            self._batch_readings += 1
            if text is not None:
                self._batch.append(text)
            if self._batch_readings >= self.batch_size:
                self._flush()


def _server_message(answer: bytes) -> str:
    """The error text of an InfluxDB answer body (``error`` in v1, ``message`` in v2)."""
    text = answer.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "error"):
            if isinstance(doc.get(key), str):
                text = doc[key]
                break
    return text[:300] or "(no message)"
