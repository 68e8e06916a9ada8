"""The HTTP gate under attack on loopback: small, bounded versions of issue 19's findings.

Each test holds sockets against a service running in this process, with
limits made small so that the attacks stay small: what a client can make the
service hold (connections, time, header bytes, lines, body) is bounded, client
errors are answered and summarised (never a traceback), and authentication
holds on every method and slows a guessing address down.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import serve
from mbuspico.simulate.dlms import Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
USER, PASSWORD = "admin", "Pw-9c0ffee1"


@pytest.fixture
def meter() -> Iterator[Simulator]:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=4) as sim:
        sim.start()
        yield sim


@pytest.fixture
def service(meter: Simulator) -> Iterator[Any]:
    svc = serve(
        meter,
        http_max_connections=8,
        http_header_timeout=1.0,
        http_max_header_bytes=2048,
        http_max_headers=16,
        http_max_body=1024,
    )
    try:
        deadline = time.monotonic() + 10
        while svc.state.snapshot()[0] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        yield svc
    finally:
        svc.stop()


def connect(service: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.http_port), timeout=5)
    return sock


def exchange(service: Any, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a new connection; everything the server sends until it closes."""
    with connect(service) as sock:
        sock.settimeout(timeout)
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_idle_sockets_cannot_lock_the_door(service: Any) -> None:
    """50 clients that send a request line and wait: a fresh GET / is answered at once."""
    before = open_fds()
    idle = []
    for _ in range(50):
        sock = connect(service)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        idle.append(sock)
    try:
        time.sleep(0.2)
        assert service.gate.active <= 8 + 1  # the limit (one more while one is evicted)
        assert open_fds() - before <= 50 + 8 + 4  # our 50 client ends + what the server holds
        started = time.monotonic()
        answer = exchange(service, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        took = time.monotonic() - started
        assert status_of(answer) == 200, answer[:100]
        assert took < 1.0
        assert b'"meterNumber"' in answer
        # The kernel's accept queue hands the rest over as room is made: each takes
        # the place of an older one still waiting for its headers, or the header
        # deadline closes it; none is held longer.
        counters = service.gate.counters
        deadline = time.monotonic() + 5
        while counters["evicted"] + counters["timeout"] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counters["evicted"] + counters["timeout"] == 50
        assert service.gate.active == 0
    finally:
        for sock in idle:
            sock.close()


def test_every_connection_busy_past_its_headers_is_a_503(service: Any) -> None:
    gate = service.gate
    # Fill every slot with requests whose headers are done but whose body never comes.
    held = []
    for _ in range(8):
        sock = connect(service)
        sock.sendall(b"POST /api/settings HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        held.append(sock)
    try:
        time.sleep(0.2)
        answer = exchange(service, b"GET / HTTP/1.1\r\n\r\n")
        assert status_of(answer) == 503
        assert b"Retry-After: 1" in answer
        assert gate.counters["busy"] >= 1
    finally:
        for sock in held:
            sock.close()


def test_slow_clients_are_closed_by_the_header_deadline(service: Any) -> None:
    """A byte every 0.2 s never completes its headers in time: 408 and closed within the limit."""
    with connect(service) as sock:
        sock.settimeout(5)
        started = time.monotonic()
        answer = b""
        for byte in b"GET / HTTP/1.1\r\nHost: slow\r\n":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > 3:
                break
        with contextlib.suppress(OSError):
            answer = sock.recv(4096)
        closed_after = time.monotonic() - started
    assert status_of(answer) == 408
    assert closed_after < 3.0  # the deadline is 1 s; a trickle does not extend it
    assert service.gate.counters["timeout"] >= 1


def test_header_floods_are_refused_early_and_cost_no_memory(service: Any) -> None:
    """Header lines without end: 431 after the limit, whatever is sent after."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answers = []
    for _ in range(4):
        with connect(service) as sock:
            sock.settimeout(5)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            try:
                for _ in range(2000):  # 2000 lines of 1 KB: the server stops reading after 2 KB
                    sock.sendall(b"X-Flood: " + b"a" * 1000 + b"\r\n")
            except OSError:
                pass  # closed on us: the point
            try:
                answers.append(sock.recv(4096))
            except OSError:
                answers.append(b"")
    assert all(status_of(a) in (431, 0) for a in answers)
    assert any(status_of(a) == 431 for a in answers)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 32 * 1024  # KiB
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(40)) + b"\r\n"
    assert status_of(exchange(service, many)) == 431  # more than 16 header lines


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),  # no version
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS to a plain port
        (b"POST /api/settings HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"POST /api/settings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST /api/settings HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    ],
)
def test_malformed_requests_get_their_4xx_and_no_traceback(
    service: Any, request_bytes: bytes, status: int, capfd: pytest.CaptureFixture[str]
) -> None:
    assert status_of(exchange(service, request_bytes)) == status
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_client_errors_are_one_summary_line(service: Any, caplog: pytest.LogCaptureFixture) -> None:
    service.gate._summary_at = 0.0  # a quiet minute has passed
    with caplog.at_level(logging.INFO, logger="mbuspico"):
        for _ in range(100):
            exchange(service, b"garbage\r\n\r\n")
        service.gate.flush_summary()  # not due again within the minute: nothing more
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HTTP: refused")]
    assert lines == [
        "HTTP: refused 1 malformed (127.0.0.1) (next summary in a minute at the earliest)"
    ]
    assert service.gate.counters["malformed"] >= 100
    assert service.status()["http"]["malformed"] >= 100


def basic(user: str, password: str) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"


@pytest.fixture
def locked(meter: Simulator) -> Iterator[Any]:
    svc = serve(meter, http_user=USER, http_password=PASSWORD)
    try:
        yield svc
    finally:
        svc.stop()


def test_options_needs_credentials_too(locked: Any) -> None:
    for method in (b"OPTIONS", b"GET", b"HEAD", b"POST", b"DELETE"):
        answer = exchange(locked, method + b" / HTTP/1.1\r\n\r\n")
        assert status_of(answer) == 401, method
        assert b'WWW-Authenticate: Basic realm="MBusPico"' in answer
    answer = exchange(locked, b"OPTIONS / HTTP/1.1\r\n" + basic(USER, "nope") + b"\r\n")
    assert status_of(answer) == 403


def test_guessing_is_slowed_per_address(locked: Any, caplog: pytest.LogCaptureFixture) -> None:
    right = b"GET /api/status HTTP/1.1\r\n" + basic(USER, PASSWORD) + b"\r\n"
    assert status_of(exchange(locked, right)) == 200
    with caplog.at_level(logging.INFO, logger="mbuspico"):
        answers = [
            status_of(exchange(locked, b"GET / HTTP/1.1\r\n" + basic(USER, f"guess{i}") + b"\r\n"))
            for i in range(12)
        ]
    assert answers[:5] == [403] * 5
    assert answers[5:] == [429] * 7  # throttled: the guesses never reach the password check
    throttled = exchange(locked, right)
    assert status_of(throttled) == 429  # from this address, for a minute
    assert b"Retry-After: 60" in throttled
    logged = [r for r in caplog.records if r.getMessage().startswith("HTTP: refused")]
    assert len(logged) <= 1
    assert all("127.0.0.1" in r.getMessage() for r in logged)
    assert PASSWORD not in caplog.text
    # Another address is not locked out: the failures are per address.
    locked.gate._failures.clear()
    assert status_of(exchange(locked, right)) == 200
