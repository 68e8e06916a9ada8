"""The ``mbuspico decode`` command, run as a user runs it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import DATA, by_id
from mbuspico.cli import main

DEMO = DATA / "dlms" / "netznoe_kaifa_ma309m_doc.hex"


def run(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, log = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, log=log, stdin=io.BytesIO(stdin))
    return code, out.getvalue(), log.getvalue()


def test_decode_bundled_frame_as_json(kaifa: dict[str, Any]) -> None:
    code, out, err = run("decode", "--key", kaifa["key"], str(DEMO))
    assert code == 0, err
    reading = json.loads(out)
    assert reading["meterNumber"] == "181220000009"
    assert reading["activeEnergyPlus"] == 12937
    assert err == ""


def test_mbuspico_format(kaifa: dict[str, Any]) -> None:
    code, out, _ = run("decode", "--key", kaifa["key"], "--format", "mbuspico", str(DEMO))
    assert code == 0
    assert json.loads(out) == kaifa["mbuspico_json_emulated"]


def test_table_format(kaifa: dict[str, Any]) -> None:
    code, out, _ = run("decode", "--key", kaifa["key"], "--format", "table", "--hex", kaifa["hex"])
    assert code == 0
    assert "181220000009" in out
    assert "233.7 V" in out
    assert "12937 Wh  activeEnergyPlus" in out


def test_capture_with_garbage_many_telegrams(tmp_path: Path) -> None:
    real = by_id("fkw9_kaifa_ma309m_real")
    doc = by_id("netznoe_doc_example_kaifa_ma309m")
    t = bytes.fromhex(real["hex"])
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"\x00\xff" + t + b"noise" + t + t[:100])
    code, out, err = run("decode", "--key", real["key"], str(capture))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert {json.loads(line)["activePowerPlus"] for line in lines} == {1055}
    assert "skipped 107 byte(s)" in err
    # The same capture as hex text on standard input.
    code, out, _ = run(
        "decode", "--key", real["key"], "-", stdin=capture.read_bytes().hex().encode()
    )
    assert code == 0
    assert len(out.splitlines()) == 2
    # A different meter's key: every telegram fails, nothing is printed.
    code, out, err = run("decode", "--key", doc["key"], str(capture))
    assert code == 1
    assert out == ""
    assert "wrong key" in err
    assert doc["key"].lower() not in err.lower()


def test_no_decodable_telegram(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 3)
    code, out, err = run("decode", "--key", "00" * 16, str(junk))
    assert code == 1
    assert out == ""
    assert "no telegram found" in err
    assert len(err.splitlines()) == 1  # one line on what the file holds (issue 20)


def test_bad_key_is_a_usage_error_without_echo() -> None:
    code, _, err = run("decode", "--key", "0123456789", "--hex", "68")
    assert code == 2
    assert "32 hexadecimal digits" in err
    assert "0123456789" not in err


def test_missing_key_message(kaifa: dict[str, Any]) -> None:
    code, _, err = run("decode", "--hex", kaifa["hex"])
    assert code == 1
    assert "a key" in err
    assert "is needed" in err


def test_console_script_and_module_entry_points(kaifa: dict[str, Any]) -> None:
    exe = Path(sys.executable).with_name("mbuspico")
    for cmd in ([str(exe)], [sys.executable, "-m", "mbuspico"]):
        proc = subprocess.run(
            [*cmd, "decode", "--key", kaifa["key"], str(DEMO)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["voltageL1"] == 233.7
