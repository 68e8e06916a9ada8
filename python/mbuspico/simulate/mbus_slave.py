"""A simulated wired M-Bus with one or more slaves, on a pseudo-terminal.

:class:`MBusSlave` opens a pseudo-terminal and answers, on its master side, the
requests an M-Bus master writes to the other side, as the slaves on a real bus
would (EN 13757-2 link layer, EN 13757-3 selection). Each :class:`SlaveMeter`
replays captured RSP_UD frames (libmbus ``.hex`` files, a directory of them, or
bytes)::

    with MBusSlave([SlaveMeter("tests/data/libmbus/test-frames/EDC.hex", address=5)]) as bus:
        bus.start()
        with mbuspico.MBusMaster(bus.port) as master:
            print(master.request_frames(5))

What the slaves do:

* SND_NKE (``10 40 A``) to their primary address, to 0xFE, or to 0xFD when
  selected: answer ``E5`` and reset the link (the next REQ_UD2 starts the
  telegram sequence again). SND_NKE to 0xFD also ends the selection.
* REQ_UD2 (``10 5B/7B A``): answer the next RSP_UD telegram; a meter with several
  frames sends them in turn. With FCV set and the FCB not toggled since the last
  REQ_UD2, the last answer is repeated (EN 13757-2 FCB rules).
* SND_UD CI 0x52 to 0xFD (selection): a slave whose secondary address matches the
  pattern (``F`` digit / ``FF`` byte = wildcard) becomes selected, answers ``E5``
  and resets its link; every other slave is deselected. CI 0x56 deselects all.
* SND_UD CI 0x51 ``01 7A N``: set the primary address to N; CI 0x50: application
  reset. Both answer ``E5``.
* Several slaves answering at once garble each other: their answers are merged
  bitwise (the bus is a wired AND), each one byte later than the one before, so
  the master sees a collision.
* Requests arriving while the line speed the master set differs from
  :attr:`MBusSlave.baudrate` are ignored, as a slave at another speed would.
* ``echo=True`` writes every request back first, as some level converters do.

POSIX only (``os.openpty``); the line speed is read with the Linux ``TCGETS2``
ioctl where available.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Union

from .. import _core
from .pty import PtyPort

__all__ = ["FrameSource", "MBusSlave", "SlaveMeter", "load_frames"]

log = logging.getLogger("mbuspico.simulate")

FrameSource = Union[str, "os.PathLike[str]", bytes, Sequence[bytes]]
"""Frames of a meter: a path to a ``.hex`` file (hex text or binary) or to a
directory of them (sorted by name), the bytes of one or more frames, or a list
of frames."""

_SND_NKE = 0x40
_REQ_UD2 = 0x5B
_REQ_UD1 = 0x5A
_SND_UD = 0x53
_FCB = 0x20
_FCV = 0x10
_ACK = b"\xe5"
_NETWORK_LAYER = 0xFD
_BROADCAST_REPLY = 0xFE
_BROADCAST = 0xFF
_CI_RESET = 0x50
_CI_DATA_SEND = 0x51
_CI_SELECT = 0x52
_CI_DESELECT = 0x56
_CI_VARIABLE = 0x72

# struct termios2 on Linux (x86, arm, aarch64, riscv): 4 flags, c_line, c_cc[19],
# c_ispeed, c_ospeed.
_TCGETS2 = 0x802C542A
_TERMIOS2 = struct.Struct("=4IB19sII")


def _split_frames(data: bytes, name: str) -> list[bytes]:
    frames: list[bytes] = []
    rest = data
    while rest:
        kind, n = _core.mbus_classify(rest)
        if kind in ("incomplete", "invalid"):
            msg = f"{name}: not a valid M-Bus frame at byte {len(data) - len(rest)}"
            raise ValueError(msg)
        frames.append(bytes(rest[:n]))
        rest = rest[n:]
    return frames


def _read_file(path: Path) -> list[bytes]:
    from ..capture import as_bytes

    return _split_frames(as_bytes(path.read_bytes()), str(path))


def load_frames(source: FrameSource) -> list[bytes]:
    """The frames of ``source`` (see :data:`FrameSource`), in order.

    Raises:
        ValueError: A file or the bytes hold something that is not a sequence
            of valid M-Bus frames, or no frame at all.
        OSError: A file cannot be read.

    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        frames = _split_frames(bytes(source), "frames")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".hex")
            frames = [f for p in files for f in _read_file(p)]
        else:
            frames = _read_file(path)
    else:
        frames = [f for item in source for f in _split_frames(bytes(item), "frames")]
    if not frames:
        msg = f"no M-Bus frame in {source!r:.80}"
        raise ValueError(msg)
    return frames


def _wire(secondary: str) -> bytes:
    """The 8 header bytes of a secondary address ``IIIIIIIIMMMMVVDD``."""
    return bytes.fromhex(secondary[:8])[::-1] + bytes.fromhex(secondary[8:])


