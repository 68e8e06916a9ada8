"""SerialReader against the simulated meter over real pseudo-terminals."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mbuspico
from mbuspico import SerialPortError, SerialReader
from mbuspico.simulate.dlms import EXPECTED_FIELDS, METERS, SimulatedTelegram, Simulator
from test_simulator_hdlc import HDLC_METERS

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
FIELDS = EXPECTED_FIELDS


def assert_reading_is(reading: mbuspico.Reading, sent: SimulatedTelegram) -> None:
    assert sent.expected is not None
    for name in FIELDS:
        assert reading[name] == sent.expected[name], name  # type: ignore[literal-required]


def read_all(reader: SerialReader, timeout: float = 2.0) -> list[mbuspico.Reading]:
    out = []
    while (r := reader.read(timeout=timeout)) is not None:
        out.append(r)
    return out


# The HDLC profiles (no voltages on Wiener Netze, an auth key for the E450) are
# tested end to end in test_simulator_hdlc.py.
@pytest.mark.parametrize("meter", [m for m in METERS if m not in HDLC_METERS])
def test_every_meter_profile_end_to_end(meter: str) -> None:
    with Simulator(meter, key=KEY, interval=0.01, seed=7) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key=KEY, timeout=5) as reader:
            sim.start(count=20)
            readings = [next(reader) for _ in range(20)]
        sim.wait()
    assert len(sim.sent) == 20
    for reading, sent in zip(readings, sim.sent):
        assert_reading_is(reading, sent)
    assert reader.stats["readings"] == 20
    assert reader.stats["bytes_skipped"] == 0
    # The values evolve as a meter's do.
    energy = [r["activeEnergyPlus"] for r in readings]
    assert energy == sorted(energy)
    assert all(215 <= r["voltageL1"] <= 245 for r in readings)


def run_with_faults(
    meter: str, count: int, **faults: Any
) -> tuple[Simulator, list[Any], dict[str, int]]:
    with Simulator(meter, key=KEY, interval=0, seed=2026, **faults) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key=KEY) as reader:
            sim.start(count=count)
            readings = read_all(reader)
            stats = dict(reader.stats)
        sim.wait()
    return sim, readings, stats


@pytest.mark.parametrize("meter", ["kaifa-ma309m", "ksm-west", "sagemcom-t210d-old-fw"])
def test_faults_over_a_thousand_telegrams(meter: str) -> None:
    sim, readings, stats = run_with_faults(
        meter, 1000, garbage=0.1, drop_byte=0.0003, flip_bit=0.0003
    )
    sent = {t.frame_counter: t for t in sim.sent}
    clean = {fc for fc, t in sent.items() if not t.faulted}
    faulted = set(sent) - clean
    assert len(sent) == 1000
    assert 50 < len(faulted) < 500, "the fault rates should damage some, not all"
    # Zero wrong readings: each one is exactly a telegram that was sent intact.
    got = {r["frameCounter"] for r in readings}
    for r in readings:
        assert_reading_is(r, sent[r["frameCounter"]])
    assert len(got) == len(readings)
    assert not got & faulted, "a damaged telegram produced a reading"
    # Every untouched telegram was decoded.
    assert got == clean
    # Counters add up: every byte written went into a telegram or was skipped.
    written = sum(len(t.wire) for t in sim.sent)
    decoded_bytes = sum(len(sent[fc].telegram) for fc in got)
    assert stats["readings"] == len(clean)
    assert stats["telegrams"] == len(clean)
    assert stats["decode_errors"] == stats["decryption_errors"] == 0
    assert written == decoded_bytes + stats["bytes_skipped"]
    assert stats["bad_checksums"] > 0


def test_split_writes_with_delays() -> None:
    sim, readings, stats = run_with_faults("kaifa-ma309m", 25, split=True)
    assert [r["frameCounter"] for r in readings] == [t.frame_counter for t in sim.sent]
    assert stats["bytes_skipped"] == 0


def test_port_vanishing_raises_an_oserror() -> None:
    sim = Simulator("kaifa-ma309m", key=KEY, interval=0.05)
    port = sim.open()
    with SerialReader(port, key=KEY) as reader:
        sim.start()
        assert reader.read(timeout=5) is not None
        sim.close()
        with pytest.raises(SerialPortError, match=port) as info:
            reader.read(timeout=5)
        assert isinstance(info.value, OSError)


def test_reconnect_after_the_port_returns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "meter"
    first = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link, seed=1)
    first.open()
    caplog.set_level(logging.INFO, logger="mbuspico")
    with SerialReader(str(link), key=KEY, reconnect=True, timeout=10) as reader:
        first.start()
        assert reader.read() is not None
        first.close()  # adapter unplugged
        second = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link, seed=2)
        threading.Timer(0.5, second.start).start()
        try:
            second.open()
            reading = reader.read()
        finally:
            second.close()
    assert reading is not None
    assert reader.stats["reconnects"] == 1
    assert any("reconnecting" in m for m in caplog.messages)
    assert any("reopened" in m for m in caplog.messages)


def test_missing_port_is_a_serial_port_error() -> None:
    with pytest.raises(SerialPortError, match="/dev/does-not-exist"):
        SerialReader("/dev/does-not-exist", key=KEY)
    reader = SerialReader("/dev/does-not-exist", key=KEY, reconnect=True, timeout=0.3)
    assert not reader.connected
    assert reader.read() is None


def test_bad_arguments() -> None:
    with Simulator(key=KEY) as sim:
        assert sim.port is not None
        with pytest.raises(ValueError, match="parity"):
            SerialReader(sim.port, key=KEY, parity="mark")
        with pytest.raises(ValueError, match="32 hexadecimal digits"):
            SerialReader(sim.port, key="00")
        with pytest.raises(ValueError, match="timeout"):
            SerialReader(sim.port, key=KEY, timeout=-1)
        reader = SerialReader(sim.port, key=KEY)
        assert repr(reader) == (
            f"SerialReader({sim.port!r}, baudrate=2400, parity='even', key=<redacted>)"
        )
        reader.close()
        with pytest.raises(ValueError, match="closed"):
            reader.read(timeout=0.1)


def test_wrong_key_is_logged_and_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mbuspico")
    with Simulator("ksm-west", key=KEY, interval=0) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key="00" * 16) as reader:
            sim.start(count=5)
            assert reader.read(timeout=1) is None
            stats = reader.stats
    assert stats["telegrams"] == 5
    assert stats["decryption_errors"] == 5
    assert stats["readings"] == 0
    assert sum("dropped a telegram" in m and "wrong key" in m for m in caplog.messages) == 5
    assert all(KEY.lower() not in m.lower() for m in caplog.messages)


def test_timeout_and_iteration_end() -> None:
    with Simulator(key=KEY) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key=KEY, timeout=0.2) as reader:
            start = time.monotonic()
            assert reader.read() is None
            assert list(reader) == []
            assert time.monotonic() - start < 2


def test_the_gil_is_released_while_waiting() -> None:
    with Simulator(key=KEY) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key=KEY) as reader:
            ticks = 0
            stop = threading.Event()

            def count() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    time.sleep(0.001)

            t = threading.Thread(target=count)
            t.start()
            assert reader.read(timeout=0.5) is None
            stop.set()
            t.join()
    assert ticks > 50, "the other thread barely ran while read() waited"


def test_ctrl_c_interrupts_a_blocking_read() -> None:
    with Simulator(key=KEY) as sim:  # silent: never started
        assert sim.port is not None
        exe = Path(sys.executable).with_name("mbuspico")
        proc = subprocess.Popen(
            [str(exe), "read", sim.port, "--key", KEY],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    assert code == 130, err
    assert "Traceback" not in err
    assert elapsed < 2


def test_simulate_and_read_commands(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("mbuspico"))
    link = tmp_path / "meter"
    env = {**os.environ, "MBUSPICO_DEVICE_KEY": KEY}
    sim = subprocess.Popen(
        [exe, "simulate", "--meter", "ksm-west", "--interval", "0.1", "--link", str(link)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == f"simulated ksm-west meter on {link}"
        out = subprocess.run(
            [exe, "read", str(link), "--count", "3", "--timeout", "10"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)
        if sim.stdout:
            sim.stdout.close()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    import json

    readings = [json.loads(line) for line in lines]
    assert {r["meterNumber"] for r in readings} == {"1KFM0200002177"}
    fcs = [r["frameCounter"] for r in readings]
    assert fcs == sorted(fcs)


def test_replay_of_a_capture(tmp_path: Path) -> None:
    capture = Path(__file__).parent / "data" / "dlms" / "netznoe_kaifa_ma309m_real.bin"
    with Simulator(key="825DC0D167DEEB63F49DAB4F31A86CC7", interval=0, replay=capture) as sim:
        assert sim.port is not None
        with SerialReader(sim.port, key="825DC0D167DEEB63F49DAB4F31A86CC7") as reader:
            sim.start(count=3)
            readings = read_all(reader, timeout=1)
    assert [r["activePowerPlus"] for r in readings] == [1055, 1055, 1055]


def test_hdlc_meter_on_a_serial_port() -> None:
    """A Wiener Netze push (HDLC, optical port 9600 8N1) read from a port between
    garbage and a corrupted copy: one reading per intact frame, nothing else."""
    from conftest import by_id

    vector = by_id("wienernetze_siemens_im350")
    frame = bytes.fromhex(vector["hex"])
    corrupt = bytearray(frame)
    corrupt[40] ^= 0x04
    master, slave = os.openpty()
    try:
        with SerialReader(
            os.ttyname(slave), key=vector["key"], baudrate=9600, parity="none"
        ) as reader:
            os.write(master, b"\x7e\x00garbage" + frame + bytes(corrupt) + frame)
            readings = [reader.read(timeout=1.0), reader.read(timeout=1.0)]
            assert reader.read(timeout=0.3) is None
            stats = reader.stats
    finally:
        os.close(master)
        os.close(slave)
    for reading in readings:
        assert reading is not None
        assert reading["meterNumber"] == "SMS1030788000020"
        assert reading["activeEnergyPlus"] == 1465
        assert reading["reactiveEnergyMinus"] == 5521
        assert reading["timestamp"] == "2021-10-21T05:40:34+02:00"
    assert stats["telegrams"] == 2
    assert stats["bad_checksums"] >= 1
    assert stats["bytes_skipped"] == 9 + len(corrupt)
