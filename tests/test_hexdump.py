"""Hex dumps as text: every separator style, otb-iot's status messages, bad hex, the CLI.

The CF Echo II frame and its dumps are those of the otb-iot documentation
(tests/data/SOURCES.md, ``mbus/``); the DLMS push is the Netz NÖ documentation
example (tests/data/dlms/vectors.json).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mbuspico
from conftest import DATA, by_id
from mbuspico import ChecksumError, DecodeError, Decoder, Deframer, HexError
from mbuspico._core import parse_hex
from mbuspico.cli import main

MBUS_DATA = DATA / "mbus"
CF_ECHO = bytes.fromhex((MBUS_DATA / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text())
REDACTED = (MBUS_DATA / "otb_iot_cf_echo_ii_redacted.hex").read_text().strip()
STATUS_MESSAGES = (MBUS_DATA / "otb_iot_cf_echo_ii_status_messages.txt").read_text()
KAIFA = by_id("netznoe_doc_example_kaifa_ma309m")


def _pairs(data: bytes, upper: bool = False) -> list[str]:
    return [f"{b:02X}" if upper else f"{b:02x}" for b in data]


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _otb(data: bytes, sep: str = "\n") -> str:
    """otb-iot status messages: 25 bytes each, the last one ending in xx."""
    messages = ["ok:" + "/".join(m) for m in _chunks(_pairs(data), 25)]
    return sep.join(messages) + "/xx" if messages else "ok:xx"


FORMS: dict[str, Callable[[bytes], str]] = {
    "contiguous": lambda d: d.hex(),
    "contiguous upper": lambda d: d.hex().upper(),
    "spaces (libmbus)": lambda d: " ".join(_pairs(d)),
    "colons": lambda d: ":".join(_pairs(d, upper=True)),
    "slashes": lambda d: "/".join(_pairs(d)),
    "dashes": lambda d: "-".join(_pairs(d, upper=True)),
    "commas": lambda d: ",".join(_pairs(d)),
    "0x and commas": lambda d: ", ".join("0x" + p for p in _pairs(d)),
    "0X and spaces": lambda d: " ".join("0X" + p for p in _pairs(d, upper=True)),
    "0x one number": lambda d: "0x" + d.hex() if d else "",
    "lines of 16": lambda d: "\n".join(" ".join(c) for c in _chunks(_pairs(d), 16)) + "\n",
    "tabs and CRLF": lambda d: "\r\n".join("\t".join(c) for c in _chunks(_pairs(d), 8)),
    "padded": lambda d: "  \n" + " ".join(_pairs(d)) + " \t\n",
    "otb-iot messages": _otb,
    "otb-iot messages joined": lambda d: _otb(d, sep=""),
    "otb-iot without xx": lambda d: "\n".join("ok:" + "/".join(m) for m in _chunks(_pairs(d), 25)),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_decodes_the_cf_echo_ii_frame(form: str) -> None:
    text = FORMS[form](CF_ECHO)
    assert parse_hex(text) == CF_ECHO
    reading = Decoder().decode(text)
    assert reading == Decoder().decode(CF_ECHO)
    assert (reading["manufacturer"], reading["id"]) == ("ACW", "55555555")
    energy = next(r for r in reading["records"] if r["quantity"] == "Energy")
    assert (energy["value"], energy["unit"]) == (9_730_000, "Wh")  # 973 x 10 kWh, libmbus
    assert Decoder().identify(text)["protocol"] == "mbus"


@pytest.mark.parametrize("form", FORMS)
def test_every_form_decodes_a_dlms_push(form: str) -> None:
    frame = bytes.fromhex(KAIFA["hex"])
    text = FORMS[form](frame)
    decoder = Decoder(KAIFA["key"])
    reading = decoder.decode(text)
    assert reading == decoder.decode(frame)
    assert reading["meterNumber"] == KAIFA["expected"]["meternumber"] == "181220000009"
    assert reading["activeEnergyPlus"] == KAIFA["expected"]["w_p"] == 12937
    assert reading["voltageL1"] == KAIFA["expected"]["u1"] == 233.7
    assert decoder.identify(text)["framing"] == "mbus"
    assert decoder.apdu(text) == decoder.apdu(frame)


def test_batches_take_every_form() -> None:
    decoder = Decoder(KAIFA["key"])
    frame = bytes.fromhex(KAIFA["hex"])
    texts = [f(frame) for f in FORMS.values()] + [f(CF_ECHO) for f in FORMS.values()]
    readings = decoder.decode_many(texts, errors="raise")
    assert [r["protocol"] for r in readings] == ["dlms"] * len(FORMS) + ["mbus"] * len(FORMS)
    assert {r["activeEnergyPlus"] for r in readings[: len(FORMS)]} == {12937}
    assert list(decoder.decode_iter(texts, batch=5)) == readings


def test_otb_iot_status_messages_of_the_documentation() -> None:
    """The unredacted dump as otb-iot published it: four messages, the last ending in xx."""
    lines = STATUS_MESSAGES.splitlines()
    assert len(lines) == 4
    assert lines[-1].endswith("/16/xx")
    frame = parse_hex(STATUS_MESSAGES)
    # The same bytes taken apart by hand: drop "ok:" and the final "xx".
    by_hand = bytes.fromhex("".join(line[3:].replace("/xx", "").replace("/", "") for line in lines))
    assert frame == by_hand
    assert len(frame) == 83
    assert (frame[-2], frame[-1]) == (0xFF, 0x16)  # its checksum verifies
    reading = Decoder(protocol="mbus").decode(STATUS_MESSAGES)
    assert (reading["manufacturer"], reading["id"], reading["version"]) == ("ACW", "14273160", 9)
    by_quantity = {r["quantity"]: r for r in reading["records"]}
    assert by_quantity["Flow temperature"]["value"] == 15.3  # 0a 5a 53 01: BCD 0153 x 0.1 °C
    assert by_quantity["Return temperature"]["value"] == 22.1  # 0a 5e 21 02
    # 04 6d 24 13 2b 22: type F date-time 2017-02-11 19:36
    assert by_quantity["Time point (date & time)"]["value"] == "2017-02-11T19:36:00"
    # Each message as the MQTT bridge delivers it, fed to a deframer.
    deframer = Deframer()
    got = [t for line in lines for t in deframer.feed(line)]
    assert got == [frame]
    assert parse_hex("ok:xx") == b""  # otb-iot's "buffer empty"


def test_redacted_dump_checksum_error_and_unchecked_decode() -> None:
    with pytest.raises(ChecksumError, match="frame says 0x60, computed 0x70 at byte 81") as info:
        Decoder().decode(REDACTED)
    assert (info.value.offset, info.value.kind) == (81, "checksum")
    unchecked = Decoder(verify_checksum=False)
    assert unchecked.verify_checksum is False
    assert "verify_checksum=False" in repr(unchecked)
    reading = unchecked.decode(REDACTED)
    assert reading == Decoder().decode(CF_ECHO)  # the corrected frame's reading
    assert reading["id"] == "55555555"
    # Only the checksum is skipped: a wrong stop byte still fails.
    broken = bytearray.fromhex(REDACTED)
    broken[-1] = 0x17
    with pytest.raises(mbuspico.FrameError, match="stop byte"):
        unchecked.decode(bytes(broken))
    # M-Bus frames of a DLMS push are always checked.
    push = bytearray.fromhex(KAIFA["hex"])
    push[280] ^= 0x01  # the second frame's checksum
    with pytest.raises(ChecksumError):
        Decoder(KAIFA["key"], verify_checksum=False).decode(bytes(push))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mbuspico", "decode", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_redacted_dump() -> None:
    proc = _cli("--protocol", "mbus", "--hex", REDACTED)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "M-Bus checksum mismatch: frame says 0x60, computed 0x70 at byte 81" in proc.stderr
    # The same dump as otb-iot status messages, decoded unchecked.
    proc = _cli(
        "--protocol", "mbus", "--no-verify-checksum", "--hex", _otb(bytes.fromhex(REDACTED))
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(Decoder().decode(CF_ECHO)))


def test_cli_no_verify_checksum_also_takes_a_stale_p1_crc() -> None:
    text = _p1_text()
    stale = text.replace("!6EEE", "!6EEF")
    assert stale != text
    out, log = io.StringIO(), io.StringIO()
    assert main(["decode", "--hex", stale], out=out, log=log) == 1
    assert "no telegram found" in log.getvalue()
    assert "CRC mismatch: telegram says 6EEF, computed 6EEE" in log.getvalue()
    out, log = io.StringIO(), io.StringIO()
    assert main(["decode", "--no-verify-checksum", "--hex", stale], out=out, log=log) == 0
    reading = json.loads(out.getvalue())
    assert reading["crc"] == "mismatch"
    assert reading == json.loads(json.dumps(Decoder(verify_crc=False).decode(stale)))
    assert reading["obis"]["1-0:1.8.1"]["value"] == 4.426


def test_cli_reads_dumps_from_files_and_stdin(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text(STATUS_MESSAGES)
    colons = tmp_path / "colons.txt"
    colons.write_text(FORMS["colons"](CF_ECHO) + "\n")
    out, log = io.StringIO(), io.StringIO()
    stdin = io.BytesIO(FORMS["0x and commas"](CF_ECHO).encode())
    assert main(["decode", str(dump), str(colons), "-"], out=out, log=log, stdin=stdin) == 0
    ids = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
    assert ids == ["14273160", "55555555", "55555555"]
    assert log.getvalue() == ""


def test_cli_otb_iot_messages_print_the_records() -> None:
    proc = _cli("--protocol", "mbus", "--format", "table", "--hex", STATUS_MESSAGES)
    assert proc.returncode == 0, proc.stderr
    assert "ACW 14273160  Itron CF Echo 2  Heat: Outlet" in proc.stdout
    assert "Flow temperature" in proc.stdout
    assert "2017-02-11T19:36:00" in proc.stdout
    proc = _cli("--hex", "68 4d 4g")
    assert proc.returncode == 1
    assert (
        "--hex #1: not hexadecimal text: invalid character 'g' at character position 7"
        in proc.stderr
    )


@pytest.mark.parametrize(
    ("text", "kind", "offset", "message"),
    [
        ("68 4d zz", "invalid_hex", 6, "invalid character 'z' at character position 6"),
        (
            "68 4d 4",
            "odd_hex_digits",
            6,
            "a group of 1 hex digits (an odd number) at character position 6",
        ),
        ("684d4", "odd_hex_digits", 0, "a group of 5 hex digits"),
        ("68;4d", "invalid_hex", 2, "invalid character ';'"),
        ("0x", "invalid_hex", 1, "invalid character 'x'"),
        ("68 ä 4d", "invalid_hex", 3, "invalid character 'ä' at character position 3"),
        ("68 4d € 4g", "invalid_hex", 6, "invalid character '€' at character position 6"),
        ("68 4d\nok:01/xx/02", "invalid_hex", 12, "invalid character 'x'"),
        ("68 xx", "invalid_hex", 3, "invalid character 'x'"),
        ("68\x00", "invalid_hex", 2, "invalid character '\\0'"),
    ],
)
def test_bad_hex_names_the_character(text: str, kind: str, offset: int, message: str) -> None:
    for call in (Decoder().decode, Decoder().identify, parse_hex, Deframer().feed):
        with pytest.raises(HexError) as info:
            call(text)
        assert (info.value.kind, info.value.offset) == (kind, offset)
        assert message in str(info.value)
        assert isinstance(info.value, DecodeError)
        assert isinstance(info.value, ValueError)
    got = Decoder().decode_many([text, CF_ECHO])
    assert isinstance(got[0], HexError)
    assert got[0].offset == offset
    assert got[1]["id"] == "55555555"


def _p1_text() -> str:
    return str(
        next(
            v
            for v in json.loads((DATA / "dsmr" / "vectors.json").read_text())["vectors"]
            if v["id"] == "dsmr_parser/TELEGRAM_V5"
        )["text"]
    )


def test_p1_text_stays_a_telegram() -> None:
    """A str starting with '/' is a P1 telegram, not a hex dump (colons and all)."""
    text = _p1_text()
    reading = Decoder().decode(text)
    assert (reading["protocol"], reading["crc"]) == ("dsmr", "ok")
    assert reading["obis"]["1-0:1.8.1"]["value"] == 4.426  # 1-0:1.8.1(000004.426*kWh)
    assert reading == Decoder().decode(text.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(sorted(FORMS)))
def test_any_bytes_in_any_form_parse_back(data: bytes, form: str) -> None:
    assert parse_hex(FORMS[form](data)) == data


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet="0123456789abcdefABCDEFxXok: /,-\t\r\n;ä", max_size=60),
    )
)
def test_any_text_raises_only_decode_errors(text: str) -> None:
    decoder = Decoder()
    for call in (decoder.decode, decoder.identify):
        try:
            reading: Any = call(text)
        except DecodeError as e:
            assert e.offset is not None
            assert e.offset <= max(len(text), len(text.encode()))
        else:
            assert reading["protocol"] in ("mbus", "dlms", "dsmr")
