"""Meter profiles (src/profile.rs, mbuspico.profiles) proven on real frames.

Every profile's "decoded" vectors decode with that profile selected, and
``Decoder.identify`` names the profile; "framing" vectors (no key published)
pass framing and checksums and stop exactly at decryption; a telegram of another
meter is refused with the profile's framing or layout error; serial settings
reach the port (checked on a pseudo-terminal with termios).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mbuspico
from mbuspico.profiles import PROFILES, find, readme_table

DATA = Path(__file__).parent / "data"
DLMS = {v["id"]: v for v in json.loads((DATA / "dlms" / "vectors.json").read_text())["vectors"]}
DSMR = {v["id"]: v for v in json.loads((DATA / "dsmr" / "vectors.json").read_text())["vectors"]}


def telegram(vector_id: str) -> tuple[bytes, dict[str, Any]]:
    """The wire bytes of a vector and the vector."""
    if vector_id in DLMS:
        v = DLMS[vector_id]
        return bytes.fromhex(v["hex"]), v
    v = DSMR[vector_id]
    if "text" in v:
        return v["text"].encode("latin-1"), v
    return bytes.fromhex(v["hex"]), v


def decoder_for(profile: str, v: dict[str, Any], how: str) -> mbuspico.Decoder:
    return mbuspico.Decoder(
        v.get("key"),
        auth_key=v.get("auth_key"),
        profile=profile,
        verify_tag=how != "decoded without tag check",
    )


CASES = [(p.name, vid, how) for p in PROFILES.values() for vid, how in p.vectors]


def test_every_profile_has_a_proving_vector_and_they_exist() -> None:
    assert len(PROFILES) >= 16
    for p in PROFILES.values():
        assert p.vectors, p.name
        for vid, how in p.vectors:
            assert vid in DLMS or vid in DSMR, vid
            assert how in ("decoded", "decoded without tag check", "framing")


@pytest.mark.parametrize(("profile", "vector_id", "how"), CASES)
def test_profile_vectors(profile: str, vector_id: str, how: str) -> None:
    wire, v = telegram(vector_id)
    if how == "framing":
        # No key published: framing, checksums and APDU header pass; the
        # decoder stops at the first ciphertext-dependent step.
        with pytest.raises(mbuspico.DecryptionError) as e:
            mbuspico.Decoder(profile=profile, verify_tag=False).decode(wire)
        assert e.value.kind == "missing_key"
        return
    d = decoder_for(profile, v, how)
    reading = d.decode(wire)
    assert reading["protocol"] == PROFILES[profile].protocol
    found = d.identify(wire)
    assert profile in found["profiles"], found
    assert found["layout"] == PROFILES[profile].layout
    if PROFILES[profile].protocol == "dlms":
        # Every DLMS profile fills MBusPico's fields from the meter's values.
        assert reading["timestamp"] is not None
        assert reading["activeEnergyPlus"] is not None
        assert reading["obis"]


def test_values_of_the_new_layouts() -> None:
    """Values the sources state, through the profile that names each meter."""
    wire, v = telegram("klagenfurt_lg_e450_gbt_zero_key")
    r = mbuspico.Decoder(v["key"], profile="steiermark-e450", verify_tag=False).decode(wire)
    assert (r["meterNumber"], r["activeEnergyPlus"], r["voltageL1"]) == ("56815930", 49805, 234)
    assert r["reactiveEnergyMinus"] == 58267
    assert r["obis"]["1-0:32.7.0"] == {"value": 234, "unit": "V"}

    wire, v = telegram("energyagent_sagemcom_sag5_dsmr_p1")
    r = mbuspico.Decoder(v["key"], profile="steiermark-t210d", verify_tag=False).decode(wire)
    # The source's assertions: 1-0:1.8.0 = 7112944 Wh, 1-0:2.8.0 = 33153972 Wh.
    assert r["activeEnergyPlus"] == v["expected"]["1-0:1.8.0(Wh)"] == 7112944
    assert r["activeEnergyMinus"] == v["expected"]["1-0:2.8.0(Wh)"] == 33153972
    assert r["timestamp"] == "2023-08-17T15:24:25+02:00"
    assert r["frameCounter"] == 252


def test_tag_check_is_on_unless_turned_off() -> None:
    wire, v = telegram("klagenfurt_lg_e450_gbt_zero_key")
    checked = mbuspico.Decoder(v["key"], auth_key=v["auth_key"], profile="steiermark-e450")
    with pytest.raises(mbuspico.DecryptionError) as e:
        checked.decode(wire)
    assert e.value.kind == "authentication_failed"
    assert checked.verify_tag
    unchecked = mbuspico.Decoder(v["key"], verify_tag=False)
    assert not unchecked.verify_tag
    assert "verify_tag=False" in repr(unchecked)
    assert unchecked.decode(wire)["activeEnergyPlus"] == 49805
    # A wrong key without the tag check is still caught (the plaintext does not parse).
    with pytest.raises(mbuspico.DecryptionError) as e:
        mbuspico.Decoder("01" * 16, verify_tag=False).decode(wire)
    assert e.value.kind == "implausible_plaintext"


def test_authenticated_profile_needs_the_auth_key() -> None:
    wire, v = telegram("amsreader_gh501_1_lg_e450_burgenland")
    with pytest.raises(ValueError, match="auth_key") as e:
        mbuspico.Decoder(v["key"], profile="burgenland-e450")
    assert v["key"] not in str(e.value)
    d = mbuspico.Decoder(v["key"], auth_key=v["auth_key"], profile="burgenland-e450")
    assert d.profile == "burgenland-e450"
    assert d.decode(wire)["meterNumber"] == "30137181"
    # Another authentication key, or one flipped ciphertext bit: no reading.
    wrong = mbuspico.Decoder(v["key"], auth_key="00" * 16, profile="burgenland-e450")
    with pytest.raises(mbuspico.DecryptionError):
        wrong.decode(wire)
    flipped = bytearray(wire)
    flipped[40] ^= 0x01
    with pytest.raises(mbuspico.DecodeError):
        d.decode(bytes(flipped))


def test_profile_refuses_another_meters_telegram() -> None:
    wire, v = telegram("tinetz_doc_example_kaifa_1phase")
    with pytest.raises(mbuspico.FrameError) as e:
        mbuspico.Decoder(v["key"], profile="wienernetze-im350").decode(wire)
    assert (e.value.kind, e.value.offset) == ("profile_framing", 0)
    assert "HDLC (0x7e)" in str(e.value)
    assert "0x68" in str(e.value)
    # Same framing, another layout: KSM-West nested is not Netz NÖ flat.
    with pytest.raises(mbuspico.ApduError) as e:
        mbuspico.Decoder(v["key"], profile="kaifa-ma309m-netznoe").decode(wire)
    assert e.value.kind == "profile_layout"
    assert "obis-flat" in str(e.value)
    assert "obis-nested" in str(e.value)
    wn, v = telegram("wienernetze_siemens_im350")
    # A Burgenland meter tags every telegram: an untagged one is refused first…
    with pytest.raises(mbuspico.DecryptionError) as e:
        mbuspico.Decoder(v["key"], auth_key="00" * 16, profile="burgenland-e450").decode(wn)
    assert e.value.kind == "missing_tag"
    # …and without the tag check, its layout is not Burgenland's.
    with pytest.raises(mbuspico.ApduError) as e:
        mbuspico.Decoder(v["key"], profile="burgenland-e450", verify_tag=False).decode(wn)
    assert e.value.kind == "profile_layout"
    # And a DLMS profile refuses a P1 telegram.
    p1, _ = telegram("dsmr_parser/TELEGRAM_V5")
    with pytest.raises(ValueError, match="contradicts"):
        mbuspico.Decoder(profile="kaifa-ma309m-netznoe", protocol="dsmr")
    with pytest.raises(mbuspico.FrameError):
        mbuspico.Decoder("00" * 16, profile="kaifa-ma309m-netznoe").decode(p1)


def test_names_aliases_and_unknown() -> None:
    assert find("KAIFA_MA309M_NETZNOE").name == "kaifa-ma309m-netznoe"
    assert find("SAGEMCOM_T210D").name == "sagemcom-t210d-netznoe"
    assert find("ksm_west").name == "ksm-west"
    assert mbuspico.Decoder(profile="KSM_WEST").profile == "ksm-west"
    with pytest.raises(ValueError, match="unknown meter profile"):
        mbuspico.Decoder(profile="landis-e350")
    assert mbuspico.Decoder().profile is None


def test_p1_profile_time_zone_default() -> None:
    wire, _ = telegram("dsmr_parser/TELEGRAM_FLUVIUS_V171")
    r = mbuspico.Decoder(profile="belgium-fluvius").decode(wire)
    assert r["timestamp"] == "2020-05-12T13:54:09+02:00"
    assert r["meterNumber"] == "1SAG3101021605"  # 0-0:96.1.1, hex-decoded
    assert r["activeEnergyPlus"] == 15792  # 0.034 + 15.758 kWh, in Wh
    assert r["voltageL1"] == 234.7


def test_p1_reading_has_mbuspico_fields() -> None:
    wire, _ = telegram("dsmr_parser/TELEGRAM_V5")
    r = mbuspico.Decoder(protocol="dsmr").decode(wire)
    # dsmr_parser's values: tariffs 4.426 + 2.399 kWh, delivered 2.444 kWh, 0.244 kW.
    assert r["activeEnergyPlus"] == 6825
    assert r["activeEnergyMinus"] == 2444
    assert r["activePowerPlus"] == 244
    assert r["currentL1"] == 0.48
    assert r["meterNumber"] == "K8EG004046395507"
    assert r["lxTimestamp"] == 252616802  # 2017-01-02 19:20:02 local
    doc = json.loads(mbuspico.to_mbuspico_json(r))
    assert doc["activeEnergyPlus"] == 6825
    assert doc["meterNumber"] == "K8EG004046395507"


def test_readme_table_is_generated_from_the_profiles() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert readme_table() in readme
    for p in PROFILES.values():
        assert f"| `{p.name}` |" in readme


def _termios2(fd: int) -> tuple[int, int, int]:
    """c_cflag and the input and output speeds, read with Linux's TCGETS2 (the
    serialport crate sets speeds as BOTHER + termios2, which tcgetattr cannot show)."""
    import fcntl
    import struct

    tcgets2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2), 44 bytes
    raw = fcntl.ioctl(fd, tcgets2, bytes(44))
    _, _, cflag, _, _, _, ispeed, ospeed = struct.unpack("4IB19s2I", raw)
    return cflag, ispeed, ospeed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCGETS2 is Linux's")
@pytest.mark.parametrize("name", ["wienernetze-im350", "dsmr22", "burgenland-e450"])
def test_serial_reader_takes_the_profiles_interface_settings(name: str) -> None:
    """The port really runs at the profile's baud rate, parity and byte size."""
    p = PROFILES[name]
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        reader = mbuspico.SerialReader(
            path, key="00" * 16, auth_key="00" * 16, profile=name, timeout=0.1
        )
        with reader:
            assert (reader.baudrate, reader.parity, reader.bytesize) == (
                p.baudrate,
                p.parity,
                p.bytesize,
            )
            assert reader.profile == name
            # The line speed really reached the device. (Linux ptys force CS8
            # and clear PARENB whatever is asked, so only the speed shows.)
            _, ispeed, ospeed = _termios2(slave)
            assert (ispeed, ospeed) == (p.baudrate, p.baudrate)
    finally:
        os.close(master)
        os.close(slave)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(PROFILES)),
    st.sampled_from([b"", b"\x68", b"\x7e\xa0", b"\xdb\x08", b"\x0f", b"/"]),
    st.binary(max_size=400),
)
def test_any_bytes_under_any_profile(profile: str, head: bytes, rest: bytes) -> None:
    """A reading or a DecodeError inside the input, never anything else."""
    data = head + rest
    d = mbuspico.Decoder("00" * 16, auth_key="00" * 16, profile=profile)
    for call in (d.decode, d.identify):
        try:
            call(data)
        except mbuspico.DecodeError as e:
            assert 0 <= e.offset <= len(data)


