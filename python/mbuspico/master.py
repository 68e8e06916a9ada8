"""Wired M-Bus master: read meters on an M-Bus level converter (EN 13757-2/-3).

:class:`MBusMaster` drives the bus through a serial port (a level converter such
as a USB M-Bus master, 2400 Bd 8E1 by default)::

    with MBusMaster("/dev/ttyUSB0") as master:
        master.scan_primary()                    # [1, 5]
        reading = master.request(5)              # decoded, all telegrams merged
        frames = master.request_frames("12345678FFFFFFFF")   # raw RSP_UD telegrams

Addresses: a primary address is an ``int`` 0-250 (254 = "whoever is alone on the
bus"); a secondary address is 16 hex digits ``IIIIIIIIMMMMVVDD`` (identification
number, manufacturer in wire byte order, version, medium; ``F`` = wildcard), or
the 8-digit identification number alone (the libmbus convention).

Link-level behaviour follows libmbus (see ``MBusLink`` in ``mbuspico._core``):
response timeouts per baud rate (2400 Bd: 0.3 s), echoes of our own requests
discarded, garbled answers reported as :class:`~mbuspico.errors.CollisionError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from . import _core
from .errors import CollisionError, NoResponseError

__all__ = ["MBusMaster"]

log = logging.getLogger("mbuspico.master")

_NETWORK_LAYER = 0xFD
_ANY = "FFFFFFFFFFFFFFFF"


class MBusMaster:
    """The master of a wired M-Bus on a serial port.

    Args:
        port: Device path of the level converter, e.g. ``/dev/ttyUSB0``, or the
            port a :class:`mbuspico.simulate.mbus_slave.MBusSlave` prints.
        baudrate: Line speed (300 to 38400; 2400 is the M-Bus default).
        timeout: Seconds a slave may stay silent before and between the bytes of
            its answer; ``None``: libmbus's value for the baud rate (300 Bd 1.3 s,
            600 0.8 s, 1200 0.5 s, 2400/4800 0.3 s, faster 0.2 s). The time to
            send the request is added.
        retries: Further attempts after a timeout or a garbled answer, for
            :meth:`request`, :meth:`request_frames` and :meth:`ping`
            (libmbus ``max_data_retry``).
        parity: ``"even"`` (8E1, the M-Bus standard), ``"none"`` or ``"odd"``.

    Raises:
        SerialPortError: The port cannot be opened.
        ValueError: Bad baud rate, parity, timeout or retries.

    """

    def __init__(
        self,
        port: str,
        baudrate: int = 2400,
        timeout: float | None = None,
        *,
        retries: int = 3,
        parity: str = "even",
    ) -> None:
        """Open the port."""
        if retries < 0:
            msg = f"retries must be >= 0, not {retries}"
            raise ValueError(msg)
        self.retries = retries
        self.link = _core.MBusLink(port, baudrate=baudrate, parity=parity, timeout=timeout)
        """The link layer: send request bytes, receive one frame."""

    def __repr__(self) -> str:
        """Show port and line settings."""
        return f"MBusMaster({self.link!r}, retries={self.retries})"

    @property
    def baudrate(self) -> int:
        """The line speed in baud (settable)."""
        return self.link.baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self.link.baudrate = value

    # -- exchanges -------------------------------------------------------------

    def _exchange(self, request: bytes, expect: str, retries: int) -> bytes:
        """Send ``request`` until an answer of kind ``expect`` arrives.

        Raises:
            NoResponseError: Silence on every attempt.
            CollisionError: The last attempt got a garbled or unexpected answer.

        """
        error: Exception | None = None
        for attempt in range(retries + 1):
            try:
                frame = self.link.transact(request)
            except CollisionError as e:
                error = e
            else:
                if frame is None:
                    error = NoResponseError(
                        f"no answer to {request.hex(' ').upper()} on {self.link.port}"
                    )
                else:
                    kind, _ = _core.mbus_classify(frame)
                    if kind == expect:
                        return frame
                    error = CollisionError(
                        f"expected {expect}, received {kind}: {frame.hex(' ').upper()}",
                        frame,
                    )
            if attempt < retries:
                log.debug("M-Bus: attempt %d failed (%s); retrying", attempt + 1, error)
        assert error is not None  # noqa: S101 - the loop ran at least once
        raise error

    @staticmethod
    def _primary(address: int) -> int:
        if not 0 <= address <= 255:
            msg = f"a primary address is 0 to 255, not {address}"
            raise ValueError(msg)
        return address

    def ping(self, address: int, *, retries: int | None = None) -> bool:
        """Send SND_NKE (link reset) to ``address``; whether it answered ``E5``.

        EN 13757-2 §5.5: the slave acknowledges with the single character and
        resets its frame count bit. At 0xFD it also ends the selection.

        Args:
            address: Primary address 0-250, 253 (the selected slave) or 254.
            retries: Further attempts after silence; default: the master's.

        Raises:
            CollisionError: Every attempt got a garbled answer (several slaves at
                that address).
            SerialPortError: The port failed.

        """
        request = _core.mbus_snd_nke(self._primary(address))
        try:
            self._exchange(request, "ack", self.retries if retries is None else retries)
        except NoResponseError:
            return False
        return True

    def select(self, secondary: str, *, retries: int = 0) -> bool:
        """Select the slave(s) matching a secondary address (EN 13757-3, secondary addressing).

        Sends SND_UD with CI 0x52 to 0xFD. A matching slave answers ``E5`` and
        from then on answers at address 0xFD (253); the others are deselected.

        Args:
            secondary: ``IIIIIIIIMMMMVVDD`` (``F`` = wildcard) or 8 ID digits.
            retries: Further attempts after silence (default none: silence means
                nobody matches).

        Returns:
            ``True`` when exactly one slave answered, ``False`` on silence.

        Raises:
            CollisionError: Several slaves answered at once (narrow the pattern).
            ValueError: ``secondary`` is not a secondary address.
            SerialPortError: The port failed.

        """
        request = _core.mbus_select(secondary)
        try:
            self._exchange(request, "ack", retries)
        except NoResponseError:
            return False
        return True

    def _target(self, address: int | str) -> int:
        """The A-field to request from: select a secondary address first."""
        if isinstance(address, str):
            if not self.select(address, retries=self.retries):
                msg = f"no slave answered the selection of {address} on {self.link.port}"
                raise NoResponseError(msg)
            return _NETWORK_LAYER
        address = self._primary(address)
        if address != _NETWORK_LAYER:
            # Link reset: the slave's FCB state starts over, the first REQ_UD2
            # gets its first telegram. Some slaves do not acknowledge it.
            self.ping(address, retries=0)
        return address

    def _telegrams(
        self, address: int | str, more: Callable[[bytes], bool], max_telegrams: int
    ) -> list[bytes]:
        target = self._target(address)
        frames: list[bytes] = []
        fcb = True
        while True:
            request = _core.mbus_req_ud2(target, fcb=fcb)
            frame = self._exchange(request, "response", self.retries)
            frames.append(frame)
            if len(frames) >= max_telegrams or not more(frame):
                return frames
            fcb = not fcb  # next telegram; a retry keeps the FCB, so the slave repeats

    def request_frames(self, address: int | str, *, max_telegrams: int = 16) -> list[bytes]:
        """Read a slave's telegrams, raw: REQ_UD2 until no more records follow.

        EN 13757-2 §5.5: the first REQ_UD2 has FCV and FCB set; the FCB toggles
        for each further telegram, while the last one ends with DIF 0x1F (more
        records follow, EN 13757-3 DIF special functions). A timeout or garbled answer is retried
        with the same FCB, so the slave repeats its answer. Before a primary
        address is read, SND_NKE resets the slave's link; a secondary address is
        selected first and then read at 0xFD.

        Args:
            address: Primary address (int) or secondary address (str).
            max_telegrams: Stop after this many telegrams.

        Returns:
            The RSP_UD long frames, ``68 L L 68 08 A 72 … CS 16``, in order.

        Raises:
            NoResponseError: The slave did not answer (retries included).
            CollisionError: Its answers stayed garbled.
            ValueError: Bad address.
            SerialPortError: The port failed.

        """
        return self._telegrams(address, _core.mbus_more_records_follow, max_telegrams)

    def request(self, address: int | str, *, max_telegrams: int = 16) -> dict[str, Any]:
        """Read and decode a slave: all its telegrams merged into one reading.

        As :meth:`request_frames`, deciding whether another telegram follows from
        the decoded reading's ``moreRecordsFollow``.

        Args:
            address: Primary address (int) or secondary address (str).
            max_telegrams: Stop after this many telegrams.

        Returns:
            The first telegram's reading from :meth:`mbuspico.Decoder.decode`
            (``id``, ``manufacturer``, ``medium``, …) with ``records`` holding the
            records of every telegram in order, ``moreRecordsFollow`` of the last
            telegram, and ``telegrams``, how many were read.

        Raises:
            NoResponseError: The slave did not answer (retries included).
            CollisionError: Its answers stayed garbled.
            DecodeError: A telegram does not decode (EN 13757-3).
            SerialPortError: The port failed.

        """
        decoder = _core.Decoder()
        readings: list[dict[str, Any]] = []

        def more(frame: bytes) -> bool:
            reading = cast("dict[str, Any]", decoder.decode(frame))
            readings.append(reading)
            return bool(reading.get("moreRecordsFollow"))

        self._telegrams(address, more, max_telegrams)
        merged = dict(readings[0])
        merged["records"] = [rec for r in readings for rec in r.get("records", [])]
        merged["moreRecordsFollow"] = bool(readings[-1].get("moreRecordsFollow"))
        merged["telegrams"] = len(readings)
        return merged

    # -- scans -----------------------------------------------------------------

    def scan_primary(
        self, addresses: Iterable[int] = range(0, 251), *, retries: int = 0
    ) -> list[int]:
        """The primary addresses that answer SND_NKE, in the order tried.

        An address where several slaves answer at once (a collision) is listed
        too, with a warning on the ``mbuspico.master`` logger.

        Raises:
            SerialPortError: The port failed.

        """
        found: list[int] = []
        for address in addresses:
            try:
                if self.ping(address, retries=retries):
                    found.append(address)
            except CollisionError:
                log.warning("M-Bus: collision at primary address %d: several slaves", address)
                found.append(address)
        return found

    def _selected_address(self) -> str | None:
        """The secondary address of the selected slave, from its RSP_UD header."""
        frame = self._exchange(_core.mbus_req_ud2(_NETWORK_LAYER, fcb=True), "response", 1)
        return _core.mbus_secondary_address(frame)

    def scan_secondary(
        self,
        pattern: str = _ANY,
        *,
        hex_digits: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Find every slave by secondary address: the libmbus wildcard search.

        Selects ``pattern``; on silence nobody is there; on one ``E5`` the slave's
        full address is read from its answer to REQ_UD2 at 0xFD; on a collision
        the next wildcard digit of the identification number is tried with
        ``0``-``9`` (and ``A``-``E`` with ``hex_digits``), recursively
        (EN 13757-3, secondary addressing). Slaves sharing all 8 ID digits cannot be told apart
        this way and are logged, not listed.

        Args:
            pattern: Where to search, ``IIIIIIIIMMMMVVDD`` with wildcards.
            hex_digits: Also try the non-BCD digits A-E (slower).
            progress: Called with each pattern before it is selected (a
                command line shows where the search is).

        Returns:
            The secondary addresses found, ``IIIIIIIIMMMMVVDD``, sorted.

        Raises:
            ValueError: ``pattern`` is not a secondary address.
            SerialPortError: The port failed.

        """
        digits = "0123456789ABCDE" if hex_digits else "0123456789"
        found: set[str] = set()

        def walk(pattern: str, position: int) -> None:
            if progress is not None:
                progress(pattern)
            try:
                if not self.select(pattern):
                    return
            except CollisionError:
                wildcard = pattern.find("F", position, 8)
                if wildcard < 0:
                    log.warning("M-Bus: several slaves match %s; cannot separate them", pattern)
                    return
                for d in digits:
                    walk(pattern[:wildcard] + d + pattern[wildcard + 1 :], wildcard + 1)
                return
            try:
                address = self._selected_address()
            except (NoResponseError, CollisionError) as e:
                log.warning("M-Bus: %s selected, but no readable answer (%s)", pattern, e)
                return
            if address is None:
                log.warning("M-Bus: %s selected, but its answer has no address header", pattern)
                return
            found.add(address)

        walk(_core.mbus_parse_secondary(pattern), 0)
        return sorted(found)

    def probe_baudrate(
        self, address: int, rates: Sequence[int] = (300, 2400, 9600), *, retries: int = 1
    ) -> int | None:
        """The first of ``rates`` at which ``address`` answers SND_NKE.

        The master stays at that rate; when none answers, it returns to the rate
        it had.

        Raises:
            CollisionError: Several slaves answered at ``address``.
            SerialPortError: The port failed.

        """
        before = self.baudrate
        for rate in rates:
            self.baudrate = rate
            if self.ping(address, retries=retries):
                return rate
        self.baudrate = before
        return None

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Close the port; later use raises ``ValueError``."""
        self.link.close()

    def __enter__(self) -> MBusMaster:
        """Return the master."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the port."""
        self.close()
