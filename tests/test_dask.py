"""examples/dask_archive.py: a capture archive decoded on a 2-process LocalCluster."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

SCRIPT = Path(__file__).parent.parent / "examples" / "dask_archive.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("dask_archive_example", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_result_equals_the_single_process_decode(example, tmp_path):
    import pandas as pd

    from mbuspico.simulate.dlms import Simulator

    paths = example.make_demo_archive(tmp_path, hours=4, interval=10.0)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in paths] == [
        "2026-11-21/21.bin",
        "2026-11-21/22.bin",
        "2026-11-21/23.bin",
        "2026-11-22/00.bin",
    ]
    # As a user runs it: its own interpreter, a LocalCluster of two worker processes.
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--key", example.DEMO_KEY, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    cluster = pd.DataFrame(json.loads(out.stdout)).set_index("day")
    # The same functions in this process, without Dask.
    single = example.daily_summary(
        pd.concat([example.decode_file(p, example.DEMO_KEY, "Europe/Vienna") for p in paths])
    )
    pd.testing.assert_frame_equal(cluster, single, check_dtype=False, rtol=1e-12)
    # And both agree with what the simulator encoded (the demo archive's own run).
    start = pd.Timestamp("2026-11-21T21:00:00", tz="Europe/Vienna").to_pydatetime()
    sim = Simulator("kaifa-ma309m", key=example.DEMO_KEY, interval=10.0, seed=3, start=start)
    expected = [t.expected for _, t in zip(range(4 * 360), sim.telegrams())]
    days = {"2026-11-21": expected[:1080], "2026-11-22": expected[1080:]}
    assert list(single.index) == list(days)
    for day, values in days.items():
        row = single.loc[day]
        assert row["readings"] == len(values)
        energy = [v["activeEnergyPlus"] for v in values]
        assert row["energy_wh"] == energy[-1] - energy[0]
        assert row["max_power_w"] == max(v["activePowerPlus"] for v in values)
        assert row["min_voltage_v"] == min(v["voltageL1"] for v in values)


def test_the_task_builds_its_own_decoder_from_the_key(example, tmp_path):
    # decode_file takes only strings: nothing but the path and key need pickling.
    paths = example.make_demo_archive(tmp_path, hours=1, interval=60.0)
    frame = example.decode_file(paths[0], example.DEMO_KEY, "Europe/Vienna")
    assert len(frame) == 60
    assert list(frame.columns) == [*example.COLUMNS, "day"]
    assert (frame.dtypes[example.COLUMNS] == "float64").all()
    assert frame.index[0].isoformat() == "2026-11-21T21:00:00+01:00"
    meta = example.decode_file_meta("Europe/Vienna")
    assert list(meta.columns) == list(frame.columns)
    assert list(meta.dtypes) == list(frame.dtypes)


def test_the_key_is_redacted_in_the_task_graph(example, tmp_path):
    # A failed task is logged with repr() of its arguments ("Compute Failed ... Task:").
    paths = example.make_demo_archive(tmp_path, hours=1, interval=600.0)
    frame = example.task_frame(paths, example.DEMO_KEY, "Europe/Vienna")
    tasks = dict(frame.__dask_graph__()).values()
    text = " ".join(
        f"{task!r} {getattr(task, 'args', ())!r} {getattr(task, 'kwargs', {})!r}" for task in tasks
    )
    assert example.DEMO_KEY not in text
    assert example.DEMO_KEY.lower() not in text
    assert "<redacted>" in text
    assert str(example.Secret(example.DEMO_KEY)) == example.DEMO_KEY
