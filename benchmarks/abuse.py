r"""Attack ``mbuspico serve`` on loopback and print what it held (issue 19's figures).

Runs the service as installed (``python -m mbuspico serve``) under
``prlimit --nofile=1024`` (systemd's default soft limit) against a simulated
Kaifa meter behind a symlink, then, one at a time, with every loop bounded in
count and time and every socket on 127.0.0.1:

1. 1,100 connections that send ``GET / HTTP/1.1\r\n`` and wait: the time a
   fresh ``GET /`` takes meanwhile (goal < 1 s);
2. 8 connections each sending up to 50,000 header lines of ~1.9 KB without the
   blank line: the service's RSS growth (goal < 32 MiB);
3. 200 sockets sending one byte a second: how many the service closed, and
   when (goal: all, within 10 s);
4. the meter unplugged (its pseudo-terminal closed) and plugged in again after
   3 s: the time from re-plug to the next reading;

and counts the service's log lines during each (goal < 100). Not part of the
test run: ``.venv/bin/python benchmarks/abuse.py``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from mbuspico.simulate import DEMO_KEY
from mbuspico.simulate.dlms import Simulator


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Status and body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Log:
    """The service's stderr, read on a thread, counted by line."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        """Start reading ``proc``'s stderr."""
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def mark(self) -> int:
        """Lines logged so far."""
        return len(self.lines)


def attack_idle(port: int, count: int = 1100) -> dict[str, Any]:
    """Hold ``count`` connections that sent a request line; time a fresh GET."""
    socks: list[socket.socket] = []
    refused = 0
    started = time.monotonic()
    for _ in range(count):
        if time.monotonic() - started > 30:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET / HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            refused += 1
    t0 = time.monotonic()
    status, _ = get(f"http://127.0.0.1:{port}/")
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    return {"sockets": len(socks), "connect_errors": refused, "fresh_get": status, "seconds": took}


def attack_headers(
    port: int, pid: int, connections: int = 8, lines: int = 50_000
) -> dict[str, Any]:
    """Header lines without end on ``connections`` sockets; the service's RSS growth."""
    before = rss_mib(pid)
    peak = before
    line = b"X-Flood: " + b"a" * 1900 + b"\r\n"

    def flood() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\n")
                deadline = time.monotonic() + 20
                for _ in range(lines):
                    if time.monotonic() > deadline:
                        break
                    s.sendall(line)
        except OSError:
            pass  # refused or closed by the service: the point

    threads = [threading.Thread(target=flood) for _ in range(connections)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(pid))
        time.sleep(0.05)
    return {"rss_before_mib": round(before, 1), "rss_peak_growth_mib": round(peak - before, 1)}


def attack_slow(port: int, count: int = 200, seconds: float = 15.0) -> dict[str, Any]:
    """``count`` sockets sending one byte a second; when the service closed each."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(count)]
    for s in socks:
        s.setblocking(False)
    request = b"GET / HTTP/1.1\r\nHost: slow\r\n" * 10
    closed_at: dict[int, float] = {}
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds and len(closed_at) < count:
        elapsed = time.monotonic() - started
        send = elapsed >= sent  # one byte a second
        for n, s in enumerate(socks):
            if n in closed_at:
                continue
            try:
                if send:
                    s.send(request[sent : sent + 1])
                if s.recv(4096) == b"":
                    closed_at[n] = elapsed
            except BlockingIOError:
                pass
            except OSError:
                closed_at[n] = elapsed
        if send:
            sent += 1
        time.sleep(0.1)
    for s in socks:
        s.close()
    return {
        "sockets": count,
        "closed": len(closed_at),
        "last_closed_after_s": round(max(closed_at.values(), default=float("nan")), 1),
    }


def replug(port: int, link: Path) -> dict[str, Any]:
    """Unplug the meter for 3 s; the time from re-plug to the next reading."""
    url = f"http://127.0.0.1:{port}/api/status"

    def readings() -> int:
        return int(json.loads(get(url)[1])["telegrams"]["good"])

    sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1.0, seed=2)
    sim.open()
    link.unlink(missing_ok=True)
    link.symlink_to(str(sim.port))
    sim.start()
    deadline = time.monotonic() + 20
    while readings() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    sim.close()  # unplugged: the pseudo-terminal vanishes
    time.sleep(3)
    again = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1.0, seed=3)
    again.open()
    link.unlink(missing_ok=True)
    link.symlink_to(str(again.port))
    before = readings()
    plugged = time.monotonic()
    again.start()
    took = float("nan")
    while time.monotonic() - plugged < 30:
        if readings() > before:
            took = time.monotonic() - plugged
            break
        time.sleep(0.1)
    again.close()
    return {"replug_to_reading_s": round(took, 2)}


def main() -> int:
    """Run every attack; print the figures; 0 when every goal is met."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # our own 1,100 sockets
    prlimit = shutil.which("prlimit")
    work = Path(tempfile.mkdtemp(prefix="mbuspico-abuse-"))
    link = work / "meter"
    port = free_port()
    first = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1.0, seed=1)
    first.open()
    link.symlink_to(str(first.port))
    first.start()
    command = [sys.executable, "-m", "mbuspico", "serve", "--port", str(link), "--key", DEMO_KEY]
    command += ["--http-host", "127.0.0.1", "--http-port", str(port)]
    env = {**os.environ, "MBUSPICO_MDNS_ENABLED": "false"}
    if prlimit:
        command = [prlimit, "--nofile=1024", *command]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)  # noqa: S603 - ours
    log = Log(proc)
    results: dict[str, Any] = {"nofile": "1024 (prlimit)" if prlimit else "not limited"}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/", 2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        attacks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("idle_1100", lambda: attack_idle(port)),
            ("header_flood", lambda: attack_headers(port, proc.pid)),
            ("slow_200", lambda: attack_slow(port)),
        ]
        for name, attack in attacks:
            mark = log.mark()
            results[name] = attack()
            time.sleep(1.5)
            results[name]["log_lines"] = log.mark() - mark
            print(name, results[name], flush=True)
        first.close()
        mark = log.mark()
        results["replug"] = replug(port, link)
        results["replug"]["log_lines"] = log.mark() - mark
        print("replug", results["replug"], flush=True)
        status = json.loads(get(f"http://127.0.0.1:{port}/api/status")[1])
        results["gate"] = status.get("http")
        print("gate counters", results["gate"])
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    ok = (
        results["idle_1100"]["seconds"] < 1.0
        and results["header_flood"]["rss_peak_growth_mib"] < 32
        and results["slow_200"]["closed"] == 200
        and results["slow_200"]["last_closed_after_s"] <= 10.5  # 10 s, measured every 0.1 s
        and all(results[k]["log_lines"] < 100 for k in ("idle_1100", "header_flood", "slow_200"))
    )
    print(json.dumps(results, indent=1))
    print("goals met" if ok else "goals missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
