"""mbuspico.aio.SerialReader against the simulated meter over real pseudo-terminals.

Plain asyncio: each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import mbuspico
from mbuspico import SerialPortError, aio
from mbuspico.simulate.dlms import EXPECTED_FIELDS, SimulatedTelegram, Simulator
from mbuspico.types import ReaderStats

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
OTHER_KEY = "00112233445566778899AABBCCDDEEFF"
START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone(timedelta(hours=1)))

# How long a cancelled read or a close may take: the reader waits on the port in
# slices of 0.25 s, so a hang (not a slow machine) is what exceeds this.
PROMPT = 1.0


def assert_reading_is(reading: Any, sent: SimulatedTelegram) -> None:
    assert sent.expected is not None
    for name in EXPECTED_FIELDS:
        assert reading[name] == sent.expected[name], name


def fds_open_on(path: str) -> int:
    """How many of this process's file descriptors point at ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                count += 1
        except OSError:
            continue
    return count


def aio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mbuspico-aio")]


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Any:
    yield
    for thread in aio_threads():
        thread.join(PROMPT)
    assert not aio_threads(), "a reader's thread outlived its reader"


def test_readings_equal_the_simulated_meters() -> None:
    async def main(port: str) -> tuple[list[Any], list[Any], ReaderStats]:
        async with aio.SerialReader(port, key=KEY, timeout=5) as reader:
            sim.start(count=8)
            first = [await reader.read() for _ in range(4)]
            rest = []
            async for reading in reader:
                rest.append(reading)
                if len(rest) == 4:
                    break
            return first, rest, reader.stats

    with Simulator("kaifa-ma309m", key=KEY, interval=0.02, seed=11) as sim:
        assert sim.port is not None
        first, rest, stats = asyncio.run(main(sim.port))
        sim.wait()
    assert len(sim.sent) == 8
    readings = first + rest
    for reading, sent in zip(readings, sim.sent):
        assert_reading_is(reading, sent)
    assert [r["frameCounter"] for r in readings] == [t.frame_counter for t in sim.sent]
    assert readings[0]["meterNumber"] == "181220002177"
    assert stats["readings"] == 8
    assert stats["bytes_skipped"] == stats["decode_errors"] == stats["decryption_errors"] == 0


def test_bad_telegrams_are_skipped_and_counted_as_by_the_blocking_reader() -> None:
    """Garbage, dropped bytes and flipped bits: same readings and counters as SerialReader."""

    def simulator() -> Simulator:
        return Simulator(
            "kaifa-ma309m",
            key=KEY,
            interval=0,
            seed=2026,
            start=START,
            garbage=0.2,
            drop_byte=0.001,
            flip_bit=0.001,
        )

    with simulator() as sim:
        assert sim.port is not None
        with mbuspico.SerialReader(sim.port, key=KEY) as blocking:
            sim.start(count=60)
            expected = []
            while True:
                # Everything written before the 0.5 s without a reading began is read.
                done = len(sim.sent) == 60
                while (r := blocking.read(timeout=0.5)) is not None:
                    expected.append(r)
                if done:
                    break
            expected_stats = blocking.stats
        sim.wait()

    async def main(port: str) -> tuple[list[Any], ReaderStats]:
        async with aio.SerialReader(port, key=KEY, timeout=0.5) as reader:
            sim.start(count=60)
            got = []
            while True:
                done = len(sim.sent) == 60
                got += [reading async for reading in reader]  # until 0.5 s pass without one
                if done:
                    return got, reader.stats

    with simulator() as sim:
        assert sim.port is not None
        readings, stats = asyncio.run(main(sim.port))
        sim.wait()
    assert readings == expected
    assert stats == expected_stats
    faulted = sum(t.faulted for t in sim.sent)
    assert 0 < faulted < 60
    assert len(readings) == 60 - faulted
    assert stats["bytes_skipped"] > 0
    sent = {t.frame_counter: t for t in sim.sent}
    for r in readings:
        assert_reading_is(r, sent[r["frameCounter"]])


def test_a_wrong_key_never_raises_and_counts_decryption_errors() -> None:
    async def main(port: str) -> tuple[Any, ReaderStats]:
        async with aio.SerialReader(port, key=OTHER_KEY) as reader:
            sim.start(count=3)
            reading = await reader.read(timeout=0.5)
            return reading, reader.stats

    with Simulator("kaifa-ma309m", key=KEY, interval=0) as sim:
        assert sim.port is not None
        reading, stats = asyncio.run(main(sim.port))
        sim.wait()
    assert reading is None
    assert stats["decryption_errors"] == 3
    assert stats["readings"] == 0
    assert stats["telegrams"] == 3


