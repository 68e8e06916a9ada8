"""The history's figures (issue 21): a year of one-second readings recorded, then read.

Usage: .venv/bin/python benchmarks/history.py [--days N] [--file PATH] [--keep]

Records ``--days`` (default 365) of one-second readings of a Kaifa MA309M
(the decoded reading of the Netz NÖ example push, power a random walk and
energy its integral, changed every second) into a new history file with
:class:`mbuspico.history.Recorder`, the year ending now, writing each
minute once complete as the service's writer does (``flush`` at the first
reading of the next minute). It prints:

* the file's size (the file and its WAL; goal < 50 MB for a year);
* the cost of recording a reading: ``add`` (in memory) plus the minute's
  write, per reading (goal < 50 us on this machine);
* ``GET /api/history`` of the last year at ``1h`` steps, JSON, over the
  loopback from a running ``mbuspico serve --demo`` on the file (goal <
  100 ms), and the dashboard's other queries (every reading of the last
  hour, 1-minute power of the last day, hourly energy of 48 h, daily of two
  months, monthly of two years), median of 5.

The readings are checked on the way back: the year's energy from the
history equals the register's last value minus its first.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from mbuspico import Decoder, history

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"  # the Netz NÖ documentation's key
PUSH = Path(__file__).resolve().parent.parent / "tests/data/dlms/netznoe_kaifa_ma309m_doc.hex"


def record(path: Path, days: int) -> dict[str, Any]:
    """Record ``days`` of one-second readings ending now; the figures of recording."""
    template: dict[str, Any] = dict(Decoder(KEY).decode(bytes.fromhex(PUSH.read_text().strip())))
    rng = random.Random(2026)  # noqa: S311 - test data
    end = int(time.time())
    start = end - days * 86400
    power, energy = 800.0, 12_345_678.0
    first_energy = None
    add = write = 0.0
    count = 0
    clock = time.perf_counter
    began = clock()
    with history.Recorder(path, tz="Europe/Vienna") as rec:
        for t in range(start, end):
            power = min(9000.0, max(0.0, power + rng.uniform(-40, 40)))
            energy += power / 3600
            reading = dict(template)
            reading["activePowerPlus"] = round(power)
            reading["activeEnergyPlus"] = round(energy)
            if first_energy is None:
                first_energy = reading["activeEnergyPlus"]
            a = clock()
            if t % 60 == 0:  # the writer wakes: the minute before is complete
                rec.flush(now=t)
            b = clock()
            rec.add(reading, t)
            c = clock()
            write += b - a
            add += c - b
            count += 1
            if count % (30 * 86400) == 0:
                print(f"  {count // 86400} days recorded", file=sys.stderr)
        last_energy = reading["activeEnergyPlus"]
    return {
        "readings": count,
        "seconds": clock() - began,
        "add_us": add / count * 1e6,
        "write_us": write / count * 1e6,
        "energy": last_energy - (first_energy or 0),
        "start": start,
        "end": end,
    }


def serve_and_time(path: Path, rounds: int = 5) -> dict[str, tuple[float, int]]:
    """Median milliseconds and bytes of the dashboard's ``/api/history`` requests."""
    from mbuspico.serve import Service
    from mbuspico.serve.config import Config

    service = Service(
        Config(
            demo=True,
            http_host="127.0.0.1",
            http_port=0,
            mdns_enabled=False,
            history_path=str(path),
        )
    )
    service.start()
    requests = {
        "1 year, 1h steps, energy": "field=activeEnergyPlus&from=-1y&step=1h",
        "1 year, 1h steps, power": "field=activePowerPlus&from=-1y&step=1h",
        "last hour, every reading": "field=activePowerPlus&from=-1h&step=raw",
        "last day, 1m power": "field=activePowerPlus&from=-24h&step=1m",
        "48 h, hourly energy": "field=activeEnergyPlus&from=-48h&step=1h",
        "2 months, daily energy": "field=activeEnergyPlus&from=-62d&step=1d",
        "2 years, monthly energy": "field=activeEnergyPlus&from=-2y&step=1mo",
    }
    out = {}
    try:
        base = f"http://127.0.0.1:{service.http_port}/api/history?"
        for name, query in requests.items():
            times = []
            size = 0
            for _ in range(rounds):
                began = time.perf_counter()
                with urllib.request.urlopen(base + query, timeout=30) as r:  # noqa: S310
                    body = r.read()
                times.append((time.perf_counter() - began) * 1000)
                size = len(body)
                json.loads(body)
            out[name] = (statistics.median(times), size)
    finally:
        service.stop()
    return out


def main() -> int:
    """Record, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365, help="days of one-second readings")
    parser.add_argument("--file", type=Path, help="the history file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary file")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="mbuspico-history-")
    path = args.file or Path(directory) / "history.sqlite3"
    if path.exists():
        parser.error(f"{path} exists: the benchmark records into a new file")
    print(f"recording {args.days} days of one-second readings into {path}", file=sys.stderr)
    figures = record(path, args.days)
    size = history.file_bytes(path)
    year = history.query(path, "activeEnergyPlus", figures["start"], figures["end"], "1mo")
    total = sum(v for v in year.columns["activeEnergyPlus"]["delta"] if v is not None)
    assert total == figures["energy"], (total, figures["energy"])
    info = history.info(path)
    print(f"readings recorded            {figures['readings']:,} in {figures['seconds']:.0f} s")
    print(f"file size                    {size / 1e6:.1f} MB (goal < 50 MB)")
    print(f"  minutes kept               {info['minutes']:,}; readings kept {info['readings']:,}")
    per = figures["add_us"] + figures["write_us"]
    print(
        f"recording a reading          {per:.1f} us (add {figures['add_us']:.1f} us + "
        f"the minute's write {figures['write_us']:.1f} us per reading; goal < 50 us)"
    )
    print(f"energy checked               {total:,} Wh from the history = the register's rise")
    for name, (ms, size) in serve_and_time(path).items():
        goal = " (goal < 100 ms)" if name.startswith("1 year, 1h") else ""
        print(f"GET /api/history {name:26s} {ms:6.1f} ms, {size / 1024:6.1f} KiB{goal}")
    if args.file is None and not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        Path(directory).rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
