"""Real DLMS push frames decode to the values recorded with them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import mbuspico
from conftest import DATA, MBUS_KEYED, MBUS_UNKEYED, MBUSPICO, VECTORS, by_id, ids
from mbuspico import Decoder, DecryptionError


def obis_name(dotted: str) -> str:
    a, b, c, d, e, f = dotted.split(".")
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == "255" else f"*{f}")


def assert_matches_decoded(reading: mbuspico.Reading, vector: dict[str, Any]) -> None:
    """Every value in the vector's `decoded` list is in the reading, scaled, with its unit."""
    values = vector["decoded"]["values"]
    assert len(values) >= 11
    for item in values:
        raw = item["raw"]
        if item["obis"] is None:  # Netz NÖ layout: clock and meter number have no OBIS code
            if isinstance(raw, dict):
                assert reading["timestamp"] == raw["datetime"]
            else:
                assert reading["meterNumber"] == raw
            continue
        got = reading["obis"][obis_name(item["obis"])]
        if "scaled" in item:
            assert math.isclose(got["value"], item["scaled"], rel_tol=1e-12, abs_tol=1e-12)
            assert got["unit"] == (None if item["unit"] == "(none)" else item["unit"])
        elif isinstance(raw, dict):
            assert got["value"] == raw["datetime"]
        else:
            assert got["value"] == raw


@pytest.mark.parametrize("vector", MBUS_KEYED, ids=ids(MBUS_KEYED))
def test_keyed_frames_decode_to_their_values(vector: dict[str, Any]) -> None:
    reading = Decoder(vector["key"]).decode(bytes.fromhex(vector["hex"]))
    assert reading["protocol"] == "dlms"
    assert_matches_decoded(reading, vector)
    assert reading["systemTitle"] == vector["hex"][22:38].lower()


@pytest.mark.parametrize("vector", MBUSPICO, ids=ids(MBUSPICO))
def test_mbuspico_json_equals_mbuspico_output(vector: dict[str, Any]) -> None:
    reading = Decoder(vector["key"]).decode(vector["hex"])
    text = mbuspico.to_mbuspico_json(reading)
    assert json.loads(text) == vector["mbuspico_json_emulated"]
    # MBusPico's layout: one key per line, %.2f numbers, no trailing newline.
    lines = text.split("\n")
    assert lines[0] == "{"
    assert lines[-1] == "}"
    assert lines[1].startswith('"timestamp": "')
    assert lines[1].endswith('Z",')
    assert all(line.endswith(",") for line in lines[1:-2])
    assert lines[-2].startswith('"powerFactor": ')


def test_documentation_example_exactly(kaifa: dict[str, Any]) -> None:
    reading = Decoder(kaifa["key"]).decode(bytes.fromhex(kaifa["hex"]))
    assert reading["timestamp"] == "2021-09-27T09:47:15+02:00"
    assert reading["lxTimestamp"] == 401968035
    assert reading["meterNumber"] == "181220000009"
    assert reading["activeEnergyPlus"] == 12937
    assert reading["voltageL1"] == 233.7
    assert reading["powerFactor"] == 1.0
    assert reading["frameCounter"] == 0x23
    assert reading["reactiveEnergyPlus"] is None  # Netz NÖ does not send it
    assert reading["obis"]["1-0:1.8.0"] == {"value": 12937, "unit": "Wh"}
    # The values the source itself states (EVN Kaifa to MQTT README).
    stated = kaifa["expected"]
    assert reading["timestamp"] == stated["timestamp"]
    assert reading["activeEnergyPlus"] == stated["w_p"]
    assert reading["powerFactor"] == stated["phi"]
    assert mbuspico.to_mbuspico_json(reading) == (
        "{\n"
        '"timestamp": "2021-09-27T09:47:15Z",\n'
        '"lxTimestamp": 401968035,\n'
        '"meterNumber": "181220000009",\n'
        '"activePowerPlus": 0.00,\n'
        '"activePowerMinus": 0.00,\n'
        '"activeEnergyPlus": 12937.00,\n'
        '"activeEnergyMinus": 0.00,\n'
        '"voltageL1": 233.70,\n'
        '"voltageL2": 0.00,\n'
        '"voltageL3": 0.00,\n'
        '"currentL1": 0.00,\n'
        '"currentL2": 0.00,\n'
        '"currentL3": 0.00,\n'
        '"powerFactor": 1000.00\n'
        "}"
    )


