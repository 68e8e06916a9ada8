"""Decode a partitioned capture archive with Dask and print a daily summary.

Usage::

    .venv/bin/python examples/dask_archive.py ARCHIVE --key HEX [--tz Europe/Vienna]
    .venv/bin/python examples/dask_archive.py --demo          # a simulated archive

``ARCHIVE`` is a directory of capture files (``*.bin`` or ``*.hex``, in any
subdirectories), for example one per hour as a logger writes them::

    archive/2026-11-21/21.bin
    archive/2026-11-21/22.bin
    ...

Each file is one task: a worker reads it with :func:`mbuspico.read_capture`
and decodes it straight into a pandas frame with
``mbuspico.to_pandas(capture, decoder=decoder)`` (the columnar path: no dict
per reading); Dask stitches the frames into one
``dask.dataframe`` and computes the daily summary (readings, energy used, mean
and peak power, voltage range per local day) on a ``distributed.LocalCluster``
of two worker processes on loopback. Needs ``pip install mbuspico[dask]`` and
``distributed``.

The Decoder is built inside the task from the key passed as an argument, so
only the path and the key string travel to the workers (never a Decoder
object): the same :func:`decode_file` runs unchanged on any Dask cluster
(``Client("tcp://scheduler:8786")`` instead of a ``LocalCluster``) or on Spark::

    # PySpark: one task per file, the same function, the same frames.
    # rdd = spark.sparkContext.parallelize(paths, len(paths))
    # frames = rdd.map(lambda path: decode_file(path, key, tz)).collect()
    # daily = daily_summary(pd.concat(frames))

The key reaches the workers as a task argument, wrapped in :class:`Secret` so
that Dask's log of a failed task (which shows the task's arguments) prints
``<redacted>`` instead; keep the cluster's network private (or use TLS) as you
would for any secret.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

import mbuspico

COLUMNS = [
    "activePowerPlus",
    "activeEnergyPlus",
    "voltageL1",
    "voltageL2",
    "voltageL3",
]
"""The columns a task keeps (MBusPico's field names, W, Wh and V)."""

DEMO_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"  # the simulator's demo key


class Secret(str):
    """A key as a task argument: a ``str``, shown as ``<redacted>`` by ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        """Never the key itself."""
        return "<redacted>"


def decode_file(path: str, key: str, tz: str) -> pd.DataFrame:
    """Decode one capture file into a frame of :data:`COLUMNS` and its local ``day``.

    Runs on a worker: the Decoder is built here, from the key, for this task.
    All value columns are float64 so every partition has the same dtypes,
    even an empty one.
    """
    decoder = mbuspico.Decoder(key)
    capture = mbuspico.read_capture(path)
    frame = mbuspico.to_pandas(capture, decoder=decoder, columns=COLUMNS, tz=tz)
    frame = frame.astype("float64")
    frame["day"] = frame.index.normalize()  # local midnight of the meter's day
    return frame


def daily_summary(frame: Any) -> pd.DataFrame:
    """Readings, energy used, power and voltage per local day.

    ``frame`` is a pandas or a Dask frame of :func:`decode_file`'s columns; a
    Dask frame is computed here. Energy used is the +A register (Wh) at the
    day's last reading minus at its first.
    """
    aggregated = frame.groupby("day").agg(
        {
            "activePowerPlus": ["count", "mean", "max"],
            "activeEnergyPlus": ["min", "max"],
            "voltageL1": ["min", "max"],
        }
    )
    if hasattr(aggregated, "compute"):
        aggregated = aggregated.compute()
    aggregated = aggregated.sort_index()
    summary = pd.DataFrame(
        {
            "readings": aggregated[("activePowerPlus", "count")].astype("int64"),
            "energy_wh": (
                aggregated[("activeEnergyPlus", "max")] - aggregated[("activeEnergyPlus", "min")]
            ),
            "mean_power_w": aggregated[("activePowerPlus", "mean")],
            "max_power_w": aggregated[("activePowerPlus", "max")],
            "min_voltage_v": aggregated[("voltageL1", "min")],
            "max_voltage_v": aggregated[("voltageL1", "max")],
        }
    )
    summary.index = pd.Index([day.date().isoformat() for day in summary.index], name="day")
    return summary


def archive_paths(archive: Path) -> list[str]:
    """The capture files of an archive directory, in name order."""
    return sorted(str(p) for p in archive.rglob("*") if p.suffix in (".bin", ".hex"))


def decode_archive(paths: list[str], key: str, tz: str, workers: int = 2) -> pd.DataFrame:
    """The daily summary of the archive, decoded by Dask on a local cluster."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",  # loopback only
        dashboard_address=None,
    )
    with cluster, Client(cluster):  # type: ignore[no-untyped-call]
        # One partition per file; decode_file runs on the workers.
        frame = task_frame(paths, key, tz)
        return daily_summary(frame)


def task_frame(paths: list[str], key: str, tz: str) -> Any:
    """The archive as a lazy ``dask.dataframe``: one :func:`decode_file` task per file."""
    import dask.dataframe as dd

    meta = decode_file_meta(tz)
    return dd.from_map(  # type: ignore[no-untyped-call]
        decode_file, paths, key=Secret(key), tz=tz, meta=meta, enforce_metadata=True
    )


def decode_file_meta(tz: str) -> pd.DataFrame:
    """An empty frame with :func:`decode_file`'s columns and dtypes (Dask's ``meta``)."""
    frame = mbuspico.to_pandas([], columns=COLUMNS, tz=tz).astype("float64")
    frame["day"] = frame.index.normalize()
    return frame


def make_demo_archive(directory: Path, hours: int = 6, interval: float = 10.0) -> list[str]:
    """Write ``hours`` hourly capture files of a simulated Kaifa MA309M (demo key).

    From 2026-11-21 21:00 Vienna time, across midnight; one telegram every
    ``interval`` seconds. Returns the paths.
    """
    from mbuspico.simulate.dlms import Simulator

    start = datetime(2026, 11, 21, 21, 0, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=interval, seed=3, start=start)
    telegrams = sim.telegrams()
    per_hour = round(3600 / interval)
    for hour in range(hours):
        t = start + timedelta(hours=hour)
        path = directory / t.date().isoformat() / f"{t.hour:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(next(telegrams).wire for _ in range(per_hour)))
    return archive_paths(directory)


def main() -> None:
    """Decode the archive given on the command line (or a simulated one) and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", nargs="?", type=Path, help="directory of capture files")
    parser.add_argument("--key", help="the meter's key, 32 hex digits")
    parser.add_argument("--tz", default="Europe/Vienna", help="the meter's time zone")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--demo", action="store_true", help="decode a simulated archive")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.demo:
            paths = make_demo_archive(Path(tmp))
            key = DEMO_KEY
        elif args.archive is not None and args.key:
            paths = archive_paths(args.archive)
            key = args.key
        else:
            parser.error("give ARCHIVE and --key, or --demo")
        if not paths:
            sys.exit(f"{args.archive}: no *.bin or *.hex capture files")
        summary = decode_archive(paths, key, args.tz, args.workers)
    if args.json:
        print(json.dumps(summary.reset_index().to_dict(orient="records")))
    else:
        print(f"{len(paths)} capture files")
        print(summary.to_string(float_format=lambda x: f"{x:.1f}"))


if __name__ == "__main__":
    main()
