"""Tampered telegrams never become readings they were not.

* Tagged telegrams (AES-GCM, security control 0x30): every single-bit flip of
  the ciphertext and the tag -- the whole authenticated region -- is a
  :class:`~mbuspico.DecryptionError`. The frame's own checksum (HDLC FCS) is
  fixed up after the flip, so the tag is the only thing that can notice.
  Flips of the authenticated header (security control, frame counter, system
  title: the GCM nonce and additional data) never give a reading either.
* Untagged telegrams (security control 0x20, AES-CTR without a tag, as the Netz
  NÖ Kaifa sends): a flip of a ciphertext bit flips exactly that bit of the
  plaintext, and nothing cryptographic can notice. The only protection is that
  the plaintext must still parse as the meter's notification; the test flips
  every bit (fixing the M-Bus checksum), checks that each flip is refused or
  changes only the value it hit, and measures how many give a reading at all.
  Measured on ``fkw9_kaifa_ma309m_real`` (243 ciphertext bytes, 1944 flips):
  636 refused (DecryptionError "not a valid data-notification"), 1308 readings
  (67 %): 176 identical to the original (invoke id and other bytes no value
  shows), 1132 with one value or one OBIS code changed -- including a code
  renamed onto another register (1.8.0 -> 2.8.0 reports the import energy as
  the export), which no check can notice without a tag.
* Downgrade (``test_downgrade_to_untagged_is_refused``): a tagged telegram
  rewritten to security control 0x20 with the tag cut off (Burgenland), or one
  flipped bit 0x30 -> 0x20 (Smarty), is refused with ``missing_tag`` whenever
  the decoder knows the meter tags its telegrams (an ``auth_key`` given, or a
  tagging profile); otherwise CTR malleability would let an attacker on the
  wire change any value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import mbuspico
from conftest import DATA, by_id

SMARTY_AUTH_KEY = "00112233445566778899AABBCCDDEEFF"


def flips(frame: bytes, start: int, end: int) -> Iterator[tuple[int, bytearray]]:
    """``(bit, copy)`` for every single-bit flip of ``frame[start:end]``."""
    for bit in range((end - start) * 8):
        tampered = bytearray(frame)
        tampered[start + bit // 8] ^= 0x80 >> (bit % 8)
        yield bit, tampered


def x25(data: bytes) -> int:
    """CRC-16/X.25, the HDLC frame check sequence (sent least significant byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def fix_hdlc(frame: bytearray) -> bytes:
    """Recompute the FCS of a single HDLC frame ``7E ... FCS FCS 7E``."""
    fcs = x25(frame[1:-3])
    frame[-3:-1] = fcs.to_bytes(2, "little")
    return bytes(frame)


def mbus_frames(data: bytes) -> list[tuple[int, int]]:
    """``(start, length)`` of each M-Bus long frame ``68 L L 68 ... CS 16`` in ``data``."""
    frames, i = [], 0
    while i < len(data):
        assert data[i] == data[i + 3] == 0x68
        assert data[i + 1] == data[i + 2]
        length = data[i + 1] + 6
        assert data[i + length - 1] == 0x16
        frames.append((i, length))
        i += length
    return frames


def fix_mbus(data: bytearray) -> bytes:
    """Recompute every M-Bus checksum: the sum of the bytes from the C-field to
    the last data byte, modulo 256."""
    for start, length in mbus_frames(bytes(data)):
        data[start + length - 2] = sum(data[start + 4 : start + length - 2]) % 256
    return bytes(data)


# -- tagged: every flip is a DecryptionError -----------------------------------------------------


def burgenland() -> tuple[mbuspico.Decoder, bytes, int, int]:
    """Decoder, frame and the ``[start, end)`` of ciphertext and tag."""
    v = by_id("amsreader_gh501_1_lg_e450_burgenland")
    frame = bytes.fromhex(v["hex"])
    apdu = frame.index(b"\xdb\x08")
    length = frame[apdu + 10]  # one length byte: below 0x80
    assert length < 0x80
    assert frame[apdu + 11] == 0x30  # security control: GCM with tag
    start = apdu + 11 + 1 + 4  # after the security control and the frame counter
    end = apdu + 11 + length
    assert end == len(frame) - 3  # then FCS and the closing flag
    decoder = mbuspico.Decoder(v["key"], auth_key=v["auth_key"])
    return decoder, frame, start, end


def smarty() -> tuple[mbuspico.Decoder, bytes, int, int]:
    """The Smarty frame of benchmarks/bench_decode.py: the real meterlogger
    telegram, encrypted with key AAAA..., the public AK, "SYSTEMID", 0x10000001."""
    doc = json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))
    texts = {v["id"]: v.get("text") for v in doc["vectors"]}
    plain = texts["meterlogger/luxembourgTelegram"].encode()
    frame = mbuspico._core.dsmr_encrypt(
        plain,
        key="AA" * 16,
        auth_key=SMARTY_AUTH_KEY,
        system_title=b"SYSTEMID",
        frame_counter=0x10000001,
    )
    start = len(frame) - len(plain) - 12
    assert frame[start - 5] == 0x30  # security control, then the frame counter
    return mbuspico.Decoder("AA" * 16, auth_key=SMARTY_AUTH_KEY), frame, start, len(frame)


