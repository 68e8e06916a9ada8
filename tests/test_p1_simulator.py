"""The DSMR P1 simulator: spec-conformant telegrams, evolving values, faults, the pty.

The tests at the end (``*_end_to_end``, ``*_with_faults``, ``*_decoder_*``) read
the simulator with ``SerialReader(protocol="dsmr")`` / ``Decoder(protocol="dsmr")``.
"""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import mbuspico
from mbuspico import _core
from mbuspico.cli import main
from mbuspico.simulate.p1 import (
    ENCRYPTED_METERS,
    P1_METERS,
    PROFILES,
    P1Simulator,
    SimulatedP1Telegram,
    cut_capture,
    p1_timestamp,
)

KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
# A weekday morning in winter time (Monday 2 March 2026, 06:30 in Amsterdam).
MORNING = datetime(2026, 3, 2, 5, 30, tzinfo=timezone.utc)

OBIS_LINE = re.compile(r"^\d+-\d+:\d+\.\d+\.\d+(?:\([^()\r\n]*\))+$")
GROUP = re.compile(r"\(([^()]*)\)")
HEADER = re.compile(r"^/[A-Za-z]{3}5[\x20-\x7e]*$")
TIMESTAMP = re.compile(r"^\d{12}[SW]$")


def make(meter: str, **kwargs: Any) -> P1Simulator:
    if meter in ENCRYPTED_METERS:
        kwargs.setdefault("key", KEY)
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("start", MORNING)
    return P1Simulator(meter, **kwargs)


def generate(meter: str, count: int, **kwargs: Any) -> list[SimulatedP1Telegram]:
    gen = make(meter, **kwargs).telegrams()
    return [next(gen) for _ in range(count)]


def lines_of(plaintext: bytes) -> list[str]:
    """The data lines between the blank line and the trailer, without CR LF."""
    text = plaintext.decode("ascii")
    body = text.split("\r\n\r\n", 1)[1]
    return body[: body.rindex("!")].split("\r\n")[:-1]


def line_for(plaintext: bytes, code: str) -> str:
    return next(line for line in lines_of(plaintext) if line.startswith(f"{code}("))


def value_of(plaintext: bytes, code: str) -> float:
    text = GROUP.findall(line_for(plaintext, code))[-1].split("*")[0]
    return float(text)


# -- framing -------------------------------------------------------------------


def test_profiles() -> None:
    assert set(P1_METERS) >= {"dsmr5", "dsmr4", "dsmr22", "belgium", "luxembourg-smarty"}
    assert set(P1_METERS) >= {"sweden", "austria-sagemcom"}
    assert {"luxembourg-smarty", "austria-sagemcom"} == ENCRYPTED_METERS
    assert (PROFILES["dsmr22"].baudrate, PROFILES["dsmr22"].parity) == (9600, "even")
    assert (PROFILES["dsmr5"].baudrate, PROFILES["dsmr5"].parity) == (115200, "none")
    assert PROFILES["dsmr5"].interval == 1.0
    assert PROFILES["dsmr4"].interval == 10.0


@pytest.mark.parametrize("meter", P1_METERS)
def test_telegrams_are_spec_conformant(meter: str) -> None:
    profile = PROFILES[meter]
    for tg in generate(meter, 40, interval=37):
        plain = tg.plaintext
        assert all(b < 0x80 for b in plain), "P1 telegrams are ASCII"
        # Every line ends in CR LF: no bare CR or LF anywhere.
        assert plain.count(b"\n") == plain.count(b"\r\n") == plain.count(b"\r")
        header, blank, _ = plain.decode("ascii").split("\r\n", 2)
        assert HEADER.match(header), header
        assert header == profile.header
        assert blank == "", "a blank line follows the header"
        previous = ""
        for line in lines_of(plain):
            if meter == "dsmr22" and previous.startswith("0-1:24.3.0("):
                assert re.fullmatch(r"\(\d{5}\.\d{3}\)", line), line  # gas on the next line
            else:
                assert OBIS_LINE.match(line), line
            previous = line
        bang = plain.rindex(b"!")
        if profile.crc:
            trailer = plain[bang:]
            assert re.fullmatch(rb"![0-9A-F]{4}\r\n", trailer), trailer
            assert int(trailer[1:5], 16) == _core.dsmr_crc16(plain[: bang + 1])
        else:
            assert plain[bang:] == b"!\r\n"
            assert plain[bang - 2 : bang] == b"\r\n"
        if profile.encrypted:
            assert tg.telegram != plain
        else:
            assert tg.telegram == plain
        assert tg.wire == tg.telegram
        assert not tg.faulted
        if meter != "dsmr22":
            stamp = GROUP.findall(line_for(plain, "0-0:1.0.0"))[0]
            assert TIMESTAMP.match(stamp)


def test_dsmr5_uses_the_fixed_widths_of_the_spec() -> None:
    plain = generate("dsmr5", 1)[0].plaintext
    formats = {
        "1-3:0.2.8": r"50",
        "0-0:1.0.0": r"\d{12}[SW]",
        "0-0:96.1.1": r"[0-9A-F]{2,96}",
        "1-0:1.8.1": r"\d{6}\.\d{3}\*kWh",
        "1-0:1.8.2": r"\d{6}\.\d{3}\*kWh",
        "1-0:2.8.1": r"\d{6}\.\d{3}\*kWh",
        "1-0:2.8.2": r"\d{6}\.\d{3}\*kWh",
        "0-0:96.14.0": r"000[12]",
        "1-0:1.7.0": r"\d{2}\.\d{3}\*kW",
        "1-0:2.7.0": r"\d{2}\.\d{3}\*kW",
        "0-0:96.7.21": r"\d{5}",
        "0-0:96.7.9": r"\d{5}",
        "1-0:32.32.0": r"\d{5}",
        "1-0:32.7.0": r"\d{3}\.\d\*V",
        "1-0:52.7.0": r"\d{3}\.\d\*V",
        "1-0:72.7.0": r"\d{3}\.\d\*V",
        "1-0:31.7.0": r"\d{3}\*A",
        "1-0:21.7.0": r"\d{2}\.\d{3}\*kW",
        "1-0:22.7.0": r"\d{2}\.\d{3}\*kW",
        "0-1:24.1.0": r"003",
    }
    for code, fmt in formats.items():
        line = line_for(plain, code)
        assert re.fullmatch(rf"{re.escape(code)}\({fmt}\)", line), line
    gas = line_for(plain, "0-1:24.2.1")
    assert re.fullmatch(r"0-1:24\.2\.1\(\d{12}[SW]\)\(\d{5}\.\d{3}\*m3\)", gas), gas
    assert re.fullmatch(r"0-1:96\.1\.0\([0-9A-F]+\)", line_for(plain, "0-1:96.1.0"))
    assert plain.startswith(b"/ISK5\\2M550T-1013\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(")


def test_dsmr22_gas_on_the_next_line_and_no_crc() -> None:
    plain = generate("dsmr22", 1)[0].plaintext.decode("ascii")
    assert re.search(
        r"\r\n0-1:24\.3\.0\(\d{12}\)\(00\)\(60\)\(1\)\(0-1:24\.2\.1\)\(m3\)\r\n\(\d{5}\.\d{3}\)\r\n",
        plain,
    )
    assert "0-0:1.0.0" not in plain
    assert plain.endswith("\r\n!\r\n")


def test_belgium_lines() -> None:
    plain = generate("belgium", 1)[0].plaintext.decode("ascii")
    assert "\r\n0-0:96.1.4(50217)\r\n" in plain
    assert re.search(r"\r\n1-0:1\.4\.0\(\d{2}\.\d{3}\*kW\)\r\n", plain)
    assert re.search(r"\r\n1-0:1\.6\.0\(\d{12}[SW]\)\(\d{2}\.\d{3}\*kW\)\r\n", plain)
    assert re.search(r"\r\n0-0:98\.1\.0\(1\)\(1-0:1\.6\.0\)\(1-0:1\.6\.0\)(\(.+?\)){3}\r\n", plain)
    assert re.search(r"\r\n0-1:24\.2\.3\(\d{12}[SW]\)\(\d{5}\.\d{3}\*m3\)\r\n", plain)
    assert re.search(r"\r\n0-1:96\.1\.1\([0-9A-F]+\)\r\n", plain)
    assert re.search(r"\r\n1-0:31\.7\.0\(\d{3}\.\d{2}\*A\)\r\n", plain)


def test_smarty_totals() -> None:
    plain = generate("luxembourg-smarty", 1)[0].plaintext.decode("ascii")
    for code, unit in (("1.8.0", "kWh"), ("2.8.0", "kWh"), ("3.8.0", "kvarh"), ("4.8.0", "kvarh")):
        assert re.search(rf"\r\n1-0:{re.escape(code)}\(\d{{6}}\.\d{{3}}\*{unit}\)\r\n", plain)
    assert "1-0:1.8.1" not in plain
    assert re.search(r"\r\n0-0:42\.0\.0\([0-9A-F]+\)\r\n", plain)


@pytest.mark.parametrize("meter", P1_METERS)
def test_expected_is_what_was_written(meter: str) -> None:
    for tg in generate(meter, 20, interval=120):
        exp = tg.expected
        assert exp is not None
        assert exp["protocol"] == "dsmr"
        assert "/" + exp["header"] == tg.plaintext.split(b"\r\n", 1)[0].decode("ascii")
        assert exp["crc"] == ("ok" if PROFILES[meter].crc else "missing")
        if meter == "dsmr22":
            assert exp["timestamp"] is None
        else:
            stamp = GROUP.findall(line_for(tg.plaintext, "0-0:1.0.0"))[0]
            when = datetime.fromisoformat(exp["timestamp"])
            assert p1_timestamp(when.astimezone(ZoneInfo(PROFILES[meter].zone))) == stamp
        assert exp["obis"], "values are listed"
        for code, want in exp["obis"].items():
            groups = GROUP.findall(line_for(tg.plaintext, code))
            value, _, unit = groups[-1].partition("*")
            assert want["unit"] == (unit or None), code
            if isinstance(want["value"], str) or want["value"] is None:
                assert want["value"] == (value or None), code
            else:
                assert want["value"] == float(value), code
                assert isinstance(want["value"], int) == ("." not in value), code
            if "timestamp" in want:
                assert p1_timestamp(datetime.fromisoformat(want["timestamp"])) == groups[0]
        for channel, device in exp["mbus"].items():
            assert set(device) == {"deviceType", "equipmentId", "value", "unit", "timestamp"}
            assert f"\r\n0-{channel}:24.1.0(" in tg.plaintext.decode("ascii")
            assert device["unit"] == "m3"
            assert device["value"] > 0


def test_timestamps_follow_summer_and_winter_time() -> None:
    # 25 October 2026: 02:30 happens twice in Amsterdam, first in summer time.
    start = datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)
    first, second = generate("dsmr5", 2, start=start, interval=3600)
    assert "0-0:1.0.0(261025023000S)" in first.plaintext.decode()
    assert "0-0:1.0.0(261025023000W)" in second.plaintext.decode()
    assert first.expected is not None
    assert second.expected is not None
    assert first.expected["timestamp"] == "2026-10-25T02:30:00+02:00"
    assert second.expected["timestamp"] == "2026-10-25T02:30:00+01:00"
    # Spring: 01:59:59 W, then 03:00:00 S.
    spring = datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc)
    a, b = generate("belgium", 2, start=spring, interval=1)
    assert "0-0:1.0.0(260329015959W)" in a.plaintext.decode()
    assert "0-0:1.0.0(260329030000S)" in b.plaintext.decode()


@pytest.mark.parametrize(
    ("meter", "zone_offset"),
    [("luxembourg-smarty", "+02:00"), ("belgium", "+02:00"), ("sweden", "+02:00")],
)
def test_profile_time_zones(meter: str, zone_offset: str) -> None:
    july = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)
    tg = generate(meter, 1, start=july)[0]
    assert tg.expected is not None
    assert tg.expected["timestamp"] == f"2026-07-01T12:00:00{zone_offset}"
    assert "(260701120000S)" in tg.plaintext.decode()


def test_naive_start_is_local_time() -> None:
    tg = generate("dsmr5", 1, start=datetime(2026, 1, 15, 8, 0, 0))[0]
    assert tg.expected is not None
    assert tg.expected["timestamp"] == "2026-01-15T08:00:00+01:00"


# -- values --------------------------------------------------------------------


REGISTERS = {
    "dsmr5": ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"],
    "dsmr4": ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"],
    "dsmr22": ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"],
    "belgium": ["1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"],
    "luxembourg-smarty": ["1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0"],
    "sweden": ["1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0"],
    "austria-sagemcom": ["1-0:1.8.0", "1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.0", "1-0:3.8.0"],
}


@pytest.mark.parametrize("meter", P1_METERS)
def test_values_evolve_plausibly(meter: str) -> None:
    # 10 hours in 1-minute steps from 06:30 on a weekday: night, morning, solar noon.
    telegrams = generate(meter, 600, interval=60)
    expected = [tg.expected for tg in telegrams]
    assert all(e is not None for e in expected)
    obis = [e["obis"] for e in expected if e is not None]
    for code in REGISTERS[meter]:
        series = [o[code]["value"] for o in obis]
        assert series == sorted(series), f"{code} only grows"
    assert any(obis[-1][c]["value"] > obis[0][c]["value"] for c in REGISTERS[meter])
    imported = [o["1-0:1.7.0"]["value"] for o in obis]
    exported = [o["1-0:2.7.0"]["value"] for o in obis]
    assert all(not (i and e) for i, e in zip(imported, exported)), "never both non-zero"
    assert any(imported), "import in the morning"
    assert any(exported), "export around noon"
    if "1-0:32.7.0" in obis[0]:
        volts = [o[f"1-0:{c}.7.0"]["value"] for o in obis for c in ("32", "52", "72")]
        assert all(215 <= v <= 245 for v in volts)
        assert len(set(volts)) > 10
    if "0-0:96.14.0" in obis[0]:
        tariffs = [o["0-0:96.14.0"]["value"] for o in obis]
        assert set(tariffs) == {"0001", "0002"}, "the tariff switches at 07:00"
    gas = [e["mbus"]["1"] for e in expected if e is not None and "1" in e["mbus"]]
    if gas:
        values = [g["value"] for g in gas]
        assert values == sorted(values)
        assert values[-1] > values[0]
        stamps = sorted({g["timestamp"] for g in gas})
        period = PROFILES[meter].gas_period
        assert len(stamps) == pytest.approx(600 * 60 / period, abs=1)
        assert all(
            datetime.fromisoformat(s).minute % (period // 60 % 60 or 60) == 0 for s in stamps
        )


def test_tariff_switches_at_seven_on_a_weekday() -> None:
    telegrams = generate("dsmr5", 60, interval=60)  # 06:30 .. 07:29 local
    for tg in telegrams:
        assert tg.expected is not None
        local = datetime.fromisoformat(tg.expected["timestamp"])
        want = "0002" if local.hour >= 7 else "0001"
        assert tg.expected["obis"]["0-0:96.14.0"]["value"] == want
    belgian = generate("belgium", 60, interval=60)
    assert belgian[0].expected is not None
    assert belgian[-1].expected is not None
    assert belgian[0].expected["obis"]["0-0:96.14.0"]["value"] == "0002"  # night
    assert belgian[-1].expected["obis"]["0-0:96.14.0"]["value"] == "0001"  # day


def test_belgian_peak_demand() -> None:
    telegrams = generate("belgium", 400, interval=30)  # 3 h 20 min in 30 s steps
    peaks = [tg.expected["obis"]["1-0:1.6.0"] for tg in telegrams if tg.expected]
    values = [p["value"] for p in peaks]
    assert values == sorted(values), "the month's peak only grows within the month"
    for p in peaks:
        when = datetime.fromisoformat(p["timestamp"])
        assert when.minute % 15 == 0
        assert when.second == 0
    demand = [tg.expected["obis"]["1-0:1.4.0"]["value"] for tg in telegrams if tg.expected]
    assert max(demand) > 0
    assert max(values) > values[0], "a quarter above the starting peak"
    stamps = [tg.expected["timestamp"] for tg in telegrams if tg.expected]
    quarters = [datetime.fromisoformat(t).timestamp() // 900 for t in stamps]
    for i in range(len(quarters) - 1):
        if quarters[i + 1] != quarters[i]:  # a quarter closed: its average counts for the peak
            assert values[i + 1] >= demand[i] - 0.0015


# -- encryption ----------------------------------------------------------------


@pytest.mark.parametrize("meter", sorted(ENCRYPTED_METERS))
def test_encrypted_frames(meter: str) -> None:
    telegrams = generate(meter, 5)
    titles = set()
    for i, tg in enumerate(telegrams):
        frame, plain = tg.telegram, tg.plaintext
        assert frame[:2] == b"\xdb\x08"
        titles.add(frame[2:10])
        assert frame[10] == 0x82
        length = int.from_bytes(frame[11:13], "big")
        assert length == 17 + len(plain)
        assert len(frame) == 13 + length
        assert frame[13] == 0x30
        counter = int.from_bytes(frame[14:18], "big")
        assert tg.frame_counter == counter == (telegrams[0].frame_counter or 0) + i
        assert plain not in frame
        assert plain[:20] not in frame
    assert len(titles) == 1
    # The same plaintext with the same key, title and counter gives the same frame.
    tg = telegrams[0]
    assert tg.frame_counter is not None
    again = _core.dsmr_encrypt(
        tg.plaintext,
        key=KEY,
        auth_key="00112233445566778899AABBCCDDEEFF",
        system_title=tg.telegram[2:10],
        frame_counter=tg.frame_counter,
    )
    assert again == tg.telegram


def test_auth_key_changes_the_tag_only() -> None:
    a = generate("luxembourg-smarty", 1)[0].telegram
    b = generate("luxembourg-smarty", 1, auth_key="BB" * 16)[0].telegram
    assert a[:-12] == b[:-12]
    assert a[-12:] != b[-12:]


def test_keys_and_arguments() -> None:
    with pytest.raises(ValueError, match="needs a key"):
        P1Simulator("luxembourg-smarty")
    with pytest.raises(ValueError, match="no key"):
        P1Simulator("dsmr5", key=KEY)
    with pytest.raises(ValueError, match="32 hexadecimal digits") as info:
        P1Simulator("austria-sagemcom", key="0123")
    assert "0123" not in str(info.value)
    with pytest.raises(ValueError, match="unknown meter"):
        P1Simulator("kaifa-ma309m")
    with pytest.raises(ValueError, match="probability"):
        P1Simulator("dsmr5", flip_bit=2)
    sim = P1Simulator("luxembourg-smarty", key=KEY)
    assert KEY not in repr(sim)
    assert "luxembourg-smarty" in repr(sim)


# -- faults, pty, replay -------------------------------------------------------


def test_faults_are_recorded() -> None:
    telegrams = generate("dsmr5", 300, drop_byte=0.0005, flip_bit=0.0005, garbage=0.3)
    faulted = [tg for tg in telegrams if tg.faulted]
    assert 30 < len(faulted) < 270
    for tg in telegrams:
        if tg.faulted:
            assert tg.telegram not in tg.wire
        else:
            assert tg.wire.endswith(tg.telegram)
    assert sum(len(tg.wire) > len(tg.telegram) for tg in telegrams if not tg.faulted) > 30
    # Reproducible with the same seed.
    again = generate("dsmr5", 300, drop_byte=0.0005, flip_bit=0.0005, garbage=0.3)
    assert [t.wire for t in again] == [t.wire for t in telegrams]


def read_port(fd: int, size: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            data += os.read(fd, 65536)
    return data


@pytest.mark.parametrize("split", [False, True])
def test_the_pty_carries_the_bytes(tmp_path: Path, split: bool) -> None:
    link = tmp_path / "p1"
    with make("dsmr5", interval=0.01, link=link, split=split) as sim:
        assert sim.port is not None
        assert link.resolve() == Path(sim.port).resolve()
        fd = os.open(str(link), os.O_RDONLY | os.O_NOCTTY)
        try:
            sim.start(count=5)
            sim.wait(10)
            want = b"".join(t.wire for t in sim.sent)
            got = read_port(fd, len(want))
        finally:
            os.close(fd)
    assert len(sim.sent) == 5
    assert got == want, "raw: no CR/LF translation, nothing lost"
    assert got.count(b"\r\n\r\n") == 5
    assert not link.exists(), "the link goes with the port"


def test_run_keeps_the_interval() -> None:
    with make("sweden", interval=0.1) as sim:
        assert sim.port is not None
        fd = os.open(sim.port, os.O_RDONLY | os.O_NOCTTY)
        try:
            start = time.monotonic()
            sim.start(count=4)
            sim.wait(10)
            elapsed = time.monotonic() - start
            read_port(fd, sum(len(t.wire) for t in sim.sent))
        finally:
            os.close(fd)
    assert 0.25 < elapsed < 2


def test_cut_capture_and_replay(tmp_path: Path) -> None:
    plain = generate("dsmr4", 2)
    enc = generate("luxembourg-smarty", 1)[0].telegram
    lf_only = plain[1].plaintext.replace(b"\r\n", b"\n")
    capture = b"\xff\x00garbage" + plain[0].plaintext + b"noise/" + enc + b"\r\n" + lf_only
    assert cut_capture(capture) == [plain[0].plaintext, enc, lf_only]
    assert cut_capture(b"/partial\r\n/ISK5\\2\r\n\r\n1-0:1.8.1(1)\r\n!\r\n") == [
        b"/ISK5\\2\r\n\r\n1-0:1.8.1(1)\r\n!\r\n"
    ]
    with pytest.raises(ValueError, match="no P1 telegram"):
        cut_capture(b"nothing here")
    path = tmp_path / "capture.txt"
    path.write_bytes(capture)
    hex_path = tmp_path / "frame.hex"
    hex_path.write_text(enc.hex(" "))
    replayed = generate("dsmr5", 7, replay=path)
    assert [t.telegram for t in replayed] == [plain[0].plaintext, enc, lf_only] * 2 + [
        plain[0].plaintext
    ]
    assert all(t.expected is None and t.frame_counter is None for t in replayed)
    assert [t.telegram for t in generate("dsmr5", 2, replay=hex_path)] == [enc, enc]


def test_simulate_command_p1(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("mbuspico"))
    link = tmp_path / "p1"
    env = {k: v for k, v in os.environ.items() if k != "MBUSPICO_DEVICE_KEY"}
    proc = subprocess.Popen(
        [exe, "simulate", "--meter", "belgium", "--interval", "0.05", "--link", str(link)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"simulated belgium meter on {link}"
        fd = os.open(str(link), os.O_RDONLY | os.O_NOCTTY)
        try:
            data = read_port(fd, 3000)
        finally:
            os.close(fd)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == 0
    start = data.index(b"/FLU5")
    telegram = data[start : data.index(b"\r\n", data.index(b"!", start)) + 2]
    bang = telegram.rindex(b"!")
    assert int(telegram[bang + 1 : bang + 5], 16) == _core.dsmr_crc16(telegram[: bang + 1])


def test_simulate_command_key_rules() -> None:
    log = io.StringIO()
    argv = ["simulate", "--meter", "luxembourg-smarty", "--count", "0"]
    assert main([*argv, "--key", ""], out=io.StringIO(), log=log) == 2
    assert "needs --key" in log.getvalue()
    log = io.StringIO()
    assert main([*argv, "--key", "00"], out=io.StringIO(), log=log) == 2
    assert "32 hexadecimal digits" in log.getvalue()
    out = io.StringIO()
    # A plain meter ignores a key from the environment.
    assert main(["simulate", "--meter", "dsmr22", "--key", KEY, "--count", "0"], out=out) == 0
    assert out.getvalue().startswith("simulated dsmr22 meter on /dev/")
    out = io.StringIO()
    argv = ["simulate", "--meter", "austria-sagemcom", "--key", KEY, "--count", "0"]
    assert main(argv, out=out) == 0
    assert out.getvalue().startswith("simulated austria-sagemcom meter on /dev/")


# -- end to end: these need SerialReader(protocol="dsmr") and Decoder(protocol="dsmr") --


def assert_reading_is(reading: Any, expected: dict[str, Any] | None) -> None:
    assert expected is not None
    for name in ("protocol", "header", "crc", "timestamp"):
        assert reading[name] == expected[name], name
    for code, want in expected["obis"].items():
        assert code in reading["obis"], code
        for key, value in want.items():
            assert reading["obis"][code][key] == value, (code, key)
    for channel, device in expected["mbus"].items():
        for key, value in device.items():
            assert reading["mbus"][channel][key] == value, (channel, key)


def reader_for(sim: P1Simulator, **kwargs: Any) -> mbuspico.SerialReader:
    assert sim.port is not None
    profile = sim.profile
    key = KEY if profile.encrypted else None
    return mbuspico.SerialReader(  # type: ignore[call-arg]
        sim.port,
        key=key,
        protocol="dsmr",
        baudrate=profile.baudrate,
        parity=profile.parity,
        bytesize=profile.bytesize,
        **kwargs,
    )


@pytest.mark.parametrize("meter", P1_METERS)
def test_every_p1_profile_end_to_end(meter: str) -> None:
    with make(meter, interval=0.01) as sim:
        with reader_for(sim, timeout=5) as reader:
            sim.start(count=15)
            readings = [next(reader) for _ in range(15)]
        sim.wait()
    assert len(sim.sent) == 15
    for reading, sent in zip(readings, sim.sent):
        assert_reading_is(reading, sent.expected)


@pytest.mark.parametrize("meter", ["dsmr5", "belgium", "luxembourg-smarty"])
def test_a_thousand_telegrams_with_faults(meter: str) -> None:
    with make(meter, interval=0, seed=2026, garbage=0.1, drop_byte=0.0002, flip_bit=0.0002) as sim:
        with reader_for(sim) as reader:
            sim.start(count=1000)
            readings = []
            while (r := reader.read(timeout=3)) is not None:
                readings.append(r)
        sim.wait()
    by_time = {t.expected["timestamp"]: t for t in sim.sent if t.expected}
    assert len(by_time) == 1000
    clean = {ts for ts, t in by_time.items() if not t.faulted}
    # Damage to the final CR LF or to the case of a CRC digit leaves the telegram
    # verifiable: a reader may take it or drop it.
    harmless = {ts for ts, t in by_time.items() if t.faulted and verifiable(t)}
    assert 50 < 1000 - len(clean) < 600, "the fault rates should damage some, not all"
    got = [r["timestamp"] for r in readings]
    for r in readings:  # zero wrong readings
        assert r["timestamp"] in by_time, r["header"]
        assert_reading_is(r, by_time[r["timestamp"]].expected)
    assert len(set(got)) == len(got)
    assert not set(got) - clean - harmless, "a damaged telegram produced a reading"
    assert not clean - set(got), "every untouched telegram was decoded"


def verifiable(tg: SimulatedP1Telegram) -> bool:
    """Whether a plain telegram's CRC-covered bytes and CRC value reached the wire."""
    if not tg.telegram.startswith(b"/"):
        return False  # encrypted: the tag covers every byte
    bang = tg.telegram.rindex(b"!")
    at = tg.wire.find(tg.telegram[: bang + 1])
    crc = tg.wire[at + bang + 1 : at + bang + 5]
    return at >= 0 and crc.upper() == tg.telegram[bang + 1 : bang + 5]


def test_split_writes_end_to_end() -> None:
    with make("dsmr4", interval=0, split=True) as sim:
        with reader_for(sim) as reader:
            sim.start(count=20)
            readings = []
            while (r := reader.read(timeout=2)) is not None:
                readings.append(r)
        sim.wait()
    assert [r["timestamp"] for r in readings] == [
        t.expected["timestamp"] for t in sim.sent if t.expected
    ]


@pytest.mark.parametrize("meter", sorted(ENCRYPTED_METERS))
def test_encrypted_frames_decode_with_the_decoder(meter: str) -> None:
    decoder = mbuspico.Decoder(KEY, protocol="dsmr")  # type: ignore[arg-type]
    for tg in generate(meter, 3):
        assert_reading_is(decoder.decode(tg.telegram), tg.expected)


@pytest.mark.parametrize("meter", [m for m in P1_METERS if m not in ENCRYPTED_METERS])
def test_plain_telegrams_decode_with_the_decoder(meter: str) -> None:
    decoder = mbuspico.Decoder(protocol="dsmr")  # type: ignore[arg-type]
    for tg in generate(meter, 3):
        assert_reading_is(decoder.decode(tg.telegram), tg.expected)


# -- DSMR 2.2/3.0 ports: 9600 Bd 7E1 ---------------------------------------------


def with_even_parity_bit(data: bytes) -> bytes:
    """Each 7-bit character with its even-parity bit in bit 7, as a 7E1 line
    looks to an adapter that leaves the parity bit in the byte."""
    return bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in data)


def dsmr3_vector() -> bytes:
    import json

    doc = json.loads((Path(__file__).parent / "data/dsmr/vectors.json").read_text("utf-8"))
    vector = next(v for v in doc["vectors"] if v["id"] == "dsmr_parser/TELEGRAM_V3")
    return str(vector["text"]).encode("ascii")


@pytest.mark.parametrize("bytesize", [7, 8])
def test_seven_bit_p1_port(bytesize: int) -> None:
    telegram = dsmr3_vector()
    wire = with_even_parity_bit(telegram)
    assert wire != telegram  # the vector has characters with an odd number of 1 bits
    master, slave = os.openpty()
    try:
        with mbuspico.SerialReader(
            os.ttyname(slave),
            key=None,
            protocol="dsmr",
            baudrate=9600,
            parity="even",
            bytesize=bytesize,  # type: ignore[arg-type]
        ) as reader:
            os.write(master, wire + wire)
            got = reader.read(timeout=1.0)
            stats = reader.stats
    finally:
        os.close(master)
        os.close(slave)
    if bytesize == 8:
        # Read as 8-bit characters, "/" arrives as 0xAF: no telegram starts.
        assert got is None
        assert stats["telegrams"] == 0
        assert stats["bytes_skipped"] > 0
        return
    assert got is not None
    assert got["header"] == "ISk5\\2MT382-1000"
    assert got["crc"] == "missing"
    assert got["obis"]["1-0:1.8.1"]["value"] == 12345.678
    assert got["obis"]["1-0:1.8.1"]["unit"] == "kWh"
    assert got["obis"]["1-0:2.8.2"]["value"] == 12345.678


def test_bytesize_must_be_seven_or_eight() -> None:
    with pytest.raises(ValueError, match="bytesize must be 7 or 8, not 6"):
        mbuspico.SerialReader("/dev/null", key=None, protocol="dsmr", bytesize=6)  # type: ignore[arg-type]