def test_cancelling_a_pending_read_is_prompt_and_loses_no_reading() -> None:
    async def main() -> tuple[Any, bool]:
        reader = aio.SerialReader(sim.port, key=KEY)  # type: ignore[arg-type]
        task = asyncio.create_task(reader.read())
        await asyncio.sleep(0.1)  # the thread is waiting on the silent port
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, PROMPT)
        # The meter speaks while the cancelled read's port wait is still going on:
        # that wait gets the telegram, and the next read must return it.
        sim.start(count=1)
        reading = await asyncio.wait_for(reader.read(timeout=5), 6)
        await asyncio.wait_for(reader.aclose(), PROMPT)
        return reading, reader.connected

    with Simulator("kaifa-ma309m", key=KEY, interval=0.05, seed=3) as sim:
        reading, connected = asyncio.run(main())
        sim.wait()
    assert reading is not None
    assert_reading_is(reading, sim.sent[0])
    assert not connected


def test_closing_while_a_read_waits() -> None:
    async def main(port: str) -> None:
        reader = aio.SerialReader(port, key=KEY)
        task = asyncio.create_task(reader.read())
        await asyncio.sleep(0.1)
        await asyncio.wait_for(reader.aclose(), PROMPT)
        assert fds_open_on(port) == 1  # the simulator's side only
        with pytest.raises(ValueError, match="closed SerialReader"):
            await asyncio.wait_for(task, PROMPT)
        with pytest.raises(ValueError, match="closed SerialReader"):
            await reader.read()
        reader.close()  # twice is fine
        assert reader.closed

    with Simulator("kaifa-ma309m", key=KEY) as sim:
        assert sim.port is not None
        asyncio.run(main(sim.port))


def test_async_with_closes_the_port() -> None:
    async def main(port: str) -> aio.SerialReader:
        async with aio.SerialReader(port, key=KEY, timeout=5) as reader:
            assert fds_open_on(port) == 2  # the simulator's and the reader's
            assert reader.connected
            sim.start(count=1)
            assert await reader.read() is not None
        assert fds_open_on(port) == 1
        assert not reader.connected
        with pytest.raises(ValueError, match="closed SerialReader"):
            await reader.read()
        return reader

    with Simulator("kaifa-ma309m", key=KEY, interval=0.05) as sim:
        assert sim.port is not None
        reader = asyncio.run(main(sim.port))
        assert reader.stats["readings"] == 1


def test_two_meters_concurrently_in_one_loop() -> None:
    async def read(reader: aio.SerialReader, n: int) -> list[Any]:
        return [await reader.read() for _ in range(n)]

    async def main(a: str, b: str) -> tuple[list[Any], list[Any]]:
        one, other = (
            aio.SerialReader(a, key=KEY, timeout=5),
            aio.SerialReader(b, key=KEY, timeout=5),
        )
        async with one as first, other as second:
            kaifa.start(count=6)
            ksm.start(count=6)
            got = await asyncio.gather(read(first, 6), read(second, 6))
            return got[0], got[1]

    kaifa = Simulator("kaifa-ma309m", key=KEY, interval=0.03, seed=1)
    ksm = Simulator("ksm-west", key=KEY, interval=0.03, seed=2, serial=4242)
    with kaifa, ksm:
        assert kaifa.port is not None
        assert ksm.port is not None
        got_kaifa, got_ksm = asyncio.run(main(kaifa.port, ksm.port))
        kaifa.wait()
        ksm.wait()
    for readings, sim in ((got_kaifa, kaifa), (got_ksm, ksm)):
        assert len(readings) == len(sim.sent) == 6
        for reading, sent in zip(readings, sim.sent):
            assert_reading_is(reading, sent)
    assert {r["meterNumber"] for r in got_kaifa}.isdisjoint(r["meterNumber"] for r in got_ksm)


def test_the_event_loop_keeps_running_while_a_read_waits() -> None:
    async def main(port: str) -> tuple[Any, int, ReaderStats, bool]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with aio.SerialReader(port, key=KEY) as reader:
            task = asyncio.create_task(ticker())
            reading = await reader.read(timeout=0.6)
            # The counters and the port state answer while the thread waits.
            waiting = asyncio.create_task(reader.read())
            await asyncio.sleep(0.05)
            stats, connected = reader.stats, reader.connected
            waiting.cancel()
            task.cancel()
            return reading, ticks, stats, connected

    with Simulator("kaifa-ma309m", key=KEY) as sim:
        assert sim.port is not None
        reading, ticks, stats, connected = asyncio.run(main(sim.port))
    assert reading is None  # a silent meter: the timeout passed
    # 60 ticks if the loop never stalled; a loop blocked on the port ticks once.
    assert ticks >= 10
    assert stats["readings"] == 0
    assert connected