@pytest.mark.parametrize("make", [burgenland, smarty], ids=["burgenland", "smarty"])
def test_every_flip_of_ciphertext_or_tag_is_a_decryption_error(make: Any) -> None:
    decoder, frame, start, end = make()
    fix = fix_hdlc if frame[0] == 0x7E else bytes
    assert decoder.decode(fix(bytearray(frame)))  # the untouched frame decodes
    results: dict[str, int] = {}
    for bit, tampered in flips(frame, start, end):
        with pytest.raises(mbuspico.DecryptionError, match="tag mismatch"):
            decoder.decode(fix(tampered))
        results["DecryptionError"] = results.get("DecryptionError", 0) + 1
        assert bit >= 0
    assert results == {"DecryptionError": (end - start) * 8}


@pytest.mark.parametrize("make", [burgenland, smarty], ids=["burgenland", "smarty"])
def test_flips_of_the_authenticated_header_give_no_reading(make: Any) -> None:
    """System title, security control and frame counter (nonce and AAD)."""
    decoder, frame, start, _ = make()
    fix = fix_hdlc if frame[0] == 0x7E else bytes
    apdu = frame.index(b"\xdb\x08")
    system_title = (apdu + 2, apdu + 10)
    header = (start - 5, start)  # security control and frame counter
    for first, last in (system_title, header):
        for _, tampered in flips(frame, first, last):
            if tampered[start - 5] == 0x20:
                continue  # the downgrade to "no tag": test_downgrade_to_untagged_is_refused
            with pytest.raises(mbuspico.DecodeError):
                decoder.decode(fix(tampered))


def downgraded_burgenland() -> tuple[mbuspico.Decoder, bytes]:
    """The Burgenland frame made untagged: security control 0x20, tag cut off,
    lengths, HCS and FCS fixed -- what an attacker on the wire can send."""
    _, frame, start, end = burgenland()
    v = by_id("amsreader_gh501_1_lg_e450_burgenland")
    f = bytearray(frame)
    f[start - 5] = 0x20
    del f[end - 12 : end]
    f[start - 6] -= 12  # the APDU's length byte
    length = ((f[1] & 0x07) << 8 | f[2]) - 12  # the HDLC frame format's 11-bit length
    f[1], f[2] = (f[1] & 0xF8) | length >> 8, length & 0xFF
    f[7:9] = x25(f[1:7]).to_bytes(2, "little")  # HCS
    decoder = mbuspico.Decoder(v["key"], auth_key=v["auth_key"], profile="burgenland-e450")
    return decoder, fix_hdlc(f)


