"""Malformed input: the exact exception class, the byte offset, and no key in sight."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import mbuspico
from conftest import MBUS_KEYED, by_id, ids
from mbuspico import (
    ApduError,
    ChecksumError,
    DecodeError,
    Decoder,
    DecryptionError,
    FrameError,
    MbusPicoError,
)


@pytest.fixture
def frame(kaifa: dict[str, Any]) -> bytes:
    return bytes.fromhex(kaifa["hex"])


@pytest.fixture
def decoder(kaifa: dict[str, Any]) -> Decoder:
    return Decoder(kaifa["key"])


def test_hierarchy() -> None:
    assert issubclass(DecodeError, ValueError)
    assert issubclass(DecodeError, MbusPicoError)
    assert issubclass(ChecksumError, FrameError)
    for cls in (FrameError, ApduError, DecryptionError):
        assert issubclass(cls, DecodeError)


def test_flipped_checksum(decoder: Decoder, frame: bytes) -> None:
    bad = bytearray(frame)
    bad[254] ^= 0xFF  # checksum of the first frame
    with pytest.raises(ChecksumError) as info:
        decoder.decode(bad)
    assert info.value.offset == 254
    assert info.value.kind == "checksum"
    assert "at byte 254" in str(info.value)
    bad = bytearray(frame)
    bad[100] ^= 0x01  # a ciphertext byte: the checksum catches it
    with pytest.raises(ChecksumError, match="at byte 254"):
        decoder.decode(bad)
    bad = bytearray(frame)
    bad[270] ^= 0x01  # in the second frame
    with pytest.raises(ChecksumError, match="at byte 280"):
        decoder.decode(bad)


@pytest.mark.parametrize("length", [1, 3, 4, 100, 255, 256, 257, 270, 281])
def test_truncated(decoder: Decoder, frame: bytes, length: int) -> None:
    with pytest.raises(FrameError) as info:
        decoder.decode(frame[:length])
    assert info.value.kind in ("truncated", "missing_segment")
    assert info.value.offset == length


def test_missing_second_segment(decoder: Decoder, frame: bytes) -> None:
    with pytest.raises(FrameError, match="segment 1 is missing") as info:
        decoder.decode(frame[:256])
    assert info.value.kind == "missing_segment"
    assert info.value.offset == 256


def test_segments_out_of_order(decoder: Decoder, frame: bytes) -> None:
    with pytest.raises(FrameError, match="expected sequence 0, found 1") as info:
        decoder.decode(frame[256:] + frame[:256])
    assert info.value.offset == 6  # CI-field of the first frame given


def test_trailing_bytes(decoder: Decoder, frame: bytes) -> None:
    with pytest.raises(FrameError, match="1 byte") as info:
        decoder.decode(frame + b"\x00")
    assert info.value.offset == 282


def test_bad_start_and_stop(decoder: Decoder, frame: bytes) -> None:
    with pytest.raises(FrameError, match="unknown framing") as info:
        decoder.decode(b"\x00" + frame)
    assert info.value.offset == 0
    bad = bytearray(frame)
    bad[281] = 0x17
    with pytest.raises(FrameError, match="stop byte") as info:
        decoder.decode(bad)
    assert info.value.offset == 281
    with pytest.raises(FrameError, match="empty"):
        decoder.decode(b"")


@pytest.mark.parametrize("vector", MBUS_KEYED, ids=ids(MBUS_KEYED))
def test_wrong_key_is_never_a_reading(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["key"])
    for wrong in (bytes(16), bytes(b ^ 0x01 for b in key), key[::-1]):
        with pytest.raises(DecryptionError, match="wrong key") as info:
            Decoder(wrong).decode(vector["hex"])
        assert info.value.kind == "implausible_plaintext"
        assert vector["key"].lower() not in str(info.value).lower()


def test_keys_are_never_shown(kaifa: dict[str, Any]) -> None:
    key = kaifa["key"]
    decoder = Decoder(key, auth_key=key)
    assert repr(decoder) == "Decoder(key=<redacted>, auth_key=<redacted>)"
    assert decoder.has_key
    assert decoder.has_auth_key
    for bad in (key[:-2], key + "00", "zz" + key[2:], key[:8]):
        with pytest.raises(ValueError, match="32 hexadecimal digits") as info:
            Decoder(bad)
        assert key[:8].lower() not in str(info.value).lower()
        assert bad.lower() not in str(info.value).lower()
    with pytest.raises(ValueError, match="auth_key"):
        Decoder(key, auth_key=b"short")
    with pytest.raises(TypeError):
        Decoder(1234)  # type: ignore[arg-type]


def test_errors_pickle_and_keep_their_fields(decoder: Decoder, frame: bytes) -> None:
    with pytest.raises(ChecksumError) as info:
        decoder.decode(frame[:254] + b"\x00" + frame[255:])
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert type(copy) is ChecksumError
    assert (copy.offset, copy.kind, str(copy)) == (
        info.value.offset,
        info.value.kind,
        str(info.value),
    )


def test_tagged_apdu_with_corrupt_ciphertext() -> None:
    vector = by_id("pwitab_general_glo_cipher_test")
    apdu = bytearray.fromhex(vector["hex"])
    apdu[30] ^= 0x80
    with pytest.raises(DecryptionError, match="tag mismatch"):
        Decoder(vector["key"], auth_key=vector["auth_key"]).decode(apdu)


def test_apdu_errors_name_the_byte() -> None:
    vector = by_id("pwitab_general_glo_cipher_test")
    apdu = bytes.fromhex(vector["hex"])
    with pytest.raises(ApduError, match="system title is 7") as info:
        Decoder(vector["key"]).decode(b"\xdb\x07" + apdu[2:])
    assert info.value.offset == 1
    with pytest.raises(ApduError, match="announces 59 byte") as info:
        Decoder(vector["key"]).decode(apdu[:-1])
    assert info.value.offset == 10
    assert mbuspico.DecodeError is DecodeError
