"""Native core of mbuspico (Rust). Import from ``mbuspico``, not from here."""

from collections.abc import Mapping
from typing import Any, final

from typing_extensions import Self

from .types import DeframerStats, ReaderStats, Reading

__all__ = [
    "METERS",
    "Decoder",
    "Deframer",
    "SerialReader",
    "__version__",
    "encode_push",
    "system_title",
]
__version__: str
METERS: list[str]

_Bytes = bytes | bytearray | memoryview | str

@final
class Decoder:
    """Decodes DLMS push telegrams with the keys of one meter.

    Accepts the Austrian M-Bus customer-interface push (Kaifa MA309M and Sagemcom
    T210-D of Netz NÖ, including the old Sagemcom firmware whose first frame says
    L = 0x01; the KSM-West operators TINETZ, IKB, Salzburg Netz, VKW), a bare
    general-glo-ciphering APDU (``0xDB``), or an unencrypted data-notification
    (``0x0F``).

    Standards: EN 13757-2 §5 (long frames), IEC 62056-7-6 (DLMS transport over
    M-Bus), IEC 62056-5-3 and the DLMS UA Blue Book (general-glo-ciphering,
    AES-128-GCM, data-notification), IEC 62056-6-2 (A-XDR data, units).

    The keys are never shown: ``repr()`` prints ``<redacted>`` and no exception
    message contains them.
    """

    def __new__(
        cls,
        key: str | bytes | bytearray | None = None,
        *,
        auth_key: str | bytes | bytearray | None = None,
    ) -> Self:
        """Create a decoder.

        Args:
            key: The meter's global unicast encryption key (GUEK) from the grid
                operator's portal: 32 hex digits (whitespace allowed) or 16 bytes.
                Needed for encrypted telegrams.
            auth_key: The global authentication key (GAK), 32 hex digits or 16
                bytes; needed only for telegrams with an authentication tag
                (security control 0x30).

        Raises:
            ValueError: A key is not 32 hex digits or 16 bytes. The message does
                not repeat the value.
            TypeError: A key is neither str nor bytes-like.

        """

    def decode(self, data: _Bytes, /) -> Reading:
        """Decode one telegram.

        Args:
            data: The telegram: all its M-Bus frames (e.g. 282 bytes for a Netz NÖ
                push, 376 for a KSM-West three-phase push), a bare APDU, as bytes,
                bytearray, memoryview, or hex text (whitespace ignored).

        Returns:
            The reading: MBusPico's field names (``timestamp``, ``lxTimestamp``,
            ``meterNumber``, ``activePowerPlus`` W, ``activeEnergyPlus`` Wh,
            ``voltageL1`` V, ``currentL1`` A, ``powerFactor`` as cos φ, …),
            ``systemTitle``, ``frameCounter``, and ``obis``: every value by OBIS
            code with its unit. See :class:`mbuspico.Reading`.

        Raises:
            FrameError: Bad start, length or stop byte, input ending early, a
                segment missing or out of order, bytes after the telegram.
            ChecksumError: A frame's checksum does not match.
            ApduError: Malformed APDU or A-XDR data.
            DecryptionError: No key for an encrypted telegram, no authentication
                key for a tagged one, tag mismatch, or a wrong key.
            DecodeError: ``data`` is a str that is not hex.
            TypeError: ``data`` is not bytes-like or str.

            Every ``DecodeError`` has ``.offset``, the byte of ``data`` where the
            problem was found, and ``.kind``.

        """

    @property
    def has_key(self) -> bool:
        """Whether an encryption key is set."""

    @property
    def has_auth_key(self) -> bool:
        """Whether an authentication key is set."""