def test_cli_decode_and_read_with_a_profile(tmp_path: Path) -> None:
    """``mbuspico decode --profile`` and ``simulate``/``read`` with profile names."""
    import io
    import subprocess

    from mbuspico.cli import main

    wire, v = telegram("wienernetze_siemens_im350")
    out, log = io.StringIO(), io.StringIO()
    argv = ["decode", "--hex", wire.hex(), "--key", v["key"], "--profile", "wienernetze-im350"]
    assert main(argv, out=out, log=log) == 0, log.getvalue()
    assert json.loads(out.getvalue())["meterNumber"] == "SMS1030788000020"
    out, log = io.StringIO(), io.StringIO()
    argv = ["decode", "--hex", wire.hex(), "--key", v["key"], "--profile", "burgenland-e450"]
    assert main([*argv, "--no-verify-tag"], out=out, log=log) == 1
    assert "sends the burgenland layout" in log.getvalue()

    exe = str(Path(sys.executable).with_name("mbuspico"))
    link = tmp_path / "meter"
    key, auth = "11" * 16, "22" * 16
    sim = subprocess.Popen(
        [
            *(exe, "simulate", "--meter", "burgenland-e450", "--key", key, "--auth-key", auth),
            *("--link", str(link), "--interval", "0.2"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        assert "burgenland-e450" in sim.stdout.readline()
        read = subprocess.run(
            [
                *(exe, "read", str(link), "--key", key, "--auth-key", auth),
                *("--profile", "burgenland-e450", "--count", "2", "--timeout", "10"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert read.returncode == 0, read.stderr
        readings = [json.loads(line) for line in read.stdout.splitlines()]
        assert len(readings) == 2
        assert all(r["systemTitle"].startswith("4c475a67") for r in readings)
        assert readings[1]["frameCounter"] == readings[0]["frameCounter"] + 1
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        if sim.stdout:
            sim.stdout.close()
