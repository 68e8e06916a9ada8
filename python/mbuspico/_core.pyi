"""Native core of mbuspico (Rust). Import from ``mbuspico``, not from here."""

from typing import final

from typing_extensions import Self

from .types import DeframerStats, Reading

__all__ = ["Decoder", "Deframer", "__version__"]
__version__: str

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
        """Counters: ``telegrams``, ``bytes_skipped``, ``bad_checksums``, ``frames_dropped``."""
