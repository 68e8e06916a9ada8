"""examples/decoding.ipynb runs from top to bottom and computes the right figures."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mbuspico.simulate.dlms import Simulator

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

EXAMPLES = Path(__file__).parent.parent / "examples"
NOTEBOOK = EXAMPLES / "decoding.ipynb"
CAPTURE = EXAMPLES / "data" / "kaifa_ma309m_1h.bin"
DEMO_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # inherited by the kernel: no display needed
    try:
        client = nbclient.NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(EXAMPLES)}},
        )
        client.execute()
    finally:
        if env is None:
            del os.environ["MPLBACKEND"]
        else:
            os.environ["MPLBACKEND"] = env
    return nb


def summary(nb):
    last = nb.cells[-1]
    text = "".join(o["text"] for o in last.outputs if o.get("output_type") == "stream")
    return json.loads(text)


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None


def test_real_frame_values(executed):
    real = summary(executed)["real"]
    # fkw9_kaifa_ma309m_real (tests/data/SOURCES.md): MBusPico prints 1055 W, 1340436 Wh.
    assert real == {
        "timestamp": "2022-02-04T16:43:20+01:00",
        "activePowerPlus": 1055,
        "activeEnergyPlus": 1340436,
        "voltageL1": 234.5,
        "powerFactor": 0.968,
    }


def test_simulated_hour_matches_what_the_simulator_encoded(executed):
    hour = summary(executed)["hour"]
    # The same simulator run as examples/data/make_capture.py, values as encoded.
    start = datetime(2026, 11, 21, 18, 0, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=5, seed=11, start=start, garbage=0.02)
    telegrams = [t for _, t in zip(range(720), sim.telegrams())]
    assert b"".join(t.wire for t in telegrams) == CAPTURE.read_bytes()
    expected = [t.expected for t in telegrams if t.expected is not None]
    power = [e["activePowerPlus"] for e in expected]
    volts = [e[f"voltageL{i}"] for e in expected for i in (1, 2, 3)]
    assert hour["readings"] == 720
    assert hour["first"] == "2026-11-21T18:00:00+01:00"
    assert hour["last"] == "2026-11-21T18:59:55+01:00"
    assert hour["bytes_skipped"] == sum(len(t.wire) - len(t.telegram) for t in telegrams) > 0
    assert hour["energy_wh"] == (expected[-1]["activeEnergyPlus"] - expected[0]["activeEnergyPlus"])
    assert hour["mean_power_w"] == pytest.approx(sum(power) / len(power), abs=1e-3)
    assert hour["max_power_w"] == max(power)
    assert hour["min_voltage_v"] == min(volts)
    assert hour["max_voltage_v"] == max(volts)
    assert hour["minutes"] == 60
    assert hour["figure_axes"] == 2


def test_the_plot_was_drawn(executed):
    plot_cell = next(c for c in executed.cells if "plt.subplots" in c.source)
    assert not any(o.get("output_type") == "error" for o in plot_cell.outputs)