@final
class Deframer:
    """Finds verified telegrams in a byte stream, whatever its chunking.

    Feed it bytes as they arrive (serial port, ser2net TCP, an MQTT serial bridge,
    a capture file); it returns each telegram once its last byte has arrived and
    every frame has passed its length, stop-byte and checksum checks and its DLMS
    transport segments are complete and in order. Garbage, broken frames and
    incomplete telegrams are skipped and counted in :attr:`stats`; it never raises
    on bad data.
    """

    def __new__(cls) -> Self:
        """Create an empty deframer."""

    def feed(self, data: _Bytes, /) -> list[bytes]:
        """Add received bytes.

        Args:
            data: The next bytes of the stream (or hex text).

        Returns:
            The telegrams these bytes completed (raw frames, ready for
            :meth:`Decoder.decode`), oldest first; often empty.

        """

    def finish(self) -> None:
        """End the stream: bytes still buffered are counted as skipped."""

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a telegram."""

    @property
    def stats(self) -> DeframerStats:
        """Counters (see :class:`mbuspico.DeframerStats`)."""

@final
class SerialReader:
    """Reads and decodes DLMS push telegrams from a serial port.

    Opens ``port`` raw with 8 data bits and 1 stop bit (2400 Bd, even parity by
    default: the Netz NÖ M-Bus customer interface; use an M-Bus *slave* adapter
    such as a TSS721 board). Iterate over it, or call :meth:`read`, to get
    readings, the same dicts as :meth:`Decoder.decode`. A reading is returned as
    soon as the telegram's last byte arrives. The GIL is released while waiting,
    and Ctrl-C interrupts a wait within about 50 ms.

    Bad telegrams (wrong key, corrupt bytes) never raise: they are counted in
    :attr:`stats` and logged on the ``mbuspico`` logger. The port failing (an
    adapter unplugged) raises :class:`mbuspico.SerialPortError` (an ``OSError``),
    or with ``reconnect=True`` is retried with backoff (0.25 s doubling to 30 s).
    """

    def __new__(
        cls,
        port: str,
        *,
        key: str | bytes | bytearray | None,
        auth_key: str | bytes | bytearray | None = None,
        baudrate: int = 2400,
        parity: str = "even",
        timeout: float | None = None,
        reconnect: bool = False,
    ) -> Self:
        """Open ``port``.

        Args:
            port: Device path, e.g. ``/dev/ttyUSB0``, ``/dev/ttyAMA0``, or the
                path ``mbuspico simulate`` prints.
            key: The meter's encryption key, 32 hex digits or 16 bytes (None only
                for unencrypted meters).
            auth_key: Authentication key, for telegrams with a tag.
            baudrate: Baud rate; 2400 for the M-Bus push interfaces.
            parity: ``"even"`` (8E1, default), ``"none"`` (8N1) or ``"odd"``.
            timeout: Seconds :meth:`read` and iteration wait for a reading
                before giving up (``None``: forever).
            reconnect: Retry opening the port when it fails instead of raising.

        Raises:
            SerialPortError: The port cannot be opened (and ``reconnect`` is false).
            ValueError: Bad key, parity, baud rate or timeout.

        """

    def read(self, timeout: float | None = None) -> Reading | None:
        """Wait for the next reading.

        Args:
            timeout: Seconds to wait; ``None`` uses the reader's ``timeout``.

        Returns:
            The reading, or ``None`` when the time ran out first.

        Raises:
            SerialPortError: The port failed (and ``reconnect`` is false).
            ValueError: The reader is closed.
            KeyboardInterrupt: Ctrl-C while waiting.

        """

    def __iter__(self) -> Self:
        """Iterate over readings; ends when the reader's ``timeout`` passes without one."""

    def __next__(self) -> Reading:
        """The next reading (see :meth:`read`)."""

    def close(self) -> None:
        """Close the port; later reads raise ``ValueError``."""

    def __enter__(self) -> Self:
        """Return the reader."""

    def __exit__(self, *args: object) -> bool:
        """Close the port."""

    @property
    def port(self) -> str:
        """The device path."""

    @property
    def connected(self) -> bool:
        """Whether the port is open right now."""

    @property
    def stats(self) -> ReaderStats:
        """Counters of telegrams, skipped bytes and decoding failures."""

def encode_push(
    meter_name: str,
    values: Mapping[str, Any],
    *,
    key: str | bytes | bytearray,
    system_title: bytes,
    frame_counter: int,
) -> bytes:
    """Build one push telegram exactly as ``meter_name`` sends it (for the simulator).

    Args:
        meter_name: One of :data:`METERS`.
        values: ``longInvokeId``, ``localTime`` (year, month, day, hour, minute,
            second), ``utcOffsetMinutes``, ``dst``, ``activeEnergyPlus``/``Minus``
            (Wh), ``activePowerPlus``/``Minus`` (W), ``reactiveEnergyPlus``/``Minus``
            (varh), ``voltageDecivolt`` (3 x 0.1 V), ``currentCentiampere``
            (3 x 0.01 A), ``powerFactorMilli``, ``meterNumber``, ``deviceName``.
        key: Encryption key.
        system_title: 8 bytes.
        frame_counter: The frame counter (part of the GCM IV).

    Returns:
        The M-Bus frames of the telegram.

    Raises:
        ValueError: Unknown meter, missing or out-of-range values, bad key.

    """

def system_title(meter_name: str, serial: int) -> bytes:
    """An 8-byte system title like ``meter_name``'s own, ending in ``serial``."""
