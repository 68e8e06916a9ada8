"""Batch decoding (Decoder.decode_many / decode_iter) and capture files (read_capture).

Real telegrams of every framing go through the batch paths; each reading must
equal what ``Decoder.decode`` gives for the same telegram, failures must sit in
place (or be skipped, or raised after the readings before them), and capture
files of either form stream through the deframer with exact counters.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mbuspico

DATA = Path(__file__).parent / "data"
DLMS = {v["id"]: v for v in json.loads((DATA / "dlms" / "vectors.json").read_text())["vectors"]}
KAIFA = DLMS["fkw9_kaifa_ma309m_real"]
KEY = KAIFA["key"]
FRAME = bytes.fromhex(KAIFA["hex"])
CF_ECHO = bytes.fromhex((DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text())
P1 = json.loads((DATA / "dsmr" / "vectors.json").read_text())["vectors"]
V5 = next(v for v in P1 if v["id"] == "dsmr_parser/TELEGRAM_V5")["text"].encode()


def corrupt(frame: bytes, at: int) -> bytes:
    b = bytearray(frame)
    b[at] ^= 0x01
    return bytes(b)


def test_decode_many_equals_decode_item_by_item() -> None:
    d = mbuspico.Decoder(KEY)
    items: list[Any] = [FRAME, CF_ECHO, V5, FRAME.hex(), bytearray(FRAME), memoryview(CF_ECHO)]
    got = d.decode_many(items)
    assert got == [d.decode(i) for i in items]
    assert got[0]["meterNumber"] == KAIFA["decoded"]["values"][-1]["raw"] == "181220002177"
    assert got[1]["protocol"] == "mbus"
    assert got[2]["protocol"] == "dsmr"


def test_errors_in_place_skipped_or_raised() -> None:
    d = mbuspico.Decoder(KEY)
    bad_sum = corrupt(FRAME, 280)  # the checksum byte of the second frame
    items: list[Any] = [FRAME, bad_sum, 42, "zz", CF_ECHO]
    got = d.decode_many(items)
    assert len(got) == 5
    assert got[0] == d.decode(FRAME)
    assert isinstance(got[1], mbuspico.ChecksumError)
    assert got[1].offset == 280
    with pytest.raises(mbuspico.ChecksumError):
        d.decode(bad_sum)
    assert isinstance(got[2], TypeError)
    assert isinstance(got[3], mbuspico.DecodeError)
    assert got[3].kind == "invalid_hex"
    assert got[4]["protocol"] == "mbus"
    assert d.decode_many(items, errors="skip") == [got[0], got[4]]
    with pytest.raises(mbuspico.ChecksumError):
        d.decode_many(items, errors="raise")
    with pytest.raises(ValueError, match="errors must be"):
        d.decode_many(items, errors="ignore")  # type: ignore[arg-type]


def test_decode_iter_is_lazy_and_batched() -> None:
    d = mbuspico.Decoder(KEY)
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for i in range(10):
            pulled += 1
            yield FRAME if i != 6 else corrupt(FRAME, 100)

    it = d.decode_iter(source(), batch=4)
    assert pulled == 0
    first = next(it)
    assert first == d.decode(FRAME)
    assert pulled == 4  # one batch taken
    rest = list(it)
    assert pulled == 10
    assert len(rest) == 9
    assert isinstance(rest[5], mbuspico.DecodeError)
    assert [r for r in d.decode_iter(source(), errors="skip")] == [first] * 9
    raised = d.decode_iter(source(), errors="raise", batch=3)
    assert [next(raised) for _ in range(6)] == [first] * 6
    with pytest.raises(mbuspico.DecodeError):
        next(raised)
    with pytest.raises(StopIteration):
        next(raised)
    with pytest.raises(ValueError, match="batch"):
        d.decode_iter([], batch=0)


def test_decode_many_releases_the_gil() -> None:
    """Another thread runs while a large batch decodes."""
    d = mbuspico.Decoder(KEY)
    items = [FRAME] * 60_000
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    t = threading.Thread(target=count)
    t.start()
    try:
        before = ticks
        d.decode_many(items, errors="skip")
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert during > 20, during


def test_read_capture_binary_and_hex(tmp_path: Path) -> None:
    stream = b"\x00noise" + FRAME + b"\xff" * 7 + CF_ECHO + FRAME[:100] + FRAME
    binary = tmp_path / "meter.bin"
    binary.write_bytes(stream)
    capture = mbuspico.read_capture(binary, chunk_size=37)
    telegrams = list(capture)
    assert telegrams == [FRAME, CF_ECHO, FRAME]
    assert capture.hex is False
    s = capture.stats
    assert s["telegrams"] == 3
    assert s["bytes_skipped"] == len(stream) - 2 * len(FRAME) - len(CF_ECHO)
    with pytest.raises(RuntimeError):
        list(capture)

    text = tmp_path / "meter.hex"
    hexed = stream.hex().upper()
    text.write_text("\n".join(hexed[i : i + 61] for i in range(0, len(hexed), 61)) + "\n")
    capture = mbuspico.read_capture(text, chunk_size=50)
    assert list(capture) == [FRAME, CF_ECHO, FRAME]
    assert capture.hex is True
    readings = list(mbuspico.Decoder(KEY).decode_iter(mbuspico.read_capture(text)))
    assert [r["protocol"] for r in readings] == ["dlms", "mbus", "dlms"]


def test_read_capture_p1_text(tmp_path: Path) -> None:
    path = tmp_path / "p1.txt"
    path.write_bytes(b"garbage\r\n" + V5 + V5[:200] + V5)
    capture = mbuspico.read_capture(path, chunk_size=100)
    assert list(capture) == [V5, V5]
    readings = mbuspico.Decoder(protocol="dsmr").decode_many(mbuspico.read_capture(path))
    assert [r["activeEnergyPlus"] for r in readings] == [6825, 6825]


def test_read_capture_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="protocol"):
        mbuspico.read_capture(tmp_path / "x", protocol="p1")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        list(mbuspico.read_capture(tmp_path / "missing.bin"))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert list(mbuspico.read_capture(empty)) == []
