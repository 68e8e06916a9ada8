"""Wired M-Bus (EN 13757-3) from Python: libmbus parity on its corpus, readings, errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mbuspico
from conftest import DATA
from mbuspico import ChecksumError, DecodeError, Decoder, FrameError, RecordError
from mbuspico.cli import main
from mbuspico.mbus import to_xml

LIBMBUS = DATA / "libmbus"
TEST_FRAMES = sorted((LIBMBUS / "test-frames").glob("*.hex"))
CF_ECHO = DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"


def hex2bin(text: str) -> bytes:
    """libmbus's reading of a .hex file: pairs of hex digits, stop at the first non-hex pair."""
    digits = "".join(text.split())
    out = bytearray()
    for i in range(0, len(digits) - 1, 2):
        try:
            out.append(int(digits[i : i + 2], 16))
        except ValueError:
            break
    return bytes(out)


def test_corpus_is_complete() -> None:
    assert len(TEST_FRAMES) == 76
    assert (LIBMBUS / "LICENSE").exists()
    assert (LIBMBUS / "COPYING").exists()


def test_libmbus_xml_parity_bar() -> None:
    """At least 95 % of the 152 expected files are reproduced byte for byte."""
    same, differ = 0, []
    for path in TEST_FRAMES:
        frame = hex2bin(path.read_text())
        for suffix, normalized in ((".xml", False), (".norm.xml", True)):
            expected = path.with_suffix(suffix).read_bytes()
            if to_xml(frame, normalized=normalized).encode() == expected:
                same += 1
            else:
                differ.append(path.stem + suffix)
    rate = same / 152
    print(f"libmbus XML parity: {same}/152 = {rate:.1%}; differ: {differ}")
    assert rate >= 0.95, differ


@pytest.mark.parametrize("path", TEST_FRAMES, ids=[p.stem for p in TEST_FRAMES])
def test_every_corpus_frame_decodes(path: Path) -> None:
    frame = hex2bin(path.read_text())
    reading = Decoder().decode(frame)
    assert reading["protocol"] == "mbus"
    xml = path.with_suffix(".xml").read_text(encoding="utf-8", errors="replace")
    assert len(reading["records"]) == xml.count("<DataRecord")
    assert f"<Id>{reading['id']}</Id>" in xml
    for record in reading["records"]:
        assert bytes.fromhex(record["raw"]) in frame


def test_cf_echo_ii_values() -> None:
    """The Itron CF Echo II of the otb-iot documentation, values as libmbus printed them."""
    reading = Decoder().decode(CF_ECHO.read_text())
    assert reading["protocol"] == "mbus"
    assert (reading["manufacturer"], reading["id"], reading["version"]) == ("ACW", "55555555", 9)
    assert reading["productName"] == "Itron CF Echo 2"
    assert reading["medium"] == "Heat: Outlet"
    assert reading["accessNumber"] == 85
    assert reading["status"] == 0x10
    by_quantity = {r["quantity"]: r for r in reading["records"]}
    assert by_quantity["Energy"]["value"] == 9_730_000  # 973 x 10 kWh
    assert by_quantity["Energy"]["unit"] == "Wh"
    assert by_quantity["Volume"]["value"] == 1638.0  # 16380 x 0.1 m^3
    assert by_quantity["Flow temperature"]["value"] == 22.0
    assert by_quantity["Flow temperature"]["unit"] == "°C"
    assert by_quantity["Return temperature"]["value"] == 30.0
    assert by_quantity["Time point (date & time)"]["value"] == "2017-01-30T21:17:00"
    assert by_quantity["Operating time"]["value"] == 868 * 86400
    assert by_quantity["Firmware version"]["value"] == 22
    assert by_quantity["Power"]["function"] == "error"  # 999999: value during error state
    tail = reading["records"][-1]
    assert (tail["function"], tail["value"]) == ("manufacturer_specific", "0400")
    assert reading["moreRecordsFollow"] is False