def test_one_reading_task_at_a_time() -> None:
    async def main(port: str) -> None:
        async with aio.SerialReader(port, key=KEY) as reader:
            first = asyncio.create_task(reader.read())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="another task"):
                await reader.read()
            first.cancel()

    with Simulator("kaifa-ma309m", key=KEY) as sim:
        assert sim.port is not None
        asyncio.run(main(sim.port))


def test_missing_port_raises_as_the_blocking_reader_does() -> None:
    with pytest.raises(SerialPortError, match="/dev/does-not-exist") as blocking:
        mbuspico.SerialReader("/dev/does-not-exist", key=KEY)
    with pytest.raises(SerialPortError, match="/dev/does-not-exist") as info:
        aio.SerialReader("/dev/does-not-exist", key=KEY)
    assert type(info.value) is type(blocking.value)
    assert str(info.value) == str(blocking.value)
    assert isinstance(info.value, OSError)

    async def main() -> tuple[Any, list[Any], bool]:
        async with aio.SerialReader(
            "/dev/does-not-exist", key=KEY, reconnect=True, timeout=0.3
        ) as reader:
            reading = await reader.read()
            return reading, [r async for r in reader], reader.connected

    assert asyncio.run(main()) == (None, [], False)


def test_the_port_vanishing_raises_serial_port_error() -> None:
    async def main() -> None:
        sim = Simulator("kaifa-ma309m", key=KEY, interval=0.05)
        port = sim.open()
        async with aio.SerialReader(port, key=KEY) as reader:
            sim.start()
            assert await reader.read(timeout=5) is not None
            sim.close()
            with pytest.raises(SerialPortError, match=port):
                await reader.read(timeout=5)
            assert not reader.connected

    asyncio.run(main())


def test_reconnect_after_the_port_returns(tmp_path: Path) -> None:
    link = tmp_path / "meter"
    first = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link, seed=1)
    second = Simulator("kaifa-ma309m", key=KEY, interval=0.05, link=link, seed=2)

    async def main() -> tuple[Any, Any, ReaderStats]:
        first.open()
        async with aio.SerialReader(str(link), key=KEY, reconnect=True, timeout=10) as reader:
            first.start(count=1)
            before = await reader.read()
            first.close()  # adapter unplugged
            assert await reader.read(timeout=0.3) is None
            assert not reader.connected
            second.open()
            second.start()  # telegrams sent before the port is reopened are lost
            after = await reader.read()
            return before, after, reader.stats

    try:
        before, after, stats = asyncio.run(main())
    finally:
        first.close()
        second.close()
    assert_reading_is(before, first.sent[0])
    assert after is not None
    assert_reading_is(after, {t.frame_counter: t for t in second.sent}[after["frameCounter"]])
    assert stats["reconnects"] == 1
    assert stats["readings"] == 2


def test_arguments_and_properties_mirror_the_blocking_reader() -> None:
    with Simulator(key=KEY) as sim:
        assert sim.port is not None
        kwargs: dict[str, Any] = {"key": KEY, "profile": "wienernetze-im350", "timeout": 2.5}
        with mbuspico.SerialReader(sim.port, **kwargs) as blocking:
            expected = {
                name: getattr(blocking, name)
                for name in ("port", "baudrate", "parity", "bytesize", "profile", "connected")
            }
            blocking_repr = repr(blocking)
        reader = aio.SerialReader(sim.port, **kwargs)
        got = {name: getattr(reader, name) for name in expected}
        reader.close()
    assert got == expected
    assert expected["baudrate"] == 9600
    assert repr(reader) == f"aio.{blocking_repr}"
    assert KEY not in repr(reader)
    assert KEY.lower() not in repr(reader)
    for copier in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle") as info:
            copier(reader)
        assert KEY not in str(info.value)
    bad_arguments: list[dict[str, Any]] = [{"parity": "mark"}, {"timeout": -1}, {"key": "00"}]
    for bad in bad_arguments:
        with pytest.raises(ValueError, match=next(iter(bad))):
            aio.SerialReader("/dev/does-not-exist", **{"key": KEY, **bad})


def test_bad_read_timeouts() -> None:
    async def main(port: str) -> None:
        async with aio.SerialReader(port, key=KEY) as reader:
            for bad in (-1.0, float("nan"), float("inf")):
                with pytest.raises(ValueError, match="timeout"):
                    await reader.read(timeout=bad)
            assert await reader.read(timeout=0) is None

    with Simulator(key=KEY) as sim:
        assert sim.port is not None
        asyncio.run(main(sim.port))


def test_import_mbuspico_does_not_import_asyncio() -> None:
    code = (
        "import sys, mbuspico\n"
        "assert 'asyncio' not in sys.modules, 'asyncio imported'\n"
        "assert 'aio' in dir(mbuspico)\n"
        "assert mbuspico.aio.SerialReader.__module__ == 'mbuspico.aio'\n"
        "assert 'asyncio' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
