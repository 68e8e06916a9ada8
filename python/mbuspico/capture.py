"""Telegrams from capture files, read lazily: :func:`read_capture`.

A capture is what a serial port delivered, saved to a file: raw bytes (M-Bus
frames, HDLC frames, DSMR P1 text, with any garbage between), or the same as
hex text (digits and whitespace, any line layout). :func:`read_capture` reads it
in chunks and hands out each verified telegram as soon as its last byte is
read, so captures of any size stream through constant memory. Decode the
telegrams with :meth:`mbuspico.Decoder.decode_iter`::

    capture = mbuspico.read_capture("meter.bin")
    for reading in decoder.decode_iter(capture):
        ...
    capture.stats  # telegrams found, bytes skipped, bad checksums, ...

``read_capture(path, progress=True)`` shows a tqdm progress bar of the bytes
read (``pip install mbuspico[progress]``); without tqdm it warns once and reads
on without a bar.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO, Literal

from ._core import Deframer
from .types import DeframerStats

__all__ = ["Capture", "as_bytes", "capture_bytes", "read_capture", "split_telegrams"]

_HEX = frozenset(string.hexdigits.encode() + string.whitespace.encode())
_SNIFF = 4096


def _is_hex(sample: bytes) -> bool:
    """Whether a file's first bytes are hex text (digits and whitespace only)."""
    stripped = sample.strip()
    return bool(stripped) and all(b in _HEX for b in stripped)


def as_bytes(content: bytes) -> bytes:
    """A whole file's telegram bytes: hex text decoded, anything else as it is.

    Args:
        content: The file's bytes.

    Returns:
        ``bytes.fromhex`` of the content when it is hex digits and whitespace
        only and an even number of digits, else the content unchanged (binary
        frames, P1 text). The simulated meters read their ``--telegrams``
        files with it.

    """
    if _is_hex(content):
        try:
            return bytes.fromhex(content.strip().decode("ascii"))
        except ValueError:
            return content
    return content


def capture_bytes(content: bytes) -> bytes:
    """A whole capture's bytes: a hex dump in any layout, else :func:`as_bytes`.

    Hex dumps are read as :func:`mbuspico._core.parse_hex` reads them (spaced,
    ``:``/``-``/``,`` separated, ``0x`` prefixes, otb-iot ``ok:68/4d/...``
    messages); text starting with ``/`` is P1 text and stays as it is.
    """
    from ._core import parse_hex
    from .errors import DecodeError

    text = content.strip()
    if text and text.isascii() and not text.startswith(b"/"):  # "/": P1 text
        try:
            return parse_hex(text.decode("ascii"))
        except DecodeError:
            pass
    return as_bytes(content)


_APDU_TAGS = (0xDB, 0x0F)  # general-glo-ciphering, data-notification (IEC 62056-5-3 §9.5)


def split_telegrams(
    data: bytes, protocol: str = "auto"
) -> tuple[list[bytes], DeframerStats | None]:
    """The verified telegrams in a capture's bytes, and the deframer's counters.

    Args:
        data: The bytes (see :func:`capture_bytes`).
        protocol: ``"auto"`` (P1 text when the bytes hold a ``/`` and a
            line starting ``!``, else M-Bus/HDLC frames), ``"dsmr"``, or any other
            protocol name (M-Bus/HDLC framing).

    Returns:
        The telegrams in order, and the :class:`mbuspico.Deframer` counters
        (bytes skipped, bad checksums, incomplete telegrams); a bare APDU
        (first byte 0xDB or 0x0F) is one telegram as it is, with None for the
        counters.

    """
    p1 = protocol == "dsmr" or (protocol == "auto" and b"/" in data and b"\n!" in data)
    if data[:1] and data[0] in _APDU_TAGS and not p1:
        return [data], None  # a bare APDU: no framing to search
    deframer = Deframer(protocol="dsmr" if p1 else "auto")
    telegrams = deframer.feed(data)
    deframer.finish()
    return telegrams, deframer.stats


_P1_HEADER = re.compile(rb"/[\x20-\x7e]{4,80}\r?\n")
_P1_LINE = re.compile(rb"\n[01]-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}\(")


def _is_p1(sample: bytes) -> bool:
    """Whether the first bytes look like DSMR P1 text.

    That is a printable ``/`` header line and an OBIS line such as
    ``1-0:1.8.0(`` (DSMR 5.0.2 §6.12).
    """
    return bool(_P1_HEADER.search(sample) and _P1_LINE.search(sample))


