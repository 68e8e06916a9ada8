"""One Decoder or one Deframer shared by many threads.

A Decoder is immutable, so threads (and ``decode_many``, which releases the
GIL) may use one at once. A Deframer takes each call whole: bytes fed from
several threads interleave call by call, never within one call.
"""

# Seeded random orders and chunkings, reproducible (not for cryptography).
# ruff: noqa: S311

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import DATA, VECTORS, by_id
from mbuspico import DecodeError, Decoder, Deframer

THREADS = 8
REAL = by_id("fkw9_kaifa_ma309m_real")
CF_ECHO = bytes.fromhex((DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text())
# M-Bus framed pushes this one key decrypts (the same meter, several captures),
# other meters' pushes (a DecryptionError each), and a wired M-Bus frame.
PUSHES = [bytes.fromhex(v["hex"]) for v in VECTORS if v["framing"] == "mbus"]


def _work() -> list[Any]:
    items: list[Any] = [*PUSHES, CF_ECHO, REAL["hex"], CF_ECHO.hex(" "), "zz"]
    return items * 4


def _outcome(decoder: Decoder, item: Any) -> Any:
    try:
        return decoder.decode(item)
    except DecodeError as e:
        return (type(e).__name__, e.kind, e.offset)


def test_eight_threads_decode_as_one() -> None:
    decoder = Decoder(REAL["key"])
    items = _work()
    serial = [_outcome(decoder, i) for i in items]
    # Real values, so that equal results cannot be equally wrong.
    good = [r for r in serial if isinstance(r, dict) and r.get("meterNumber") == "181220002177"]
    assert len(good) >= 8
    assert {r["activePowerPlus"] for r in good} == {1055}
    assert any(isinstance(r, tuple) and r[0] == "DecryptionError" for r in serial)
    assert ("HexError", "invalid_hex", 0) in serial

    barrier = threading.Barrier(THREADS)

    def one_thread(seed: int) -> list[Any]:
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        barrier.wait()
        got: dict[int, Any] = {}
        for n, k in enumerate(order):
            if n % 3 == 0:
                # decode_many releases the GIL while the others run.
                chunk = [k, *order[n + 1 : n + 4]]
                for j, r in zip(chunk, decoder.decode_many([items[j] for j in chunk])):
                    got.setdefault(j, r)
            got.setdefault(k, _outcome(decoder, items[k]))
        return [got[k] for k in range(len(items))]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one_thread, range(THREADS)))

    def plain(r: Any) -> Any:
        return (type(r).__name__, r.kind, r.offset) if isinstance(r, DecodeError) else r

    for result in results:
        assert [plain(r) for r in result] == serial


def test_decode_iter_in_threads() -> None:
    decoder = Decoder(REAL["key"])
    items = _work()
    want = decoder.decode_many(items)
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(
            pool.map(lambda _: list(decoder.decode_iter(items, batch=7)), range(THREADS))
        )
    plain = [[r if isinstance(r, dict) else str(r) for r in result] for result in results]
    assert all(p == [r if isinstance(r, dict) else str(r) for r in want] for p in plain)


def test_threads_feed_whole_telegrams_to_one_deframer() -> None:
    """Each call feeds whole telegrams: every one comes out whole, whatever the interleaving."""
    telegrams = [*PUSHES, CF_ECHO]
    deframer = Deframer()
    barrier = threading.Barrier(THREADS)
    out: list[bytes] = []
    lock = threading.Lock()

    def one_thread(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(20):
            got = deframer.feed(rng.choice(telegrams))
            with lock:
                out.extend(got)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one_thread, range(THREADS)))
    s = deframer.stats
    assert len(out) == THREADS * 20 == s["telegrams"]
    assert s["bytes_skipped"] == deframer.buffered == 0
    assert sorted(set(out)) == sorted(set(out) & set(telegrams))
    decoded = Decoder(REAL["key"]).decode_many(out, errors="return")
    assert any(isinstance(r, dict) and r.get("activePowerPlus") == 1055 for r in decoded)


def test_threads_feed_any_chunks_with_exact_byte_accounting() -> None:
    stream = b"".join([*PUSHES, b"\x00\x16garbage", CF_ECHO] * 3)
    deframer = Deframer()
    barrier = threading.Barrier(THREADS + 1)
    fed = [0] * THREADS
    out: list[list[bytes]] = [[] for _ in range(THREADS)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def one_thread(k: int) -> None:
        rng = random.Random(k)
        barrier.wait()
        for _ in range(40):
            start = rng.randrange(len(stream))
            chunk = stream[start : start + rng.randrange(1, 400)]
            out[k].extend(deframer.feed(chunk))
            fed[k] += len(chunk)

    def reader() -> None:
        barrier.wait()
        try:
            while not stop.is_set():
                s = deframer.stats
                if s["telegrams"] > THREADS * 40 or deframer.buffered > len(stream) * THREADS:
                    errors.append(AssertionError(f"implausible {s}"))
                repr(deframer)
        except BaseException as e:
            errors.append(e)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one_thread, range(THREADS)))
    finally:
        stop.set()
        watcher.join()
    assert errors == []
    deframer.finish()
    s = deframer.stats
    handed_out = sum(len(t) for ts in out for t in ts)
    assert deframer.buffered == 0
    assert handed_out + s["bytes_skipped"] == sum(fed) + s["shared_flags"]
    assert s["telegrams"] == sum(map(len, out))
