"""The deframer on real telegrams: garbage, resync, incomplete telegrams, counters."""

from __future__ import annotations

from conftest import MBUS, MBUS_KEYED, by_id
from mbuspico import Decoder, Deframer

TELEGRAMS = [bytes.fromhex(v["hex"]) for v in MBUS]


def test_all_real_telegrams_one_byte_at_a_time() -> None:
    stream = b"\xe5garbage\x68\x16".join(TELEGRAMS)
    deframer = Deframer()
    out = []
    for b in stream:
        out += deframer.feed(bytes([b]))
    deframer.finish()
    assert out == TELEGRAMS
    assert deframer.stats == {
        "telegrams": len(TELEGRAMS),
        "bytes_skipped": 10 * (len(TELEGRAMS) - 1),
        "bad_checksums": 0,
        "incomplete_telegrams": 0,
        "shared_flags": 0,
    }


def test_telegram_is_handed_out_when_its_last_byte_arrives() -> None:
    t = TELEGRAMS[0]
    deframer = Deframer()
    assert deframer.feed(t[:-1]) == []
    assert deframer.buffered == len(t) - 1
    assert deframer.feed(t[-1:]) == [t]
    assert deframer.buffered == 0


def test_honeywell_stray_trailing_byte_and_resync() -> None:
    # The FKW9 issue #12 capture shows a stray 00 after the final 16.
    honeywell = next(v for v in MBUS if v["id"].startswith("fkw9_issue12"))
    t = bytes.fromhex(honeywell["hex"])
    deframer = Deframer()
    assert deframer.feed(t + b"\x00" + t) == [t, t]
    assert deframer.stats["bytes_skipped"] == 1


def test_lost_byte_drops_one_telegram_and_keeps_the_next() -> None:
    vector = MBUS_KEYED[0]
    t = bytes.fromhex(vector["hex"])
    damaged = t[:100] + t[101:]  # one byte lost on the wire
    deframer = Deframer()
    out = deframer.feed(damaged + t)
    deframer.finish()
    assert out == [t]
    assert Decoder(vector["key"]).decode(out[0])["meterNumber"] == "181220000009"
    stats = deframer.stats
    assert stats["bytes_skipped"] == len(damaged)
    assert stats["telegrams"] == 1


def test_missing_second_frame_is_counted_as_dropped() -> None:
    t = TELEGRAMS[0]
    deframer = Deframer()
    out = deframer.feed(t[:256] + t)
    assert out == [t]
    assert deframer.stats["incomplete_telegrams"] == 1
    assert deframer.stats["bytes_skipped"] == 256


def test_hex_text_input() -> None:
    t = TELEGRAMS[0]
    assert Deframer().feed(t.hex(" ")) == [t]


def test_general_block_transfer_push_is_one_telegram() -> None:
    # Landis+Gyr E570: one push as five HDLC frames, one GBT block each.
    vector = by_id("sdc_lg_e570_encrypted")
    push = bytes.fromhex(vector["hex"])
    deframer = Deframer()
    assert deframer.feed(b"\x00\x7e" + push + push) == [push, push]
    out = []
    for b in push:
        out += deframer.feed(bytes([b]))
    deframer.finish()
    assert out == [push]
    assert deframer.stats["telegrams"] == 3
    assert deframer.stats["bytes_skipped"] == 2
    assert Decoder(vector["key"]).apdu(out[0])[0] == 0x0F