def test_published_redacted_frame_has_a_stale_checksum() -> None:
    frame = (DATA / "mbus" / "otb_iot_cf_echo_ii_redacted.hex").read_text()
    with pytest.raises(ChecksumError, match="frame says 0x60, computed 0x70") as info:
        Decoder().decode(frame)
    assert info.value.offset == 81


def test_application_error_is_a_result() -> None:
    frame = hex2bin((LIBMBUS / "error-frames" / "application_busy.hex").read_text())
    reading = Decoder().decode(frame)
    assert reading["protocol"] == "mbus"
    assert reading["error"] == {"code": 8, "text": "Application busy"}
    assert reading["records"] == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("premature_end_of_data1", "premature end of M-Bus record at data"),
        ("premature_end_of_dif1", "at DIF"),
        ("premature_end_of_vif1", "at VIF"),
        ("too_many_dife", "more than 10 DIFE"),
        ("too_many_vife", "more than 10 VIFE"),
        ("too_short_header", "header too short"),
        ("too_long_var_vif", "plain-text VIF of 243"),
    ],
)
def test_malformed_frames_raise_record_errors(name: str, message: str) -> None:
    frame = hex2bin((LIBMBUS / "error-frames" / f"{name}.hex").read_text())
    with pytest.raises(RecordError, match=message) as info:
        Decoder().decode(frame)
    assert info.value.offset is not None
    assert 0 < info.value.offset < len(frame)


@pytest.mark.parametrize("path", sorted((LIBMBUS / "unsupported-frames").glob("*.hex")))
def test_unsupported_frames_never_crash(path: Path) -> None:
    try:
        reading = Decoder().decode(hex2bin(path.read_text()))
    except DecodeError as e:
        assert e.offset is not None
    else:
        assert reading["protocol"] == "mbus"


def test_protocol_selection() -> None:
    frame = CF_ECHO.read_text()
    with pytest.raises(DecodeError):
        Decoder(protocol="dlms").decode(frame)
    assert Decoder(protocol="mbus").decode(frame)["protocol"] == "mbus"
    with pytest.raises(ValueError, match="protocol"):
        Decoder(protocol="p1")  # type: ignore[arg-type]
    with pytest.raises(FrameError):
        Decoder().decode("E5")  # an acknowledge carries no data


def test_xml_of_several_telegrams_numbers_records_on() -> None:
    frame = CF_ECHO.read_text()
    xml = to_xml([frame, frame])
    assert xml.count("<SlaveInformation>") == 1
    assert '<DataRecord id="13" frame="1">' in xml


def test_cli_xml_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    path = LIBMBUS / "test-frames" / "itron_cf_echo_2.hex"
    assert main(["decode", "--format", "xml", str(path)]) == 0
    assert capsys.readouterr().out == path.with_suffix(".xml").read_text(encoding="utf-8")
    assert main(["decode", "--format", "xml-normalized", str(path)]) == 0
    assert capsys.readouterr().out == path.with_suffix(".norm.xml").read_text(encoding="utf-8")
    assert main(["decode", "--format", "table", str(CF_ECHO)]) == 0
    table = capsys.readouterr().out
    assert "Energy" in table
    assert "9730000 Wh" in table
    assert main(["decode", str(CF_ECHO)]) == 0
    assert json.loads(capsys.readouterr().out)["manufacturer"] == "ACW"


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=252))
def test_any_application_data_behind_a_valid_frame(ci: int, data: bytes) -> None:
    body = bytes([0x08, 0x01, ci]) + data
    frame = bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum(body) % 256, 0x16])
    try:
        reading: Any = Decoder(protocol="mbus").decode(frame)
    except DecodeError as e:
        assert e.offset is not None
        assert 0 <= e.offset <= len(frame)
    else:
        assert reading["ci"] == ci
    with contextlib.suppress(DecodeError):
        to_xml(frame, normalized=True)


def test_types_exported() -> None:
    assert mbuspico.MbusReading.__name__ == "MbusReading"
