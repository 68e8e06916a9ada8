"""read_capture(progress=True): a tqdm bar of the bytes read, or a warning without tqdm."""

from __future__ import annotations

import sys

import pytest

import mbuspico
from conftest import DATA, by_id

REAL = by_id("fkw9_kaifa_ma309m_real")


@pytest.fixture
def capture_file(tmp_path):
    frame = (DATA / "dlms" / "netznoe_kaifa_ma309m_real.bin").read_bytes()
    path = tmp_path / "meter.bin"
    path.write_bytes((b"\x00\xff" + frame) * 50)  # 14,200 bytes
    return path


def test_progress_bar_counts_every_byte(capture_file, capsys):
    pytest.importorskip("tqdm")
    capture = mbuspico.read_capture(capture_file, progress=True, chunk_size=1000)
    assert capture.progress
    readings = list(mbuspico.Decoder(REAL["key"]).decode_iter(capture))
    assert len(readings) == 50
    assert {r["activePowerPlus"] for r in readings} == {1055}
    assert capture.stats["bytes_skipped"] == 100
    err = capsys.readouterr().err
    assert "meter.bin" in err
    assert "14.2k/14.2k" in err  # the bar ends at the file size


def test_progress_of_hex_text_counts_file_bytes(tmp_path, capsys):
    pytest.importorskip("tqdm")
    path = tmp_path / "doc.hex"
    path.write_text((DATA / "dlms" / "netznoe_kaifa_ma309m_doc.hex").read_text())
    size = path.stat().st_size
    telegrams = list(mbuspico.read_capture(path, progress=True, chunk_size=100))
    assert len(telegrams) == 1
    assert len(telegrams[0]) == 282
    assert f"{size}/{size}" in capsys.readouterr().err


def test_without_tqdm_a_warning_and_no_bar(capture_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.warns(RuntimeWarning, match=r"pip install mbuspico\[progress\]"):
        capture = mbuspico.read_capture(capture_file, progress=True)
    assert not capture.progress
    assert len(list(capture)) == 50
    assert capsys.readouterr().err == ""


def test_no_bar_by_default(capture_file, capsys):
    capture = mbuspico.read_capture(capture_file)
    assert not capture.progress
    assert len(list(capture)) == 50
    assert capsys.readouterr().err == ""