def test_sagemcom_old_firmware_l01_quirk() -> None:
    vector = by_id("fkw9_sagemcom_t210d_L01")
    frame = bytes.fromhex(vector["hex"])
    assert frame[:4] == bytes.fromhex("68010168")
    reading = Decoder(vector["key"]).decode(frame)
    assert reading["meterNumber"] == "178210431186"
    assert reading["activeEnergyPlus"] == 627660
    assert reading["powerFactor"] == 0.819  # sent as signed long (0x10)
    assert reading["timestamp"] == "2023-04-14T17:56:05+02:00"


def test_ksm_west_tinetz_single_phase() -> None:
    vector = by_id("tinetz_doc_example_kaifa_1phase")
    reading = Decoder(vector["key"]).decode(vector["hex"])
    assert reading["meterNumber"] == "1KFM0100000035"
    assert reading["obis"]["0-0:42.0.0"]["value"] == "KFM1100100000035"
    assert reading["activeEnergyPlus"] == 9108
    assert reading["reactiveEnergyPlus"] == 96
    assert reading["reactiveEnergyMinus"] == 9
    assert reading["voltageL1"] == 230.8
    assert reading["voltageL2"] is None  # single-phase
    assert reading["powerFactor"] is None  # KSM-West sends none
    assert reading["timestamp"] == "2021-07-19T15:46:35+02:00"


def test_ksm_west_poland_three_phase() -> None:
    vector = by_id("amsreader_gh905_kaifa_poland")
    reading = Decoder(vector["key"]).decode(vector["hex"])
    assert reading["currentL1"] == 12.41
    assert reading["activePowerPlus"] == 2867
    assert reading["reactiveEnergyMinus"] == 38584
    assert reading["meterNumber"] == "1KFM0200169986"


PLAINTEXTS = [
    v
    for v in VECTORS
    if v["framing"] in ("mbus", "plaintext-apdu")
    and (v.get("plaintext_hex") or v["framing"] == "plaintext-apdu")
    and not v.get("key")
]


@pytest.mark.parametrize("vector", PLAINTEXTS, ids=ids(PLAINTEXTS))
def test_logged_plaintexts_decode_without_key(vector: dict[str, Any]) -> None:
    apdu = vector["hex"] if vector["framing"] == "plaintext-apdu" else vector["plaintext_hex"]
    reading = Decoder().decode(apdu)
    assert reading["systemTitle"] is None
    assert reading["frameCounter"] is None
    assert_matches_decoded(reading, vector)


@pytest.mark.parametrize("vector", MBUS_UNKEYED, ids=ids(MBUS_UNKEYED))
def test_unkeyed_frames_parse_up_to_decryption(vector: dict[str, Any]) -> None:
    with pytest.raises(DecryptionError, match=r"a key .* is needed") as info:
        Decoder().decode(vector["hex"])
    assert info.value.kind == "missing_key"
    # Framing, checksums, reassembly and the APDU header all passed: the error
    # names the start of the reassembled APDU (0xDB after C, A, CI, STSAP, DTSAP).
    assert info.value.offset == 9


def test_input_types(kaifa: dict[str, Any]) -> None:
    frame = bytes.fromhex(kaifa["hex"])
    decoder = Decoder(bytes.fromhex(kaifa["key"]))
    expected = decoder.decode(frame)
    spaced = " ".join(f"{b:02x}" for b in frame)
    for data in (bytearray(frame), memoryview(frame), kaifa["hex"], spaced, spaced.upper()):
        assert decoder.decode(data) == expected
    with pytest.raises(TypeError, match="expected bytes"):
        decoder.decode(12)  # type: ignore[arg-type]
    with pytest.raises(mbuspico.DecodeError, match="position 4") as info:
        decoder.decode("68 FX")
    assert info.value.offset == 4


