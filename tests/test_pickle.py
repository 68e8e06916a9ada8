"""Pickling and copying Decoder and Deframer; readings are plain, picklable data.

A pickled Decoder carries its keys (it must decode in another process), but no
repr along the way shows them: they travel as ``mbuspico._core._Secret``.
"""

# The tests unpickle only what they pickled themselves.
# ruff: noqa: S301

from __future__ import annotations

import copy
import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from conftest import DATA, by_id
from mbuspico import Decoder, Deframer
from mbuspico._core import _Secret

KAIFA = by_id("netznoe_doc_example_kaifa_ma309m")
REAL = by_id("fkw9_kaifa_ma309m_real")
TAGGED = by_id("amsreader_gh501_1_lg_e450_burgenland")  # HDLC, key and auth key
SMARTY = by_id("energyagent_sagemcom_sag5_dsmr_p1")  # encrypted P1 inside 0xDB
CF_ECHO = bytes.fromhex((DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text())
REDACTED = (DATA / "mbus" / "otb_iot_cf_echo_ii_redacted.hex").read_text()
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _key_forms(key: str) -> list[str]:
    raw = bytes.fromhex(key)
    return [key.upper(), key.lower(), repr(raw), raw.hex(), str(list(raw))[1:-1]]


def _assert_no_key(text: str, *keys: str) -> None:
    for key in keys:
        for form in _key_forms(key):
            assert form not in text, f"key shown as {form!r}"


def _styria_decoder() -> Decoder:
    return Decoder(SMARTY["key"], profile="steiermark-t210d", verify_tag=False)


def _tagged_decoder() -> Decoder:
    return Decoder(TAGGED["key"], auth_key=TAGGED["auth_key"], profile="burgenland-e450")


def test_decoder_round_trip_keeps_options_and_keys() -> None:
    d = Decoder(
        KAIFA["key"],
        auth_key=TAGGED["auth_key"],
        protocol="dlms",
        tz="Europe/Vienna",
        names={"1-0:1.8.0": "import"},
        verify_crc=False,
        verify_tag=False,
        verify_checksum=False,
    )
    for protocol in PROTOCOLS:
        e = pickle.loads(pickle.dumps(d, protocol=protocol))
        assert type(e) is Decoder
        assert repr(e) == repr(d)
        assert (e.has_key, e.has_auth_key, e.verify_tag, e.verify_checksum) == (
            True,
            True,
            False,
            False,
        )
        state = e.__reduce__()[1][0]
        assert state == d.__reduce__()[1][0]
        assert state["tz"] == "Europe/Vienna"
        assert state["names"] == {"1-0:1.8.0": "import"}
        assert state["protocol"] == "dlms"
        assert state["verify_crc"] is False


@pytest.mark.parametrize(
    ("decoder", "frame"),
    [
        (lambda: Decoder(KAIFA["key"]), bytes.fromhex(KAIFA["hex"])),
        (lambda: Decoder(REAL["key"], profile="kaifa-ma309m-netznoe"), bytes.fromhex(REAL["hex"])),
        (_tagged_decoder, bytes.fromhex(TAGGED["hex"])),
        (_styria_decoder, bytes.fromhex(SMARTY["hex"])),
        (lambda: Decoder(verify_checksum=False), REDACTED),
    ],
    ids=["kaifa-doc", "kaifa-profile", "burgenland-tagged", "smarty-p1", "unchecked-mbus"],
)
def test_copies_decode_the_same(decoder: Any, frame: bytes | str) -> None:
    d = decoder()
    want = d.decode(frame)
    for e in (
        pickle.loads(pickle.dumps(d)),
        copy.copy(d),
        copy.deepcopy(d),
        pickle.loads(pickle.dumps(d, protocol=0)),
    ):
        assert repr(e) == repr(d)
        assert e.profile == d.profile
        assert e.decode(frame) == want
        assert e.identify(frame) == d.identify(frame)


def test_readings_are_values() -> None:
    """The spot values first, so a mangled copy cannot pass by comparing equal to itself."""
    d = Decoder(KAIFA["key"])
    dlms = d.decode(KAIFA["hex"])
    assert dlms["activeEnergyPlus"] == 12937
    mbus = d.decode(CF_ECHO)
    assert mbus["id"] == "55555555"
    p1 = _styria_decoder().decode(SMARTY["hex"])
    assert (p1["protocol"], p1["activeEnergyPlus"]) == ("dsmr", 7112944)
    for reading in (dlms, mbus, p1):
        for protocol in PROTOCOLS:
            assert pickle.loads(pickle.dumps(reading, protocol=protocol)) == reading
        assert copy.deepcopy(reading) == reading


def test_no_repr_shows_a_key() -> None:
    d = _tagged_decoder()
    keys = (TAGGED["key"], TAGGED["auth_key"])
    reduced = d.__reduce__()
    _assert_no_key(repr(reduced), *keys)
    assert repr(reduced[1][0]["key"]) == "_Secret(<redacted>)"
    for protocol in PROTOCOLS:
        data = pickle.dumps(d, protocol=protocol)
        # The bytes must carry the keys (documented: keep a pickle like the key) ...
        if protocol >= 3:
            assert bytes.fromhex(TAGGED["key"]) in data
        # ... but nothing unpickled shows them.
        e = pickle.loads(data)
        _assert_no_key(repr(e), *keys)
        _assert_no_key(repr(e.__reduce__()), *keys)
        _assert_no_key(repr(e.__reduce_ex__(protocol)), *keys)
    _assert_no_key(repr(copy.deepcopy(d)), *keys)


def test_secret() -> None:
    s = _Secret(TAGGED["key"])
    assert repr(s) == str(s) == "_Secret(<redacted>)"
    assert s == _Secret(bytes.fromhex(TAGGED["key"]))
    assert s != _Secret(KAIFA["key"])
    assert hash(s) == hash(_Secret(KAIFA["key"]))
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(ValueError, match="32 hexadecimal digits") as info:
        _Secret(TAGGED["key"][:-2])
    _assert_no_key(str(info.value), TAGGED["key"])
    # A Decoder takes a _Secret as a key.
    d = Decoder(_Secret(KAIFA["key"]))
    assert d.decode(KAIFA["hex"])["meterNumber"] == "181220000009"


@pytest.mark.parametrize("protocol", ["auto", "mbus", "dlms"])
def test_deframer_keeps_its_partial_telegram_and_counters(protocol: str) -> None:
    t = bytes.fromhex(REAL["hex"])
    a = Deframer(protocol=protocol)
    assert a.feed(b"\x00\xff\x10" + t + t[:150]) == [t]
    for b in (
        pickle.loads(pickle.dumps(a)),
        copy.copy(a),
        copy.deepcopy(a),
        pickle.loads(pickle.dumps(a, protocol=0)),
    ):
        assert b is not a
        assert (b.buffered, b.stats) == (a.buffered, a.stats) == (150, b.stats)
        assert b.stats["telegrams"] == 1
        assert b.stats["bytes_skipped"] == 3
        assert repr(b) == repr(a)
        # The copy completes the telegram the original buffered; both go on alike.
        assert b.feed(t[150:] + b"junk") == [t]
        b.finish()
        assert b.stats["telegrams"] == 2
        assert b.stats["bytes_skipped"] == 7
    assert a.buffered == 150  # the copies are independent
    assert a.feed(t[150:]) == [t]


def test_deframer_keeps_hdlc_state() -> None:
    """A shared HDLC flag across the pickle: the copy still counts it."""
    frame = bytes.fromhex(TAGGED["hex"])
    assert frame[0] == frame[-1] == 0x7E
    stream = frame + frame[1:]  # the second frame reuses the first one's closing flag
    a = Deframer()
    assert a.feed(stream[: len(frame)]) == [frame]
    b = pickle.loads(pickle.dumps(a))
    for d in (a, b):
        assert d.feed(stream[len(frame) :]) == [frame]
        assert d.stats["shared_flags"] == 1
        assert d.stats["bytes_skipped"] == 0


def test_p1_deframer_round_trip() -> None:
    text = next(
        v["text"]
        for v in json.loads((DATA / "dsmr" / "vectors.json").read_text())["vectors"]
        if v["id"] == "dsmr_parser/TELEGRAM_V5"
    ).encode()
    a = Deframer(protocol="dsmr")
    assert a.feed(b"noise" + text + text[:40]) == [text]
    b = pickle.loads(pickle.dumps(a))
    assert (b.buffered, b.stats) == (a.buffered, a.stats)
    assert b.stats == {
        "telegrams": 1,
        "bytes_skipped": 5,
        "bad_checksums": 0,
        "incomplete_telegrams": 0,
        "shared_flags": 0,
    }
    assert b.feed(text[40:]) == [text]
    assert b.stats["telegrams"] == 2
    c = pickle.loads(pickle.dumps(b))
    assert c.stats == b.stats
    assert c.buffered == 0
    # An encrypted frame given back after the pickle: rescanned, the count corrected.
    smarty = bytes.fromhex(SMARTY["hex"])
    p = Deframer(protocol="dsmr")
    assert p.feed(smarty) == [smarty]
    p.feed(text[:5])  # the start of the next telegram
    q = pickle.loads(pickle.dumps(p))
    for d in (p, q):
        assert d.reject(smarty) == []
        assert d.stats["telegrams"] == 0
        assert d.stats["bytes_skipped"] == len(smarty)
        assert d.buffered == 5
    r = pickle.loads(pickle.dumps(q))
    assert (r.buffered, r.stats) == (q.buffered, q.stats)
    assert r.feed(text[5:]) == [text]


def test_bad_state_is_refused() -> None:
    state = Deframer().__reduce__()[1][0]
    with pytest.raises(ValueError, match="protocol"):
        Deframer._restore({**state, "protocol": "p1"})
    with pytest.raises(ValueError, match="not a pickled Deframer state"):
        Deframer._restore({**state, "protocol": "dsmr"})
    with pytest.raises(ValueError, match="not a pickled Deframer state"):
        Deframer._restore({"protocol": "auto", "mbus": {"buf": b""}})


def test_decoder_in_a_spawned_process() -> None:
    """The decoder pickled to ProcessPoolExecutor workers (spawn: a fresh interpreter)."""
    d = Decoder(REAL["key"], profile="kaifa-ma309m-netznoe")
    frames = [bytes.fromhex(REAL["hex"]), REAL["hex"], bytes.fromhex(KAIFA["hex"])]
    serial = d.decode_many(frames)
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        got = list(pool.map(d.decode, frames[:2]))
        assert got == serial[:2]
        assert got[0]["activePowerPlus"] == 1055
        many = pool.submit(d.decode_many, frames).result()
    assert many[:2] == serial[:2]
    # The last frame is another meter's: a DecryptionError pickled back in place.
    assert type(many[2]).__name__ == "DecryptionError"
    assert str(many[2]) == str(serial[2])
