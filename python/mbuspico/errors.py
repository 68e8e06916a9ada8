"""Exceptions raised by mbuspico.

Every decoding failure is a :class:`DecodeError` (a :class:`ValueError`), so code
that already catches ``ValueError`` keeps working. Each carries ``offset``, the
byte of the input where the problem was found, and ``kind``, a short stable
identifier such as ``"checksum"`` or ``"missing_key"``. Messages never contain
key material.

This module must not import ``mbuspico._core``: the Rust core imports it.
"""

__all__ = [
    "ApduError",
    "ChecksumError",
    "CollisionError",
    "DecodeError",
    "DecryptionError",
    "FrameError",
    "HexError",
    "MbusPicoError",
    "NoResponseError",
    "SerialPortError",
]


class MbusPicoError(Exception):
    """Base class of every exception mbuspico raises on purpose."""


class DecodeError(MbusPicoError, ValueError):
    """Raised when bytes cannot be decoded.

    Attributes:
        message: What was wrong, ending with ``at byte N``.
        offset: Byte offset into the input given to the decoder (for hex text:
            the character position of the bad character), or ``None``.
        kind: Stable identifier of the problem, e.g. ``"truncated"``.

    """

    def __init__(
        self, message: str, offset: "int | None" = None, kind: "str | None" = None
    ) -> None:
        """Create the error; Rust raises it with ``(message, offset, kind)``."""
        super().__init__(message, offset, kind)
        self.message = message
        self.offset = offset
        self.kind = kind

    def __str__(self) -> str:
        """Return the message."""
        return self.message


class FrameError(DecodeError):
    """Raised when the link-layer envelope is wrong.

    A missing start or stop byte, differing length fields, input that ends inside
    a frame, a DLMS transport segment missing or out of order, or bytes after the
    telegram (EN 13757-2 §5; IEC 62056-7-6).
    """


class ChecksumError(FrameError):
    """Raised when a frame's checksum does not match its contents (EN 13757-2 §5.4)."""


class RecordError(DecodeError):
    """Raised when M-Bus application data is malformed (EN 13757-3 §6).

    A variable data header cut short, a data record that ends early (at its DIF,
    VIF, plain-text VIF or data), more than 10 DIFE or VIFE, a fixed data
    structure that is not 16 bytes, or a CI-field this decoder does not handle.
    Unknown but well-formed codes are never errors.
    """


class ApduError(DecodeError):
    """Raised when the application data is malformed.

    An unknown APDU tag, a bad BER length, A-XDR data that does not parse, or bytes
    after the APDU (IEC 62056-5-3, IEC 62056-6-2).
    """


class DecryptionError(DecodeError):
    """Raised when a telegram cannot be decrypted and verified.

    No key was given for an encrypted telegram, no authentication key for one with
    a tag, the GCM tag does not match, or (without a tag) the decrypted bytes are
    not a data-notification, which means the key is wrong.
    """


class HexError(DecodeError):
    """Raised when text given as a telegram is no hex dump.

    A character that is neither a hex digit, a separator (whitespace, ``:``,
    ``/``, ``-``, ``,``), a ``0x`` prefix, otb-iot's ``ok:`` nor the ``xx`` that
    ends an ``ok:`` message (kind ``"invalid_hex"``), or a group of digits
    between separators with an odd number of digits (kind
    ``"odd_hex_digits"``). ``offset`` is the *character* position in the text,
    not a byte offset.
    """


class SerialPortError(MbusPicoError, OSError):
    """Raised when the serial port cannot be opened or fails while reading.

    For example when the USB adapter is unplugged. Pass ``reconnect=True`` to
    :class:`mbuspico.SerialReader` to retry with backoff instead.
    """


class CollisionError(MbusPicoError):
    """Raised when an M-Bus answer is garbled: a collision on the bus.

    Several slaves answered at once (a wildcard selection matching more than one,
    a request to 0xFE with several slaves), or noise: the bytes received are not
    one valid frame, or more bytes followed a valid one (EN 13757-2 §5).

    Attributes:
        message: What was received, in words.
        data: The bytes received.

    """

    def __init__(self, message: str, data: bytes = b"") -> None:
        """Create the error; Rust raises it with ``(message, data)``."""
        super().__init__(message, data)
        self.message = message
        self.data = bytes(data)

    def __str__(self) -> str:
        """Return the message."""
        return self.message


class NoResponseError(MbusPicoError, TimeoutError):
    """Raised when an M-Bus slave does not answer a request, retries included."""