def test_auth_key_is_used_for_tagged_apdus() -> None:
    vector = by_id("pwitab_general_glo_cipher_test")
    reading = Decoder(vector["key"], auth_key=vector["auth_key"]).decode(vector["hex"])
    assert reading["frameCounter"] == 485
    assert reading["systemTitle"] == "2f19229199164103"
    with pytest.raises(DecryptionError, match="authentication key is needed"):
        Decoder(vector["key"]).decode(vector["hex"])
    with pytest.raises(DecryptionError, match="tag mismatch"):
        Decoder(vector["key"], auth_key=bytes(16)).decode(vector["hex"])


def test_bundled_demo_frame_is_the_documentation_example(kaifa: dict[str, Any]) -> None:
    text = (DATA / "dlms" / "netznoe_kaifa_ma309m_doc.hex").read_text()
    assert bytes.fromhex(text) == bytes.fromhex(kaifa["hex"])


@pytest.mark.parametrize("vector", MBUS_KEYED, ids=ids(MBUS_KEYED))
def test_apdu_is_the_decrypted_plaintext(vector: dict[str, Any]) -> None:
    """``Decoder.apdu`` gives the plaintext the vector's source logged (EVN raw)."""
    apdu = Decoder(vector["key"]).apdu(bytes.fromhex(vector["hex"]))
    assert apdu.hex().upper() == vector["plaintext_hex"].upper()
    assert apdu[0] == 0x0F  # a data-notification
    with pytest.raises(DecryptionError) as wrong:
        Decoder(bytes(16)).apdu(bytes.fromhex(vector["hex"]))
    assert vector["key"].lower() not in str(wrong.value).lower()


def test_apdu_of_tagged_and_clear_apdus() -> None:
    vector = by_id("pwitab_general_glo_cipher_test")
    apdu = Decoder(vector["key"], auth_key=vector["auth_key"]).apdu(vector["hex"])
    assert apdu.hex().upper() == vector["plaintext_hex"].upper()
    with pytest.raises(DecryptionError, match="tag mismatch"):
        Decoder(vector["key"], auth_key=bytes(16)).apdu(vector["hex"])
    # A data-notification sent in the clear comes back as it is.
    assert Decoder().apdu(apdu) == apdu
    with pytest.raises(mbuspico.DecodeError) as cut:
        Decoder().apdu(apdu[:20])
    assert cut.value.offset is not None
    assert cut.value.offset <= 20


HDLC_KEYED = [v for v in VECTORS if v["framing"] == "hdlc" and v.get("key")]
# The positional layouts (no OBIS codes; shared/notes/dlms.md §2.4): the MBusPico
# field each number of the vector's decoded list is, in order (None: not a field).
WIENER_NETZE = [
    "activeEnergyPlus",
    "activeEnergyMinus",
    "reactiveEnergyPlus",
    "reactiveEnergyMinus",
    "activePowerPlus",
    "activePowerMinus",
    None,  # +Q (var)
    None,  # -Q (var)
]
BURGENLAND = [
    "voltageL1",
    "voltageL2",
    "voltageL3",
    "currentL1",
    "currentL2",
    "currentL3",
    "activePowerPlus",
    "activePowerMinus",
    "activeEnergyPlus",
    "activeEnergyMinus",
    None,  # three phase angles
    None,
    None,
]


