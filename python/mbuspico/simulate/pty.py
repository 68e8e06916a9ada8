"""The pseudo-terminal and fault machinery shared by the simulated meters.

:class:`PtyMeter` opens a pseudo-terminal pair (the slave side raw, so binary
data passes untouched), optionally links it to a fixed path (never replacing
anything there but an earlier simulator's symlink, see :class:`LinkExistsError`),
and writes the telegrams a subclass generates, every ``interval`` seconds, in a
background thread if asked. It also injects the faults the simulators offer: random
``garbage`` before a telegram, ``drop_byte`` and ``flip_bit`` per byte, and
``split`` writes in small chunks with small delays.

Used by :class:`mbuspico.simulate.dlms.Simulator` (DLMS push meters) and
:class:`mbuspico.simulate.p1.P1Simulator` (DSMR P1 meters). POSIX only.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import random
import re
import select
import stat
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["LinkExistsError", "PtyMeter", "PtyPort", "check_rates"]

log = logging.getLogger("mbuspico.simulate")


class _Telegram(Protocol):
    """What :meth:`PtyMeter.run` needs of a generated telegram: the bytes to write."""

    @property
    def wire(self) -> bytes:
        """The bytes written to the port, faults included."""
        ...


_T = TypeVar("_T", bound=_Telegram)
_Self = TypeVar("_Self", bound="PtyPort")


class LinkExistsError(FileExistsError):
    """The ``link`` path holds something a simulator must not replace.

    Only a symlink to a pseudo-terminal (``/dev/pts/N``; ``/dev/ttysN`` on
    macOS), such as the link an earlier simulator left, is replaced: a file,
    a directory or any other symlink is kept, and opening the port fails.
    The message is one line naming the path and what is there.
    """


_PTY_TARGET = re.compile(r"/dev/pts/[0-9]+|/dev/ttys[0-9]+")
"""Where a link a simulator made points: a pseudo-terminal's slave side."""


def _points_to_a_pty(path: Path) -> bool:
    """Whether ``path`` is a symlink to a pseudo-terminal path (existing or not)."""
    try:
        target = os.readlink(path)
    except OSError:  # not a symlink
        return False
    return _PTY_TARGET.fullmatch(os.path.normpath(target)) is not None


