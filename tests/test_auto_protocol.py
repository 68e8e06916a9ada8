"""``SerialReader`` and ``mbuspico read`` with ``protocol="auto"`` (issue 20).

The reader looks for M-Bus/HDLC frames and P1 telegrams at once until the
first verified telegram tells which the port carries, then keeps to that
framing. Against the simulated meters on pseudo-terminals: a P1 port, an
encrypted P1 port (Luxembourg Smarty), DLMS push telegrams in M-Bus and in
HDLC frames. What is seen when nothing is recognised is tested in
test_cli_errors.py (the ``read`` rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from mbuspico import SerialReader
from mbuspico.simulate.dlms import Simulator
from mbuspico.simulate.p1 import P1Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
P1_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _read(sim: Any, key: str | None, count: int = 4) -> tuple[list[Any], SerialReader]:
    assert sim.port is not None
    reader = SerialReader(sim.port, key=key, timeout=5)
    assert reader.framing is None  # nothing seen yet
    sim.start()
    with reader:
        readings = [next(reader) for _ in range(count)]
    return readings, reader


@pytest.mark.parametrize(
    ("meter", "garbage"), [("dsmr5", 0.0), ("dsmr22", 0.0), ("belgium", 0.5), ("dsmr5", 0.5)]
)
def test_a_p1_port(meter: str, garbage: float) -> None:
    with P1Simulator(meter, interval=0.1, seed=5, garbage=garbage) as sim:
        readings, reader = _read(sim, None)
    assert {r["protocol"] for r in readings} == {"dsmr"}
    assert reader.framing == "dsmr"
    s = reader.stats
    assert s["readings"] == s["telegrams"] == 4
    assert s["decode_errors"] == s["decryption_errors"] == 0


def test_an_encrypted_p1_port() -> None:
    with P1Simulator("luxembourg-smarty", key=P1_KEY, interval=0.1, seed=5) as sim:
        readings, reader = _read(sim, P1_KEY)
    assert {r["protocol"] for r in readings} == {"dsmr"}
    assert reader.framing == "dsmr"
    assert reader.stats["decode_errors"] == reader.stats["decryption_errors"] == 0


@pytest.mark.parametrize(
    ("meter", "garbage"),
    [("kaifa-ma309m", 0.0), ("kaifa-ma309m", 0.5), ("wienernetze-im350", 0.0), ("ksm-west", 0.0)],
)
def test_dlms_push_in_mbus_or_hdlc_frames(meter: str, garbage: float) -> None:
    # Their general-glo-ciphering APDUs start with DB 08, as a Smarty frame
    # does: the reader must not take them for one (no decoding error).
    with Simulator(meter, key=KEY, interval=0.1, seed=5, garbage=garbage) as sim:
        readings, reader = _read(sim, KEY)
    assert {r["protocol"] for r in readings} == {"dlms"}
    assert reader.framing == "mbus"
    s = reader.stats
    assert s["readings"] == 4
    assert s["decode_errors"] == s["decryption_errors"] == 0
    if not garbage:
        assert s["bytes_skipped"] == 0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}


@pytest.mark.parametrize("kind", ["p1", "dlms"])
def test_read_command_recognises_the_port(kind: str) -> None:
    """``mbuspico read PORT``, no --protocol: a P1 port once stayed silent."""
    sim: Any = (
        P1Simulator("dsmr5", interval=0.1, seed=2)
        if kind == "p1"
        else Simulator("kaifa-ma309m", key=KEY, interval=0.1, seed=2)
    )
    args = ["read", "--count", "3", "--timeout", "10"] + ([] if kind == "p1" else ["--key", KEY])
    with sim:
        assert sim.port is not None
        sim.start()
        proc = subprocess.run(
            [sys.executable, "-m", "mbuspico", *args, sim.port],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=_env(),
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    readings = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["protocol"] for r in readings] == ["dsmr" if kind == "p1" else "dlms"] * 3


def test_a_profile_or_protocol_still_chooses_the_framing() -> None:
    with P1Simulator("dsmr5", interval=0.1, seed=5) as sim:
        assert sim.port is not None
        reader = SerialReader(sim.port, key=None, protocol="dlms", timeout=0.5)
        assert reader.framing == "mbus"
        sim.start()
        with reader:
            assert reader.read() is None  # P1 text is no M-Bus frame
        seen = reader.seen
        assert seen["bytes"] > 0
        assert seen["text"] == seen["bytes"]
        assert seen["text7"] == 0
        with SerialReader(sim.port, key=None, profile="dsmr5", timeout=5) as reader:
            assert reader.framing == "dsmr"
            assert reader.read() is not None