@pytest.mark.parametrize("vector", HDLC_KEYED, ids=ids(HDLC_KEYED))
def test_hdlc_frames_decode_their_positional_values(vector: dict[str, Any]) -> None:
    """HDLC (Wiener Netze, Netz Burgenland): HCS/FCS, tag and decryption verified,
    then the values the vector's source decoded, by position."""
    decoder = Decoder(vector["key"], auth_key=vector.get("auth_key"))
    frame = bytes.fromhex(vector["hex"])
    assert decoder.apdu(frame).hex().upper() == vector["plaintext_hex"].upper()
    reading = decoder.decode(frame)
    values = vector["decoded"]["values"]
    numbers = [v["raw"] for v in values if v["type"].endswith("unsigned")]
    texts = [v["raw"] for v in values if isinstance(v["raw"], str)]
    layout = BURGENLAND if len(values) == 14 else WIENER_NETZE
    assert len(numbers) == len(layout)
    for name, raw in zip(layout, numbers):
        if name is None:
            continue
        scale = 0.01 if name.startswith("current") else 1
        assert reading[name] == pytest.approx(raw * scale), name  # type: ignore[literal-required]
    assert reading["meterNumber"] == (texts[0] if texts else None)
    clock = [v["raw"]["datetime"] for v in values if isinstance(v["raw"], dict)]
    if clock:  # Wiener Netze: the clock element; Burgenland: the notification's
        assert reading["timestamp"] == clock[0].split(" ")[0]  # "… (deviation unspecified)"
    assert reading["obis"]["1-0:1.8.0"]["unit"] == "Wh"
    bad = bytearray(frame)
    bad[len(bad) - 4] ^= 0x01  # last information byte: the FCS no longer matches
    with pytest.raises(mbuspico.ChecksumError) as crc:
        decoder.decode(bytes(bad))
    assert crc.value.offset == len(bad) - 3


def _obis_key(dotted: str) -> str:
    """``1.0.1.8.0.255`` → ``1-0:1.8.0`` (``*F`` when F ≠ 255)."""
    a, b, c, d, e, f = dotted.split(".")
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == "255" else f"*{f}")


def test_general_block_transfer_push_decrypts() -> None:
    """L+G E570 (5 HDLC frames, one GBT block each): blocks joined, plaintext as
    its source logged, the push with object list decoded value by value as the
    vector's ``decoded`` list gives them (dlms.md §4.4)."""
    vector = by_id("sdc_lg_e570_encrypted")
    decoder = Decoder(vector["key"], auth_key=vector.get("auth_key"))
    frame = bytes.fromhex(vector["hex"])
    assert decoder.apdu(frame).hex().upper() == vector["plaintext_hex"].upper()
    reading = decoder.decode(frame)
    for item in vector["decoded"]["values"]:
        if item["class_id"] == 40:  # the push setup: the list itself, its name
            assert _obis_key(item["obis"]) not in reading["obis"]
            continue
        got = reading["obis"][_obis_key(item["obis"])]["value"]
        if item["obis"] == "0.0.1.0.0.255":
            assert got == item["value"]["datetime"].split(" ")[0]
        elif item["class_id"] == 3 and item["obis"].split(".")[2] in ("31", "51", "71"):
            assert got == item["value"] / 100  # current, 0.01 A
        elif item["obis"] == "1.0.13.7.0.255":
            assert got == item["value"] / 1000  # power factor
        else:
            assert got == item["value"]
    assert reading["obis"]["0-0:42.0.0"] == {"value": "LGZ1030769231253", "unit": None}
    assert reading["activeEnergyPlus"] == 862055  # 1-1:1.8.0, Wh
    assert reading["obis"]["1-1:1.8.0"]["unit"] == "Wh"
    assert reading["activeEnergyMinus"] == 641361
    assert reading["powerFactor"] == 1.0
    assert reading["timestamp"] == "2024-03-13T09:02:45"  # deviation unspecified
    assert decoder.identify(frame) == {
        "protocol": "dlms",
        "framing": "hdlc+gbt",
        "layout": "object-list",
        "profiles": ["steiermark-e450", "lg-e570"],
    }
    with pytest.raises(mbuspico.FrameError) as cut:
        decoder.apdu(frame[:138])  # the first frame (block 1 of 5) alone
    assert cut.value.kind == "gbt_incomplete"
