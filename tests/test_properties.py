"""Properties on arbitrary bytes: a reading or a typed error, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MBUS_KEYED, by_id
from mbuspico import DecodeError, Decoder, Deframer

KAIFA = by_id("netznoe_doc_example_kaifa_ma309m")
FRAME = bytes.fromhex(KAIFA["hex"])
DECODER = Decoder(KAIFA["key"])
EXPECTED = DECODER.decode(FRAME)
TAGGED = by_id("pwitab_general_glo_cipher_test")
TAGGED_DECODER = Decoder(TAGGED["key"], auth_key=TAGGED["auth_key"])

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_error(decoder: Decoder, data: bytes) -> None:
    try:
        reading = decoder.decode(data)
    except DecodeError as e:
        assert e.offset is not None
        assert 0 <= e.offset <= len(data)
        assert e.kind
        assert KAIFA["key"].lower() not in str(e).lower()
    else:
        assert reading["protocol"] == "dlms"


@FAST
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_error(DECODER, data)


@FAST
@given(st.sampled_from([0x68, 0xDB, 0x0F]), st.binary(max_size=400))
def test_arbitrary_bytes_behind_each_start_byte(first: int, rest: bytes) -> None:
    decode_or_error(DECODER, bytes([first]) + rest)
    decode_or_error(TAGGED_DECODER, bytes([first]) + rest)


@FAST
@given(st.integers(0, len(FRAME) - 1), st.integers(1, 255))
def test_any_corrupted_byte_is_an_error_never_a_reading(at: int, xor: int) -> None:
    bad = bytearray(FRAME)
    bad[at] ^= xor
    with pytest.raises(DecodeError):
        DECODER.decode(bytes(bad))


@FAST
@given(st.integers(0, len(FRAME)))
def test_every_prefix_is_a_frame_error(length: int) -> None:
    if length == len(FRAME):
        assert DECODER.decode(FRAME[:length]) == EXPECTED
    else:
        with pytest.raises(DecodeError):
            DECODER.decode(FRAME[:length])


@FAST
@given(st.binary(max_size=64), st.integers(0, 1000))
def test_corrupted_tagged_apdu_fails_authentication_or_parsing(noise: bytes, at: int) -> None:
    apdu = bytearray.fromhex(TAGGED["hex"])
    if noise:
        i = at % len(apdu)
        apdu[i] ^= noise[0] or 1
    decode_or_error(TAGGED_DECODER, bytes(apdu))


TELEGRAMS = [bytes.fromhex(v["hex"]) for v in MBUS_KEYED]
DECODERS = [Decoder(v["key"]) for v in MBUS_KEYED]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(TELEGRAMS) - 1), st.binary(max_size=40)), max_size=6),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
)
def test_deframer_any_chunking_any_garbage(
    plan: list[tuple[int, bytes]], chunk_sizes: list[int]
) -> None:
    """Telegrams with garbage between them come out complete, in order, whatever the chunking.

    Garbage is 0x68-free so that it cannot start a frame candidate that swallows
    the next telegram's first bytes; resynchronisation after such a candidate is
    tested in the Rust deframer tests.
    """
    stream = b""
    expected = []
    garbage_bytes = 0
    for index, garbage in plan:
        garbage = garbage.replace(b"\x68", b"\x00")
        stream += garbage + TELEGRAMS[index]
        garbage_bytes += len(garbage)
        expected.append(index)
    deframer = Deframer()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = chunk_sizes[i % len(chunk_sizes)]
        out += deframer.feed(stream[pos : pos + size])
        pos += size
        i += 1
    deframer.finish()
    assert out == [TELEGRAMS[i] for i in expected]
    stats = deframer.stats
    assert stats["telegrams"] == len(expected)
    assert stats["bytes_skipped"] == garbage_bytes
    for index, telegram in zip(expected, out):
        assert DECODERS[index].decode(telegram)["frameCounter"] is not None


HDLC_IDS = (
    "wienernetze_siemens_im350",
    "amsreader_gh501_1_lg_e450_burgenland",
    "sdc_lg_e570_encrypted",
    "klagenfurt_lg_e450_gbt_zero_key",
)
HDLC = [bytes.fromhex(by_id(i)["hex"]) for i in HDLC_IDS]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, len(HDLC) - 1), st.binary(max_size=60)), max_size=5),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
    st.binary(max_size=80),
)
def test_hdlc_stream_any_bytes_any_chunking(
    plan: list[tuple[int, bytes]], chunk_sizes: list[int], tail: bytes
) -> None:
    """HDLC and general-block-transfer pushes between arbitrary bytes (flags and
    format bytes included), fed in any chunking: nothing but verified telegrams
    comes out, each decodes or raises a typed error, and every byte is
    accounted for (a flag shared by two frames counts in both)."""
    stream = b"".join(garbage + HDLC[i] for i, garbage in plan) + tail
    deframer = Deframer()
    out: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        size = chunk_sizes[i % len(chunk_sizes)]
        out += deframer.feed(stream[pos : pos + size])
        pos += size
        i += 1
    deframer.finish()
    s = deframer.stats
    assert sum(map(len, out)) + s["bytes_skipped"] == len(stream) + s["shared_flags"]
    assert s["telegrams"] == len(out)
    decoder = Decoder("00" * 16, verify_tag=False)
    for telegram in out:
        assert telegram[:1] == b"\x7e"
        try:
            decoder.decode(telegram)
        except DecodeError as e:
            assert 0 <= e.offset <= len(telegram)
    # Garbage without a flag or an M-Bus start byte cannot hide a push: then
    # every push comes out, whole and in order.
    if all(b"\x7e" not in g and b"\x68" not in g for _, g in plan):
        assert out[: len(plan)] == [HDLC[i] for i, _ in plan]