@pytest.mark.parametrize("case", ["smarty-sc-flip", "burgenland-stripped-tag"])
def test_downgrade_to_untagged_is_refused(case: str) -> None:
    if case == "smarty-sc-flip":
        decoder, frame, start, _ = smarty()
        tampered = bytearray(frame)
        tampered[start - 5] = 0x20  # one bit: 0x30 -> 0x20, the tag left as trailing bytes
        frame = bytes(tampered)
    else:
        decoder, frame = downgraded_burgenland()
    with pytest.raises(mbuspico.DecryptionError) as refused:
        decoder.decode(frame)
    assert refused.value.kind == "missing_tag"
    # Only an explicit opt-out accepts an untagged frame from a tagging meter.
    v = by_id("amsreader_gh501_1_lg_e450_burgenland")
    if case == "burgenland-stripped-tag":
        lax = mbuspico.Decoder(v["key"], profile="burgenland-e450", verify_tag=False)
        assert lax.decode(frame)["meterNumber"] == "30137181"


def test_the_smarty_default_auth_key_refuses_flips_too() -> None:
    """Without auth_key the decoder tries the public Smarty key, then DLMS push:
    a tampered frame is still refused."""
    _, frame, start, end = smarty()
    decoder = mbuspico.Decoder("AA" * 16)
    assert decoder.decode(frame)
    for _, tampered in flips(frame, start, end):
        with pytest.raises(mbuspico.DecodeError):
            decoder.decode(bytes(tampered))


# -- untagged: the plaintext structure is all there is -------------------------------------------


def changed(original: dict[str, Any], tampered: dict[str, Any]) -> set[str]:
    """The OBIS codes (and top-level fields) whose value differs; an entry that
    appears or vanishes counts too."""
    diff = {
        code
        for code in original["obis"].keys() | tampered["obis"].keys()
        if original["obis"].get(code) != tampered["obis"].get(code)
    }
    diff |= {k for k in original.keys() - {"obis"} if original.get(k) != tampered.get(k)}
    return diff


def test_untagged_flips_are_refused_or_change_only_the_value_hit() -> None:
    v = by_id("fkw9_kaifa_ma309m_real")
    frame = bytes.fromhex(v["hex"])
    decoder = mbuspico.Decoder(v["key"])
    original = dict(decoder.decode(frame))
    # The ciphertext: after DB 08 <system title> 81 F8 (length) 20 (security
    # control, no tag) <frame counter>, across the data of both M-Bus frames.
    (first, first_len), (second, second_len) = mbus_frames(frame)
    apdu = frame.index(b"\xdb\x08")
    assert frame[apdu + 10 : apdu + 13] == b"\x81\xf8\x20"
    regions = [(apdu + 17, first + first_len - 2), (second + 9, second + second_len - 2)]
    assert sum(e - s for s, e in regions) == 0xF8 - 5
    plaintext = bytes.fromhex(v["plaintext_hex"])
    refused: dict[str, int] = {}
    readings = 0
    identical = 0
    touched: dict[str, int] = {}
    offset = 0
    for start, end in regions:
        for bit, tampered in flips(frame, start, end):
            fixed = fix_mbus(tampered)
            try:
                reading = dict(decoder.decode(fixed))
            except (mbuspico.DecryptionError, mbuspico.ApduError) as e:
                name = type(e).__name__
                refused[name] = refused.get(name, 0) + 1
                continue
            readings += 1
            diff = changed(original, reading)
            # One plaintext bit changed: one value (or its OBIS code, or a
            # derived field such as the timestamp's lxTimestamp) is different.
            obis = {d for d in diff if d in original["obis"] or d in reading["obis"]}
            assert len(obis) <= 2, (offset + bit // 8, diff)  # a renamed code: old and new
            if not diff:
                identical += 1  # e.g. the invoke id, a padding byte, an unknown code
            for code in obis:
                touched[code] = touched.get(code, 0) + 1
        offset += end - start
    total = sum(e - s for s, e in regions) * 8
    assert sum(refused.values()) + readings == total
    # Measured (fkw9_kaifa_ma309m_real, 243 ciphertext bytes = 1944 flips):
    # 636 refused, 1308 readings, 176 of them identical (see the module doc).
    report = {
        "flips": total,
        "refused": refused,
        "readings": readings,
        "identical readings": identical,
        "plaintext bytes": len(plaintext),
    }
    print(json.dumps(report))
    assert 0 < readings < total  # without a tag many flips go through: documented
    assert identical < readings
