"""A month of 1-second telegrams: read_capture -> decode -> to_pandas (not a test).

Usage: .venv/bin/python benchmarks/month.py [--telegrams N] [--cache FILE] [--columns]
       [--fast | --both] [--stages]

Generates (once, then reuses) a capture of a Kaifa MA309M of Netz NÖ pushing
every second for 30 days (2,592,000 telegrams of 282 bytes, 731 MB): real
encrypted M-Bus telegrams from mbuspico's own encoder (``_core.encode_push``,
as the simulator builds them) with values that change every second (power a
random walk, energy its integral, voltages and power factor drifting), the
meter clock in Europe/Vienna from 2026-03-01 (the month with the switch to
summer time). Then, in a fresh interpreter, it times the whole pipeline, by
default the dict path::

    df = mbuspico.to_pandas(decoder.decode_iter(mbuspico.read_capture(path)))

with ``--fast`` the columnar path (telegrams decoded in batches straight into
columns, no dict per reading)::

    df = mbuspico.to_pandas(mbuspico.read_capture(path), decoder=decoder)

and with ``--both`` each in its own interpreter, one after the other. It prints
the wall and CPU time, telegrams per second and the pipeline's peak RSS (VmHWM
right after ``to_pandas`` returns, before the checks), and checks
the frame: one row per telegram, the index strictly increasing, the last
energy and power as generated. ``--stages`` also times deframing alone and
deframing + decoding (``decode_iter``); ``--columns`` passes the eleven MBusPico
value columns as ``columns=``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mbuspico.compat import MBUSPICO_FIELDS

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"  # the simulator's demo key (README)
METER = "kaifa-ma309m"
START = datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Vienna"))
MONTH = 30 * 86_400
VALUE_COLUMNS = list(MBUSPICO_FIELDS)  # the eleven numeric fields of MBusPico's JSON


def generate(path: Path, telegrams: int, seed: int = 2026) -> dict[str, object]:
    """Write ``telegrams`` pushes, one a second, to ``path``; return the last values."""
    import numpy as np

    from mbuspico import _core

    rng = np.random.default_rng(seed)
    system_title = _core.system_title(METER, 2177)
    vienna = START.tzinfo
    utc0 = START.astimezone(timezone.utc)
    power, energy_plus, energy_minus = 850.0, 1_234_567.0, 345_678.0
    v1, v2, v3 = 231.0, 229.5, 232.2
    pf = 0.95
    last: dict[str, object] = {}
    chunk = 86_400
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for first in range(0, telegrams, chunk):
            n = min(chunk, telegrams - first)
            # Python floats: numpy scalars would make the loop several times slower.
            steps = rng.normal(0, 150, n).tolist()
            volt_steps = rng.normal(0, 0.4, (n, 3)).tolist()
            pf_steps = rng.normal(0, 0.01, n).tolist()
            jitter = rng.uniform(0.9, 1.1, (n, 3)).tolist()
            out = []
            for i in range(n):
                power = min(12_000.0, max(0.0, power + steps[i]))
                minus = 0.0 if power > 200 else 150.0
                energy_plus += power / 3600
                energy_minus += minus / 3600
                dv1, dv2, dv3 = volt_steps[i]
                v1 = min(245.0, max(215.0, v1 + dv1))
                v2 = min(245.0, max(215.0, v2 + dv2))
                v3 = min(245.0, max(215.0, v3 + dv3))
                pf = min(1.0, max(0.8, pf + pf_steps[i]))
                clock = (utc0 + timedelta(seconds=first + i)).astimezone(vienna)
                offset = clock.utcoffset() or timedelta(0)
                deci = [round(v1 * 10), round(v2 * 10), round(v3 * 10)]
                j1, j2, j3 = jitter[i]
                third = power / 3 * 100
                centi = [
                    min(65535, round(third / v1 * j1)),
                    min(65535, round(third / v2 * j2)),
                    min(65535, round(third / v3 * j3)),
                ]
                counter = first + i + 1
                values = {
                    "longInvokeId": 0x80000000 | (counter & 0xFFFFFF),
                    "localTime": (
                        clock.year,
                        clock.month,
                        clock.day,
                        clock.hour,
                        clock.minute,
                        clock.second,
                    ),
                    "utcOffsetMinutes": int(offset.total_seconds() // 60),
                    "dst": bool(clock.dst()),
                    "activeEnergyPlus": int(energy_plus),
                    "activeEnergyMinus": int(energy_minus),
                    "activePowerPlus": round(power),
                    "activePowerMinus": round(minus),
                    "reactiveEnergyPlus": 0,
                    "reactiveEnergyMinus": 0,
                    "voltageDecivolt": deci,
                    "currentCentiampere": centi,
                    "powerFactorMilli": round(pf * 1000),
                    "meterNumber": "181220002177",
                    "deviceName": "KFM1200200002177",
                }
                out.append(
                    _core.encode_push(
                        METER, values, key=KEY, system_title=system_title, frame_counter=counter
                    )
                )
            f.write(b"".join(out))
            last = {
                "timestamp": clock.isoformat(),
                "activeEnergyPlus": values["activeEnergyPlus"],
                "activePowerPlus": values["activePowerPlus"],
                "voltageL1": deci[0] / 10,
            }
            print(f"  generated {first + n:,} / {telegrams:,}", file=sys.stderr, flush=True)
    tmp.replace(path)
    return last


def run(path: Path, columns: bool, stages: bool, fast: bool) -> dict[str, object]:
    """Time the pipeline on ``path`` in this (fresh) interpreter."""
    import mbuspico

    result: dict[str, object] = {}
    import pandas  # noqa: F401  (its import, about a second, is not the pipeline's)

    if stages:
        t, cpu = time.perf_counter(), time.process_time()
        count = sum(1 for _ in mbuspico.read_capture(path))
        result["deframe_s"] = time.perf_counter() - t
        result["deframe_cpu_s"] = time.process_time() - cpu
        decoder = mbuspico.Decoder(KEY)
        t, cpu = time.perf_counter(), time.process_time()
        for _ in decoder.decode_iter(mbuspico.read_capture(path)):
            pass
        result["deframe_decode_s"] = time.perf_counter() - t
        result["deframe_decode_cpu_s"] = time.process_time() - cpu
        result["deframed"] = count
    decoder = mbuspico.Decoder(KEY)
    t, cpu = time.perf_counter(), time.process_time()
    capture = mbuspico.read_capture(path)
    chosen = VALUE_COLUMNS if columns else None
    if fast:
        df = mbuspico.to_pandas(capture, decoder=decoder, columns=chosen)
    else:
        df = mbuspico.to_pandas(decoder.decode_iter(capture), columns=chosen)
    result["pipeline_s"] = time.perf_counter() - t
    result["pipeline_cpu_s"] = time.process_time() - cpu
    result["peak_rss_mib"] = _peak_rss_mib()  # the pipeline's, before the checks below
    result["rows"] = len(df)
    result["columns"] = len(df.columns)
    result["skipped"] = df.attrs["skipped"]
    result["bytes_skipped"] = capture.stats["bytes_skipped"]
    result["monotonic"] = bool(df.index.is_monotonic_increasing and df.index.is_unique)
    result["last"] = {
        "timestamp": df.index[-1].tz_convert("Europe/Vienna").isoformat(),
        "activeEnergyPlus": int(df["activeEnergyPlus"].iloc[-1]),
        "activePowerPlus": int(df["activePowerPlus"].iloc[-1]),
        "voltageL1": float(df["voltageL1"].iloc[-1]),
    }
    result["frame_mib"] = df.memory_usage(deep=True).sum() / 2**20
    return result


def _peak_rss_mib() -> float:
    """The peak resident memory of the process so far (VmHWM), in MiB."""
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    return int(hwm.split()[1]) / 1024


def main() -> None:
    """Generate the capture if needed, then time the pipeline in a child interpreter."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--telegrams", type=int, default=MONTH, help="default: 30 days")
    parser.add_argument("--cache", type=Path, help="capture file (default: in the temp dir)")
    parser.add_argument("--columns", action="store_true", help="only the value columns")
    parser.add_argument("--stages", action="store_true", help="also time deframe, decode")
    paths = parser.add_mutually_exclusive_group()
    paths.add_argument("--fast", action="store_true", help="to_pandas(capture, decoder=)")
    paths.add_argument("--both", action="store_true", help="the dict path, then --fast")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        print(json.dumps(run(args.run, args.columns, args.stages, args.fast)))
        return
    path = args.cache or Path(tempfile.gettempdir()) / f"mbuspico-month-{args.telegrams}.bin"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists() and path.stat().st_size == 282 * args.telegrams):
        print(f"generating {args.telegrams:,} telegrams into {path}", file=sys.stderr)
        t = time.perf_counter()
        last = generate(path, args.telegrams)
        meta.write_text(json.dumps(last))
        print(f"  in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    expected = json.loads(meta.read_text())
    size = path.stat().st_size
    print(f"mbuspico, {args.telegrams:,} Kaifa MA309M telegrams ({size / 1e6:,.0f} MB), {path}")
    failed = False
    for fast in [False, True] if args.both else [args.fast]:
        command = [sys.executable, __file__, "--run", str(path)]
        command += ["--columns"] * args.columns + ["--stages"] * args.stages
        command += ["--fast"] * fast
        child = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        failed |= not report(json.loads(child.stdout), args.telegrams, expected, fast)
    if failed:
        sys.exit(1)


def report(result: dict[str, Any], telegrams: int, expected: object, fast: bool) -> bool:
    """Print one run's figures; whether its frame checked out."""
    rate = result["rows"] / result["pipeline_s"]
    if fast:
        print("  to_pandas(capture, decoder=decoder): the columnar path")
    else:
        print("  to_pandas(decoder.decode_iter(capture)): the dict path")
    print(f"  cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.2f}")
    print("  stage                                 wall s    CPU s")
    if "deframe_s" in result:
        print(
            f"  read_capture                        {result['deframe_s']:8.1f} "
            f"{result['deframe_cpu_s']:8.1f}"
        )
        print(
            f"  read_capture + decode_iter          {result['deframe_decode_s']:8.1f} "
            f"{result['deframe_decode_cpu_s']:8.1f}"
        )
    print(
        f"  read_capture + decode + to_pandas   {result['pipeline_s']:8.1f} "
        f"{result['pipeline_cpu_s']:8.1f}" + ("  (decoding on a second thread)" if fast else "")
    )
    print(f"  telegrams per second (wall):       {rate:10,.0f}")
    print(f"  peak RSS (pipeline):               {result['peak_rss_mib']:8.0f} MiB")
    print(
        f"  frame: {result['rows']:,} rows x {result['columns']} columns, "
        f"{result['frame_mib']:,.0f} MiB"
    )
    ok = bool(
        result["rows"] == telegrams
        and result["skipped"] == 0
        and result["bytes_skipped"] == 0
        and result["monotonic"]
        and result["last"] == expected
    )
    print(f"  checked (rows, no errors, increasing index, last values): {'ok' if ok else 'FAILED'}")
    if not ok:
        print(f"  got {result}, expected last {expected}", file=sys.stderr)
    return ok


if __name__ == "__main__":
    main()
