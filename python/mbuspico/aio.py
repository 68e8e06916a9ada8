"""Reading a meter from asyncio: :class:`SerialReader`.

For asyncio applications (Home Assistant integrations, aiohttp services) that
must not block their event loop while waiting for a meter::

    async with mbuspico.aio.SerialReader("/dev/ttyUSB0", key=KEY) as reader:
        async for reading in reader:
            print(reading["activePowerPlus"])

It wraps the blocking :class:`mbuspico.SerialReader` (same arguments, same
readings, same counters) and runs it in a thread of its own, one per reader, so
the event loop's default executor is never occupied. The thread waits on the
port in slices of at most 0.25 s, so cancelling a pending read returns at once
and closing the reader releases the port within one slice; no thread is left
waiting on a closed port.

Loading this module imports :mod:`asyncio`; ``import mbuspico`` alone does not.
"""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal, NoReturn

from . import _core

if TYPE_CHECKING:
    from collections.abc import Mapping

    from typing_extensions import Self

    from .types import DsmrReading, MbusReading, ReaderStats, Reading

__all__ = ["SerialReader"]

_SLICE = 0.25
"""Longest single wait of the worker thread in the blocking reader, seconds."""


class SerialReader:
    """Reads and decodes telegrams from a serial port, for asyncio.

    The asyncio face of :class:`mbuspico.SerialReader`: the same arguments (see
    there), the same readings (the dicts of :meth:`mbuspico.Decoder.decode`),
    the same :attr:`stats`. Bad telegrams (wrong key, corrupt bytes) never
    raise: they are counted in :attr:`stats` and logged on the ``mbuspico``
    logger, exactly as by the blocking reader, which does the work in a thread
    of this reader's own.

    Use it from one event loop's thread, one reading task at a time::

        async with mbuspico.aio.SerialReader(port, key=KEY, timeout=30) as reader:
            async for reading in reader:   # ends when 30 s pass without a reading
                ...
            reading = await reader.read(timeout=5)   # None after 5 s without one

    Cancellation: cancelling a task waiting in :meth:`read` (or ``async for``)
    returns at once; a telegram that arrives during the port wait still in
    progress is kept and returned by the next :meth:`read`, never lost.
    :meth:`aclose` and leaving ``async with`` return once the port is closed,
    within 0.25 s (one wait slice).

    The port is opened (quickly, without waiting for data) by the constructor,
    as the blocking reader does, so errors surface at the same place.

    Raises:
        SerialPortError: The port cannot be opened (and ``reconnect`` is false).
        ValueError: Bad key, parity, byte size, baud rate, timeout or profile
            (see :class:`mbuspico.SerialReader`).

    """

    def __init__(
        self,
        port: str,
        *,
        key: str | bytes | bytearray | None,
        auth_key: str | bytes | bytearray | None = None,
        protocol: Literal["auto", "dlms", "mbus", "dsmr"] = "auto",
        profile: str = "auto",
        baudrate: int | None = None,
        parity: str | None = None,
        bytesize: Literal[7, 8] | None = None,
        timeout: float | None = None,
        reconnect: bool = False,
        tz: str | None = None,
        names: Mapping[str, str] | None = None,
        apdu: bool = False,
        verify_tag: bool = True,
    ) -> None:
        """Open ``port``; the arguments are those of :class:`mbuspico.SerialReader`.

        ``timeout`` is the seconds :meth:`read` and ``async for`` wait for a
        reading (``None``: forever); ``reconnect=True`` reopens a failed port
        with backoff (0.25 s doubling to 30 s) in the reader's thread.
        """
        # The key goes to the Rust reader only: nothing here holds it.
        self._reader = _core.SerialReader(
            port,
            key=key,
            auth_key=auth_key,
            protocol=protocol,
            profile=profile,
            baudrate=baudrate,
            parity=parity,
            bytesize=bytesize,
            timeout=timeout,
            reconnect=reconnect,
            tz=tz,
            names=names,
            apdu=apdu,
            verify_tag=verify_tag,
        )
        # The blocking reader is busy (and refuses other calls) while the thread
        # waits in it: what does not change is copied now, the rest snapshotted.
        self._timeout = timeout
        self._repr = repr(self._reader)
        self._port = self._reader.port
        self._baudrate = self._reader.baudrate
        self._parity = self._reader.parity
        self._bytesize = self._reader.bytesize
        self._profile = self._reader.profile
        self._stats = self._reader.stats
        self._connected = self._reader.connected
        # Held by whoever is inside the blocking reader.
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"mbuspico-aio {self._port}"
        )
        # The port wait in the thread, kept across a cancelled read.
        self._pending: Future[Reading | MbusReading | DsmrReading | None] | None = None
        self._closing: Future[None] | None = None
        self._reading = False
        self._closed = False

    def _wait(self, seconds: float) -> Reading | MbusReading | DsmrReading | None:
        """In the reader's thread: one wait of at most ``seconds`` for a reading."""
        with self._lock:
            if self._closed:
                return None
            try:
                return self._reader.read(timeout=seconds)
            finally:
                self._stats = self._reader.stats
                self._connected = self._reader.connected

    def _close_port(self) -> None:
        """In the reader's thread: close the blocking reader."""
        with self._lock:
            self._reader.close()
            self._connected = False

    async def read(
        self, timeout: float | None = None
    ) -> Reading | MbusReading | DsmrReading | None:
        """Wait for the next reading without blocking the event loop.

        Args:
            timeout: Seconds to wait; ``None`` uses the reader's ``timeout``
                (``None`` there too: wait forever).

        Returns:
            The reading (a dict as from :meth:`mbuspico.Decoder.decode`), or
            ``None`` when the time ran out first, as the blocking reader does.

        Raises:
            SerialPortError: The port failed (and ``reconnect`` is false).
            ValueError: The reader is closed (also when it is closed while
                waiting), or ``timeout`` is negative or not finite.
            RuntimeError: Another task is already waiting in :meth:`read`.
            asyncio.CancelledError: The waiting task was cancelled; returns at
                once, and a reading that arrives meanwhile is kept for the next
                call.

        """
        if self._closed:
            msg = "read from a closed SerialReader"
            raise ValueError(msg)
        if timeout is None:
            timeout = self._timeout
        elif not (math.isfinite(timeout) and timeout >= 0):
            msg = "timeout must be a number of seconds >= 0"
            raise ValueError(msg)
        if self._reading:
            msg = "read() called while another task is already waiting for a reading"
            raise RuntimeError(msg)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._reading = True
        try:
            while True:
                future = self._pending
                if future is None:
                    if self._closed:
                        msg = "read from a closed SerialReader"
                        raise ValueError(msg)
                    wait = _SLICE if deadline is None else min(_SLICE, deadline - loop.time())
                    future = self._executor.submit(self._wait, max(0.0, wait))
                    self._pending = future
                try:
                    reading = await asyncio.wrap_future(future)
                except asyncio.CancelledError:
                    # The task was cancelled: the wait in the thread goes on, and
                    # what it returns is the next call's.
                    if future.cancelled():
                        self._pending = None
                    raise
                except BaseException:
                    self._pending = None
                    raise
                self._pending = None
                if reading is not None:
                    return reading
                if self._closed:
                    msg = "read from a closed SerialReader"
                    raise ValueError(msg)
                if deadline is not None and loop.time() >= deadline:
                    return None
        finally:
            self._reading = False

    def __aiter__(self) -> Self:
        """Iterate over readings; ends when the reader's ``timeout`` passes without one."""
        return self

    async def __anext__(self) -> Reading | MbusReading | DsmrReading:
        """The next reading (see :meth:`read`)."""
        reading = await self.read()
        if reading is None:
            raise StopAsyncIteration
        return reading

    def close(self) -> None:
        """Close the port now, or after the port wait in progress (at most 0.25 s).

        Does not wait; :meth:`aclose` does. Later reads raise ``ValueError``; a
        read waiting meanwhile returns the reading it got, else raises
        ``ValueError``. Closing twice does nothing.
        """
        if self._closed:
            return
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._reader.close()
                self._connected = False
            finally:
                self._lock.release()
        else:
            self._closing = self._executor.submit(self._close_port)
        # The thread ends once the queue is done.
        self._executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """Close the port and wait until it is closed (at most 0.25 s)."""
        self.close()
        if self._closing is not None:
            await asyncio.wrap_future(self._closing)

    async def __aenter__(self) -> Self:
        """Return the reader."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the port (see :meth:`aclose`)."""
        await self.aclose()

    @property
    def port(self) -> str:
        """The device path."""
        return self._port

    @property
    def baudrate(self) -> int:
        """The line speed the port was opened with, baud."""
        return self._baudrate

    @property
    def parity(self) -> Literal["even", "odd", "none"]:
        """The parity the port was opened with."""
        return self._parity

    @property
    def bytesize(self) -> Literal[7, 8]:
        """Data bits per character the port was opened with."""
        return self._bytesize

    @property
    def profile(self) -> str | None:
        """The meter profile's name; None without one (``"auto"``)."""
        return self._profile

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`aclose`) was called."""
        return self._closed

    @property
    def connected(self) -> bool:
        """Whether the port is open: now, or at the end of the last port wait."""
        if self._lock.acquire(blocking=False):
            try:
                self._connected = self._reader.connected
            finally:
                self._lock.release()
        return self._connected

    @property
    def stats(self) -> ReaderStats:
        """Counters of the blocking reader (see :class:`mbuspico.types.ReaderStats`).

        Current when no port wait is in progress, else as of the end of the last
        one (at most 0.25 s old). A new dict each time.
        """
        if self._lock.acquire(blocking=False):
            try:
                self._stats = self._reader.stats
            finally:
                self._lock.release()
        return self._stats.copy()

    def __reduce__(self) -> NoReturn:
        """Refuse pickling and copying, as the blocking reader does: it owns a port."""
        msg = "cannot pickle 'mbuspico.aio.SerialReader' object"
        raise TypeError(msg)

    def __repr__(self) -> str:
        """The blocking reader's repr (port and line settings; the key redacted)."""
        return f"aio.{self._repr}"