def _check_link(path: Path) -> None:
    """Raise :class:`LinkExistsError` unless ``path`` is free or a pty link to replace."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if _points_to_a_pty(path):
        return
    if stat.S_ISLNK(st.st_mode):
        what = f"a symlink to {os.readlink(path)}"
    elif stat.S_ISDIR(st.st_mode):
        what = "a directory"
    elif stat.S_ISREG(st.st_mode):
        what = "a file"
    else:
        what = "something"
    msg = (
        f"{path}: refusing to replace {what}; only a symlink into /dev/pts "
        "(an earlier simulator's) is replaced"
    )
    raise LinkExistsError(msg)


def check_rates(**rates: float) -> None:
    """Raise ``ValueError`` unless every fault rate is a probability (0..1)."""
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            msg = f"{name} must be a probability between 0 and 1, not {rate}"
            raise ValueError(msg)


class PtyPort(abc.ABC):
    """A pseudo-terminal served by a simulated device, in a background thread.

    The slave side is raw, so binary data passes untouched; the port may be
    linked to a fixed path.

    Subclasses implement :meth:`run` (the thread body, which ends when
    :attr:`_stop` is set) and :meth:`describe` (the log line on opening).

    Args:
        link: If given, a symlink made at this path to the port when opened,
            and removed when closed (if it still points to the port). A
            symlink there to a pseudo-terminal (an earlier simulator's link)
            is replaced; anything else makes :meth:`open` raise
            :class:`LinkExistsError`.

    """

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        """Nothing is opened until :meth:`open`."""
        self.link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port: str | None = None
        """Path of the pseudo-terminal to open, once :meth:`open` ran."""

    def describe(self) -> str:
        """What is simulated, for the log line on opening."""
        return "device"

    def open(self) -> str:
        """Open the pseudo-terminal pair; return the path to open (also :attr:`port`).

        Raises:
            LinkExistsError: ``link`` holds something other than a symlink to
                a pseudo-terminal; nothing is opened.
            OSError: The link cannot be made.

        """
        if self.port is not None:
            return self.port
        if self.link is not None:
            _check_link(self.link)
        master, slave = os.openpty()
        tty.setraw(slave)  # binary data: no echo, no CR/LF translation
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link is not None:
            try:
                self._make_link(self.link, self.port)
            except BaseException:
                self.close()
                raise
        log.info("simulated %s on %s", self.describe(), self.link or self.port)
        return self.port

    @staticmethod
    def _make_link(link: Path, port: str) -> None:
        """Make ``link`` point to ``port``: a new link renamed over an earlier pty link.

        The new link is made under a fresh name beside ``link`` (never
        replacing anything) and renamed over ``link`` once it has been checked
        again, so there is no moment without a link.
        """
        import secrets

        while True:
            tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.link")
            try:
                tmp.symlink_to(port)
                break
            except FileExistsError:
                continue
        try:
            _check_link(link)
            os.replace(tmp, link)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def write_all(self, data: bytes, timeout: float) -> int:
        """Write ``data``; returns how many bytes went out (0 when not open).

        Waits at most ``timeout`` seconds for room each time; bytes nobody
        reads are dropped after that, as a device's would be.
        """
        master = self._master
        if master is None:
            return 0
        view = memoryview(data)
        written = 0
        while view:
            _, ready, _ = select.select([], [master], [], timeout)
            if not ready:
                break
            n = os.write(master, view)
            written += n
            view = view[n:]
        return written

    def _start_thread(self, *args: object) -> None:
        self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=args, daemon=True)
        self._thread.start()

    @abc.abstractmethod
    def run(self, *args: Any) -> None:
        """The background thread's body (implemented by the subclasses)."""

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the background thread to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop and close the pseudo-terminal: whoever has it open sees it vanish."""
        self.stop()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.port is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self.port:  # still ours
                    self.link.unlink()
        self.port = None

    def __enter__(self: _Self) -> _Self:
        """Open the port."""
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the port."""
        self.close()


class PtyMeter(PtyPort, Generic[_T]):
    """Base of the simulated meters: a pseudo-terminal, a writer thread, faults.

    Subclasses implement :meth:`telegrams` (records with a ``wire`` attribute,
    the bytes to write) and set :attr:`meter`; every telegram written is
    appended to :attr:`sent`.

    Args:
        interval: Seconds between telegrams when running.
        link: If given, a symlink made at this path to the port (see
            :class:`PtyPort`: only an earlier simulator's link is replaced).
        garbage: Probability per telegram of 1 to 32 random bytes before it.
        drop_byte: Probability per byte of dropping it.
        flip_bit: Probability per byte of flipping one of its bits.
        split: Write in random chunks of 1 to 64 bytes with delays up to 20 ms.
        seed: Seed of :attr:`rng` (values and faults; reproducible runs).

    Raises:
        ValueError: A rate outside 0..1.

    """

    meter: str = "meter"
    """The profile name (shown in logs and reprs)."""

    def __init__(
        self,
        *,
        interval: float,
        link: str | os.PathLike[str] | None = None,
        garbage: float = 0.0,
        drop_byte: float = 0.0,
        flip_bit: float = 0.0,
        split: bool = False,
        seed: int | None = None,
    ) -> None:
        """Set up the port and fault options; nothing is opened until :meth:`open`."""
        check_rates(garbage=garbage, drop_byte=drop_byte, flip_bit=flip_bit)
        super().__init__(link)
        self.interval = interval
        self.garbage, self.drop_byte, self.flip_bit, self.split = (
            garbage,
            drop_byte,
            flip_bit,
            split,
        )
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self.sent: list[_T] = []
        """Every telegram written so far, oldest first (when running)."""

    # -- to implement ----------------------------------------------------------

    @abc.abstractmethod
    def telegrams(self) -> Iterator[_T]:
        """Generate telegrams forever (implemented by the subclasses)."""

    # -- faults ----------------------------------------------------------------

    def faults(self, telegram: bytes) -> tuple[bytes, bool]:
        """Apply the fault options to ``telegram``.

        Returns:
            The bytes to write (random garbage before the telegram, bytes
            dropped, bits flipped) and whether a dropped or flipped byte
            touched the telegram itself (garbage before it does not count).

        """
        rng = self.rng
        out = bytearray()
        if self.garbage and rng.random() < self.garbage:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        faulted = False
        for b in telegram:
            if self.drop_byte and rng.random() < self.drop_byte:
                faulted = True
                continue
            if self.flip_bit and rng.random() < self.flip_bit:
                b ^= 1 << rng.randrange(8)
                faulted = True
            out.append(b)
        return bytes(out), faulted

    # -- pseudo-terminal -------------------------------------------------------

    def describe(self) -> str:
        """The meter profile, for the log line on opening."""
        return f"{self.meter} meter"

    def write(self, data: bytes, *, timeout: float = 5.0) -> int:
        """Write raw bytes to the port; returns how many were written.

        Waits at most ``timeout`` seconds for room; bytes nobody reads are
        dropped after that, as a meter's would be.

        Raises:
            ValueError: The port is not open.

        """
        master = self._master
        if master is None:
            msg = "the simulator is not open"
            raise ValueError(msg)
        chunks = [data]
        if self.split:
            chunks, pos = [], 0
            while pos < len(data):
                n = self.rng.randint(1, 64)
                chunks.append(data[pos : pos + n])
                pos += n
        written = 0
        for i, chunk in enumerate(chunks):
            if self.split and i:
                time.sleep(self.rng.uniform(0, 0.02))
            n = self.write_all(chunk, timeout)
            written += n
            if n < len(chunk):
                break
        return written

    def run(self, count: int | None = None) -> None:
        """Write telegrams every ``interval`` seconds until :meth:`stop` or ``count``."""
        self.open()
        generated = self.telegrams()
        sent = 0
        next_at = time.monotonic()
        while not self._stop.is_set() and (count is None or sent < count):
            tg = next(generated)
            try:
                self.write(tg.wire)
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self.sent.append(tg)
            sent += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self, count: int | None = None) -> None:
        """Run in a background thread (see :meth:`run`)."""
        self._start_thread(count)