class Capture:
    """The telegrams of one capture file; iterate once.

    Attributes:
        path: The file.
        protocol: ``"auto"`` (M-Bus and HDLC framing, or DSMR P1 when the file
            starts like P1 text), ``"dlms"``/``"mbus"`` or ``"dsmr"``.
        hex: Whether the file is hex text (known once iteration started).
        progress: Whether iterating shows a tqdm progress bar.
        bytes_read: Bytes read from the file so far.

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        protocol: Literal["auto", "dlms", "mbus", "dsmr"] = "auto",
        chunk_size: int = 1 << 16,
        progress: bool = False,
    ) -> None:
        """Prepare to read ``path``; nothing is opened until iteration."""
        if protocol not in ("auto", "dlms", "mbus", "dsmr"):
            msg = f'protocol must be "auto", "dlms", "mbus" or "dsmr", not {protocol!r}'
            raise ValueError(msg)
        if chunk_size < 1:
            msg = "chunk_size must be at least 1"
            raise ValueError(msg)
        self.path = os.fspath(path)
        self.protocol = protocol
        self.hex: bool | None = None
        self._chunk_size = chunk_size
        self._deframer: Deframer | None = None
        self._started = False
        self._bar: Any = None
        self.bytes_read = 0
        self._tqdm = _tqdm() if progress else None
        self.progress = self._tqdm is not None

    def __repr__(self) -> str:
        """Show the file and protocol."""
        return f"Capture({self.path!r}, protocol={self.protocol!r})"

    @property
    def stats(self) -> DeframerStats:
        """The deframer's counters (all zero before iteration).

        Telegrams, bytes skipped, bad checksums, incomplete telegrams.
        """
        if self._deframer is None:
            return Deframer().stats
        return self._deframer.stats

    def __iter__(self) -> Iterator[bytes]:
        """Yield each verified telegram (its raw frames) in file order.

        Raises:
            OSError: The file cannot be read.
            RuntimeError: Iterated a second time.

        """
        batches = self.batches()
        try:
            for batch in batches:
                yield from batch
        finally:
            batches.close()  # the file and the progress bar, also when stopped early

    def batches(self) -> Generator[list[bytes], None, None]:
        """Yield the telegrams in file order, as lists: those each read completed.

        The same telegrams as iterating the capture, with less work per
        telegram (what ``to_pandas(capture, decoder=...)`` reads); a list may
        be empty. Read once, either way.

        Raises:
            OSError: The file cannot be read.
            RuntimeError: Iterated a second time.

        """
        if self._started:
            msg = "a Capture is read once; call read_capture() again"
            raise RuntimeError(msg)
        self._started = True
        with open(self.path, "rb") as f:
            if self._tqdm is not None:
                size = os.fstat(f.fileno()).st_size
                name = os.path.basename(self.path)
                self._bar = self._tqdm(total=size, unit="B", unit_scale=True, desc=name)
            try:
                yield from self._telegrams(f)
            finally:
                if self._bar is not None:
                    self._bar.close()

    def _read(self, f: BinaryIO, size: int) -> bytes:
        data = f.read(size)
        self.bytes_read += len(data)
        if self._bar is not None and data:
            self._bar.update(len(data))
        return data

    def _telegrams(self, f: BinaryIO) -> Generator[list[bytes], None, None]:
        sample = self._read(f, _SNIFF)
        self.hex = _is_hex(sample)
        chunks = self._hex_chunks(f, sample) if self.hex else self._raw_chunks(f, sample)
        first = next(chunks, b"")
        p1 = self.protocol == "dsmr" or (self.protocol == "auto" and _is_p1(first[:_SNIFF]))
        self._deframer = deframer = Deframer(protocol="dsmr" if p1 else "auto")
        yield deframer.feed(first)
        for chunk in chunks:
            yield deframer.feed(chunk)
        deframer.finish()

    def _raw_chunks(self, f: BinaryIO, sample: bytes) -> Iterator[bytes]:
        if sample:
            yield sample
        while chunk := self._read(f, self._chunk_size):
            yield chunk

    def _hex_chunks(self, f: BinaryIO, sample: bytes) -> Iterator[bytes]:
        """Bytes of hex text, decoded as it is read (a digit pair may span chunks)."""
        carry = b""
        text = sample
        while text:
            digits = carry + bytes(text.translate(None, string.whitespace.encode()))
            even = len(digits) - len(digits) % 2
            carry = digits[even:]
            try:
                data = bytes.fromhex(digits[:even].decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return  # not hex after all from here on: stop at the last whole pair
            if data:
                yield data
            text = self._read(f, self._chunk_size)


def read_capture(
    path: str | os.PathLike[str],
    *,
    protocol: Literal["auto", "dlms", "mbus", "dsmr"] = "auto",
    chunk_size: int = 1 << 16,
    progress: bool = False,
) -> Capture:
    """The telegrams of a capture file (binary or hex text), read lazily.

    Args:
        path: The capture file: raw bytes as received (M-Bus long frames, HDLC
            frames incl. general block transfer, DSMR P1 text; garbage between
            is skipped) or hex text of them (whitespace anywhere).
        protocol: ``"auto"`` finds M-Bus and HDLC telegrams, or DSMR P1
            telegrams when the file starts like P1 text; ``"dsmr"`` forces the
            P1 framer; ``"dlms"`` and ``"mbus"`` the M-Bus/HDLC one.
        chunk_size: Bytes read per step.
        progress: Show a progress bar of the bytes read (of the file's size)
            while iterating, with tqdm (``tqdm.auto``: a widget in Jupyter
            with ipywidgets, text on stderr elsewhere). Without tqdm
            installed (``pip install mbuspico[progress]``) a
            ``RuntimeWarning`` says so once, here, and the capture is read
            without a bar.

    Returns:
        A :class:`Capture`: iterate it for the telegrams (``bytes``, each
        verified: M-Bus checksums, HDLC HCS/FCS, DSMR CRC), then read its
        ``stats``. Feed it to :meth:`mbuspico.Decoder.decode_iter`.

    Raises:
        ValueError: Bad protocol or chunk size (when called); OSError when
            the file cannot be read (on iteration).

    """
    if progress and _tqdm() is None:
        import warnings

        warnings.warn(
            "read_capture(progress=True) needs tqdm (pip install mbuspico[progress]); "
            "reading without a progress bar",
            RuntimeWarning,
            stacklevel=2,
        )
    return Capture(path, protocol=protocol, chunk_size=chunk_size, progress=progress)


def _tqdm() -> Any:
    """The progress bar class of tqdm (``tqdm.auto``), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm
