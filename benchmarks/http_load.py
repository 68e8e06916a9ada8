"""HTTP load on ``mbuspico serve --demo``: throughput, latency, errors, RSS, fresh readings.

Starts ``mbuspico serve --demo --http-host 127.0.0.1 --http-port 0`` as a
subprocess (the port is parsed from its start line on stderr), waits for the
first reading, then drives ``--clients`` concurrent clients (threads, each with
its own keep-alive ``http.client`` connection) against ``/`` and
``/api/reading`` for ``--duration`` seconds, loopback only. Meanwhile a monitor
polls ``/api/reading`` on its own connection and notes when the meter's
``frameCounter`` moves on, and the server's RSS is sampled from ``/proc``.

Reports requests/s, latency p50/p90/p99/max, errors (must be 0), the server's
RSS before and after (must be flat) and whether the reading kept advancing at
the simulated meter's interval (no gap over 2 intervals) as Markdown; exits 1
if an invariant fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DEMO_INTERVAL = 1.0
"""Seconds between the demo meter's telegrams (``Service._start_demo``)."""
PATHS = ("/", "/api/reading")


def rss_kib(pid: int) -> int | None:
    """VmRSS of process ``pid`` in KiB (None when it is gone or not Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


@dataclass
class ClientStats:
    """What one client thread measured."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    errors: list[str] = field(default_factory=list)
    connections: int = 0


class Server:
    """``mbuspico serve --demo`` in a subprocess; its stderr drained in a thread."""

    def __init__(self) -> None:
        """Start the server and wait for its HTTP start line."""
        exe = str(Path(sys.executable).with_name("mbuspico"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [exe, "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: deque[str] = deque(maxlen=200)
        self.port: int | None = None
        found = threading.Event()
        stderr = self.proc.stderr
        assert stderr is not None

        def drain() -> None:
            for line in stderr:
                self.lines.append(line.rstrip("\n"))
                if self.port is None and (m := re.search(r"HTTP on 127\.0\.0\.1:(\d+)", line)):
                    self.port = int(m.group(1))
                    found.set()
            found.set()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        if not found.wait(30) or self.port is None:
            self.stop()
            msg = "mbuspico serve did not start:\n" + "\n".join(self.lines)
            raise RuntimeError(msg)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def stop(self) -> int | None:
        """SIGTERM, wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._drain.join(5)
        return self.proc.returncode


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes, bool]:
    """One GET on a kept-alive connection: status, body, whether the server closes it."""
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, response.will_close


def client(port: int, stop_at: float, index: int, out: ClientStats) -> None:
    """Alternate ``/`` and ``/api/reading`` until ``stop_at``; record latencies and errors."""
    conn: http.client.HTTPConnection | None = None
    i = index
    while time.monotonic() < stop_at:
        path = PATHS[i % len(PATHS)]
        i += 1
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            out.connections += 1
        start = time.perf_counter()
        try:
            status, body, will_close = get(conn, path)
        except (OSError, http.client.HTTPException) as e:
            out.errors.append(f"{path}: {e!r}")
            conn.close()
            conn = None
            continue
        elapsed = time.perf_counter() - start
        if status != 200 or not body.startswith(b"{"):
            out.errors.append(f"{path}: HTTP {status} {body[:60]!r}")
        else:
            out.latencies[path].append(elapsed)
        if will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


@dataclass
class Monitor:
    """Polls ``/api/reading``: when the frame counter and meter time moved on."""

    changes: list[tuple[float, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    polls: int = 0

    def run(self, port: int, stop_at: float, period: float = 0.05) -> None:
        """Poll until ``stop_at``."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        last: int | None = None
        while time.monotonic() < stop_at:
            try:
                status, body, will_close = get(conn, "/api/reading")
                now = time.monotonic()
                self.polls += 1
                if status != 200:
                    self.errors.append(f"monitor: HTTP {status}")
                else:
                    reading: dict[str, Any] = json.loads(body)
                    fc = int(reading["frameCounter"])
                    if fc != last:
                        self.changes.append((now, fc, str(reading["timestamp"])))
                        last = fc
                if will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                self.errors.append(f"monitor: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            time.sleep(period)
        conn.close()


def wait_first_reading(port: int, timeout: float = 30.0) -> None:
    """Wait until ``/`` answers 200 (the demo meter's first telegram arrived)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            if get(conn, "/")[0] == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    msg = "no reading within {timeout} s"
    raise RuntimeError(msg)


def fmt_ms(seconds: float) -> str:
    """Milliseconds with two decimals."""
    return f"{seconds * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the load; 0 when there were no errors, RSS stayed flat and readings kept coming."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not measured")
    parser.add_argument("--rss-tolerance-kib", type=int, default=4096)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients must be >= 1 and --duration > 0")

    server = Server()
    assert server.port is not None
    port = server.port
    try:
        wait_first_reading(port)
        # Warm-up: the same load, not measured, so lazily built state settles.
        warm = [ClientStats() for _ in range(args.clients)]
        stop_at = time.monotonic() + args.warmup
        threads = [
            threading.Thread(target=client, args=(port, stop_at, i, warm[i]))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss_before = rss_kib(server.pid)

        stats = [ClientStats() for _ in range(args.clients)]
        monitor = Monitor()
        rss_series: list[int] = []
        started = time.monotonic()
        stop_at = started + args.duration
        threads = [
            threading.Thread(target=client, args=(port, stop_at, i, stats[i]))
            for i in range(args.clients)
        ]
        threads.append(threading.Thread(target=monitor.run, args=(port, stop_at)))
        for t in threads:
            t.start()
        while time.monotonic() < stop_at:
            time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
            if (kib := rss_kib(server.pid)) is not None:
                rss_series.append(kib)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_after = rss_kib(server.pid)
        alive = server.proc.poll() is None
    finally:
        code = server.stop()

    # -- numbers ----------------------------------------------------------------------------
    by_path = {p: sorted(x for s in stats for x in s.latencies[p]) for p in PATHS}
    every = sorted(x for p in PATHS for x in by_path[p])
    errors = [e for s in stats for e in s.errors] + monitor.errors
    connections = sum(s.connections for s in stats)
    requests = len(every) + sum(len(s.errors) for s in stats)
    gaps = [b[0] - a[0] for a, b in zip(monitor.changes, monitor.changes[1:])]
    if monitor.changes:
        gaps.append(stop_at - monitor.changes[-1][0])  # no change since: as good as a gap
    max_gap = max(gaps) if gaps else float("inf")
    counters = [fc for _, fc, _ in monitor.changes]
    steps = [b - a for a, b in zip(counters, counters[1:])]
    advancing = (
        len(monitor.changes) >= max(2, int(args.duration / DEMO_INTERVAL) - 2)
        and max_gap <= 2 * DEMO_INTERVAL
        and all(s == 1 for s in steps)
    )
    growth = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    rss_flat = growth is not None and growth <= args.rss_tolerance_kib

    lines = [
        "# mbuspico serve: HTTP load report",
        "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
        f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs",
        f"- server: `mbuspico serve --demo` (simulated kaifa-ma309m, a telegram every "
        f"{DEMO_INTERVAL:g} s), pid {server.pid}, 127.0.0.1:{port}",
        f"- load: {args.clients} client threads in one process (http.client keep-alive), "
        f"alternating `/` and `/api/reading`, {args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up; TCP connections opened: {connections}"
        + (
            " (the server closes the connection after each response: no keep-alive, "
            "so every request includes a connect)"
            if connections >= 0.9 * requests
            else ""
        ),
        "",
        "| path | requests | requests/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, values in [*by_path.items(), ("all", every)]:
        lines.append(
            f"| {name} | {len(values)} | {len(values) / elapsed:.0f} | "
            f"{fmt_ms(percentile(values, 0.5))} | {fmt_ms(percentile(values, 0.9))} | "
            f"{fmt_ms(percentile(values, 0.99))} | {fmt_ms(values[-1] if values else 0.0)} |"
        )
    series = ", ".join(f"{kib / 1024:.1f}" for kib in rss_series)
    first_time = monitor.changes[0][2] if monitor.changes else "-"
    last_time = monitor.changes[-1][2] if monitor.changes else "-"
    lines += [
        "",
        f"- errors: {len(errors)} of {requests} requests"
        + (f" (first: {errors[0]})" if errors else ""),
        f"- server RSS: {(rss_before or 0) / 1024:.1f} MiB before, "
        f"{(rss_after or 0) / 1024:.1f} MiB after"
        + (f" ({growth:+d} KiB)" if growth is not None else "")
        + f"; during the load (MiB, 1 s apart): {series}",
        f"- reading kept advancing: {'yes' if advancing else 'NO'}: "
        f"{len(monitor.changes)} new frame counters in {args.duration:g} s "
        f"(monitor polled {monitor.polls} times, every 50 ms), steps "
        f"{sorted(set(steps)) or '-'}, longest gap {max_gap:.2f} s "
        f"(limit {2 * DEMO_INTERVAL:g} s); meter time {first_time} -> {last_time}",
        f"- server still running at the end: {'yes' if alive else 'NO'}; exit code after "
        f"SIGTERM: {code}",
    ]
    problems = []
    if errors:
        problems.append(f"{len(errors)} errors")
    if not rss_flat:
        problems.append(f"server RSS grew by {growth} KiB")
    if not advancing:
        problems.append("the reading did not keep advancing at the meter's interval")
    if not alive or code != 0:
        problems.append(f"server died or exited with {code}")
    lines.append("")
    lines.append("FAILED: " + "; ".join(problems) if problems else "All invariants hold.")
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