def _pattern(wire: bytes) -> str:
    """``IIIIIIIIMMMMVVDD`` of the 8 bytes of a selection."""
    return wire[3::-1].hex().upper() + wire[4:].hex().upper()


def _with_header(frame: bytes, address: int | None, secondary: str | None) -> bytes:
    """``frame`` with its A-field and (CI 0x72) identification header replaced."""
    if len(frame) < 9 or frame[0] != 0x68:
        return frame
    body = bytearray(frame[4:-2])
    if address is not None:
        body[1] = address
    if secondary is not None and body[2] == _CI_VARIABLE and len(body) >= 11:
        body[3:11] = _wire(secondary)
    if bytes(body) == frame[4:-2]:
        return frame
    return frame[:4] + bytes(body) + bytes([sum(body) & 0xFF, 0x16])


class SlaveMeter:
    """One simulated slave: its addresses and the telegrams it answers with.

    Args:
        frames: The RSP_UD frames it sends, in order (see :data:`FrameSource`).
        address: Its primary address (0-250); default: the A-field of its
            first frame.
        secondary: Its secondary address ``IIIIIIIIMMMMVVDD``; default: the 8
            bytes after the CI-field of its first frame (CI 0x72). When given,
            the frames' headers are rewritten to carry it, so several meters can
            be made from one capture.

    Raises:
        ValueError: No valid frame, a primary address outside 0-250, or a bad
            secondary address.

    """

    def __init__(
        self,
        frames: FrameSource,
        *,
        address: int | None = None,
        secondary: str | None = None,
    ) -> None:
        """Load the frames; the meter starts deselected with a reset link."""
        loaded = load_frames(frames)
        if address is not None and not 0 <= address <= 250:
            msg = f"a primary address is 0 to 250, not {address}"
            raise ValueError(msg)
        if secondary is not None:
            secondary = _core.mbus_parse_secondary(secondary)
        self.frames = [_with_header(f, address, secondary) for f in loaded]
        """The telegrams, with A-field and header as configured."""
        first = self.frames[0]
        self.address: int = address if address is not None else first[5] if len(first) > 5 else 0
        """Primary address."""
        self.secondary: str | None = secondary or _core.mbus_secondary_address(first)
        """Secondary address (``None`` for frames without a CI 0x72 header)."""
        self.selected = False
        """Whether the meter is selected (answers at 0xFD)."""
        self._next = 0
        self._last_fcb: bool | None = None
        self._last: bytes | None = None

    def __repr__(self) -> str:
        """Show the addresses."""
        return (
            f"SlaveMeter(address={self.address}, secondary={self.secondary!r}, "
            f"frames={len(self.frames)})"
        )

    def reset(self) -> None:
        """Reset the link: the next REQ_UD2 gets the first telegram."""
        self._next = 0
        self._last_fcb = None
        self._last = None

    def respond(self, control: int) -> bytes:
        """The answer to a REQ_UD2 with C-field ``control`` (FCB/FCV rules)."""
        fcv = bool(control & _FCV)
        fcb = bool(control & _FCB)
        if fcv and self._last is not None and self._last_fcb == fcb:
            return self._last  # FCB not toggled: the master missed our answer
        frame = self.frames[self._next]
        self._next = (self._next + 1) % len(self.frames)
        self._last = frame
        self._last_fcb = fcb if fcv else None
        return frame


def _collide(answers: list[bytes]) -> bytes:
    """Answers sent at once: a wired AND, each answer one byte later."""
    out = bytearray(b"\xff" * max(len(a) + i for i, a in enumerate(answers)))
    for i, answer in enumerate(answers):
        for j, b in enumerate(answer):
            out[i + j] &= b
    return bytes(out)


_SPEEDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
    if hasattr(termios, f"B{rate}")
}


def line_speed(fd: int) -> int | None:
    """The baud rate set on the terminal ``fd`` (``None`` when unknown)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            raw = fcntl.ioctl(fd, _TCGETS2, bytes(_TERMIOS2.size))
            fields = _TERMIOS2.unpack(raw)
            return int(fields[6])
    try:
        attrs = termios.tcgetattr(fd)
    except termios.error:
        return None
    speed = attrs[4]
    return _SPEEDS.get(speed) if isinstance(speed, int) else None


class MBusSlave(PtyPort):
    """Simulated M-Bus slaves on a pseudo-terminal (see the module docstring).

    Args:
        meters: The slaves on the bus.
        baudrate: Their line speed; requests sent at another speed are ignored.
        echo: Write every request back before answering (level-converter echo).
        link: If given, a symlink made at this path to the port.
        response_delay: Seconds between a request and the answer.

    Attributes:
        port: The path a master opens, once :meth:`open` ran.
        requests: Every complete request received, oldest first.

    """

    def __init__(
        self,
        meters: SlaveMeter | Iterable[SlaveMeter],
        *,
        baudrate: int = 2400,
        echo: bool = False,
        link: str | os.PathLike[str] | None = None,
        response_delay: float = 0.0,
    ) -> None:
        """Create the bus; nothing is opened until :meth:`open`."""
        super().__init__(link)
        self.meters: list[SlaveMeter] = [meters] if isinstance(meters, SlaveMeter) else list(meters)
        self.baudrate = baudrate
        self.echo = echo
        self.response_delay = response_delay
        self.requests: list[bytes] = []
        self._mute = 0
        self._garble = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """Show meters and port."""
        return f"MBusSlave({len(self.meters)} meter(s), port={self.port!r})"

    # -- faults ----------------------------------------------------------------

    def mute(self, count: int = 1) -> None:
        """Stay silent on the next ``count`` requests that would get an answer."""
        with self._lock:
            self._mute += count

    def garble(self, count: int = 1) -> None:
        """Corrupt one byte of each of the next ``count`` answers."""
        with self._lock:
            self._garble += count

    # -- the slaves' logic -----------------------------------------------------

    def answer(self, request: bytes) -> bytes | None:
        """What the bus answers to one request frame (``None``: silence).

        Pure slave logic, no I/O: the state of the meters changes as on a real
        bus. Frames from slaves, invalid frames and broadcasts to 0xFF get no
        answer.
        """
        kind, n = _core.mbus_classify(request)
        if kind != "echo" or n != len(request):
            return None
        if request[0] == 0x10:
            control, address, ci, data = request[1], request[2], None, b""
        else:
            control, address, ci, data = request[4], request[5], request[6], request[7:-2]
        function = control & ~(_FCB | _FCV) & 0xFF
        if function == _SND_UD & ~(_FCB | _FCV) and address == _NETWORK_LAYER:
            if ci == _CI_SELECT and len(data) == 8:
                return self._select(_pattern(data))
            if ci == _CI_DESELECT:
                for m in self.meters:
                    m.selected = False
                return None
        targets = self._targets(address)
        answers: list[bytes] = []
        for meter in targets:
            if control == _SND_NKE:
                meter.reset()
                if address == _NETWORK_LAYER:
                    meter.selected = False
                answers.append(_ACK)
            elif function == _REQ_UD2 & ~(_FCB | _FCV):
                answers.append(meter.respond(control))
            elif function == _REQ_UD1 & ~(_FCB | _FCV):
                answers.append(_ACK)  # no alarm data
            elif function == _SND_UD & ~(_FCB | _FCV):
                if ci == _CI_DATA_SEND and data[:2] == b"\x01\x7a" and len(data) == 3:
                    if data[2] <= 250:
                        meter.address = data[2]
                elif ci == _CI_RESET:
                    meter.reset()
                answers.append(_ACK)
        if address == _BROADCAST or not answers:
            return None
        return answers[0] if len(answers) == 1 else _collide(answers)

    def _targets(self, address: int) -> list[SlaveMeter]:
        if address == _NETWORK_LAYER:
            return [m for m in self.meters if m.selected]
        if address in (_BROADCAST_REPLY, _BROADCAST):
            return list(self.meters)
        return [m for m in self.meters if m.address == address]

    def _select(self, pattern: str) -> bytes | None:
        answers = 0
        for m in self.meters:
            m.selected = m.secondary is not None and _core.mbus_secondary_matches(
                pattern, m.secondary
            )
            if m.selected:
                m.reset()
                answers += 1
        if not answers:
            return None
        return _collide([_ACK] * answers)

    # -- pseudo-terminal -------------------------------------------------------

    def describe(self) -> str:
        """The slaves on the bus, for the log line on opening."""
        return f"M-Bus with {len(self.meters)} slave(s)"

    def _write(self, data: bytes) -> None:
        self.write_all(data, 1.0)

    def _handle(self, request: bytes) -> None:
        self.requests.append(request)
        speed = line_speed(self._slave) if self._slave is not None else None
        if speed is not None and speed != self.baudrate:
            log.debug("ignored a request at %s Bd (bus runs at %s Bd)", speed, self.baudrate)
            return
        if self.echo:
            self._write(request)
        reply = self.answer(request)
        if reply is None:
            return
        with self._lock:
            if self._mute:
                self._mute -= 1
                return
            if self._garble:
                self._garble -= 1
                damaged = bytearray(reply)
                damaged[len(damaged) // 2] ^= 0x5A
                reply = bytes(damaged)
        if self.response_delay:
            time.sleep(self.response_delay)
        self._write(reply)

    def run(self) -> None:
        """Answer requests until :meth:`stop`."""
        self.open()
        buf = b""
        while not self._stop.is_set():
            master = self._master
            if master is None:
                return
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    buf = b""  # a pause ends any partial frame
                    continue
                buf += os.read(master, 4096)
            except OSError:
                return
            while buf:
                kind, n = _core.mbus_classify(buf)
                if kind == "incomplete":
                    break
                if kind == "invalid":
                    buf = buf[1:]
                    continue
                frame, buf = buf[:n], buf[n:]
                self._handle(frame)

    def start(self) -> None:
        """Run in a background thread (see :meth:`run`)."""
        self._start_thread()
