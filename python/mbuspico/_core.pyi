"""Native core of mbuspico (Rust). Import from ``mbuspico``, not from here."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, final

from typing_extensions import Self

from .errors import DecodeError
from .types import (
    DeframerStats,
    DsmrReading,
    Identified,
    MbusReading,
    ReaderStats,
    Reading,
)

__all__ = [
    "METERS",
    "DecodeIter",
    "Decoder",
    "Deframer",
    "MBusLink",
    "SerialReader",
    "_Secret",
    "__version__",
    "decode_columns",
    "dsmr_crc16",
    "dsmr_encrypt",
    "encode_push",
    "mbus_application_reset",
    "mbus_classify",
    "mbus_more_records_follow",
    "mbus_parse_secondary",
    "mbus_req_ud2",
    "mbus_response_timeout",
    "mbus_secondary_address",
    "mbus_secondary_matches",
    "mbus_select",
    "mbus_set_primary_address",
    "mbus_snd_nke",
    "mbus_to_xml",
    "parse_hex",
    "profiles",
    "system_title",
]
__version__: str
METERS: list[str]

_Bytes = bytes | bytearray | memoryview | str

@final
class Decoder:
    """Decodes the telegrams of one meter: DLMS push, DSMR P1 or wired M-Bus.

    Accepts the Austrian M-Bus customer-interface push (Kaifa MA309M and Sagemcom
    T210-D of Netz NÖ, including the old Sagemcom firmware whose first frame says
    L = 0x01; the KSM-West operators TINETZ, IKB, Salzburg Netz, VKW), HDLC
    frames (Wiener Netze, Kärnten Netz, Netz Burgenland, Landis+Gyr E450/E570
    general block transfer with object list), a bare general-glo-ciphering APDU
    (``0xDB``, also holding a DSMR telegram), an unencrypted data-notification
    (``0x0F``), DSMR P1 telegrams and wired M-Bus frames.

    Standards: EN 13757-2 §5 (long frames), IEC 62056-46 (HDLC), IEC 62056-7-6
    (DLMS transport over M-Bus), IEC 62056-5-3 and the DLMS UA Blue Book
    (general-glo-ciphering, general block transfer, AES-128-GCM,
    data-notification), IEC 62056-6-2 (A-XDR data, units).

    The keys are never shown: ``repr()`` prints ``<redacted>`` and no exception
    message contains them.

    A decoder is immutable and safe to use from many threads at once
    (:meth:`decode_many` and :meth:`decode_iter` release the GIL while
    decoding). It pickles and copies (``copy.copy``, ``copy.deepcopy``) with its
    options and keys, e.g. to a ``ProcessPoolExecutor`` worker: the keys travel
    as :class:`_Secret` objects whose ``repr`` is masked, but the pickle's bytes
    contain them, so a pickled decoder must be kept like the key itself.
    """

    def __new__(
        cls,
        key: str | bytes | bytearray | _Secret | None = None,
        *,
        auth_key: str | bytes | bytearray | _Secret | None = None,
        protocol: Literal["auto", "dlms", "mbus", "dsmr"] = "auto",
        profile: str = "auto",
        tz: str | None = None,
        names: Mapping[str, str] | None = None,
        verify_crc: bool = True,
        verify_tag: bool = True,
        verify_checksum: bool = True,
    ) -> Self:
        """Create a decoder.

        Args:
            key: The meter's global unicast encryption key (GUEK) from the grid
                operator's portal: 32 hex digits (whitespace allowed) or 16 bytes.
                Needed for encrypted telegrams.
            auth_key: The global authentication key (GAK), 32 hex digits or 16
                bytes; needed only for telegrams with an authentication tag
                (security control 0x30). Given an ``auth_key`` (or a profile
                whose meter tags its telegrams), a telegram without a tag is
                refused (``DecryptionError``, kind ``missing_tag``): a tag
                stripped on the wire cannot pass as an untagged telegram.
            protocol: ``"auto"`` tells wired M-Bus (EN 13757-3) from DLMS by the
                CI-field (0x00-0x1F: DLMS transport) and P1 telegrams by their
                ``/``; ``"dlms"``, ``"mbus"`` or ``"dsmr"`` forces one.
            profile: A meter profile of :data:`mbuspico.profiles.PROFILES`
                (``"kaifa-ma309m-netznoe"``, ``"wienernetze-im350"``,
                ``"burgenland-e450"``, ...) or an ``MBUSPICO_DEVICE`` value
                (``"KAIFA_MA309M_NETZNOE"``): telegrams must then be framed and
                laid out as that meter sends them, and its protocol and time zone
                are the defaults. ``"auto"`` detects framing and layout from the
                bytes (:meth:`identify` tells which profiles fit).
            tz: The P1 meter's time zone (IANA name), for its timestamps; the
                profile's, else Europe/Amsterdam (Europe/Brussels,
                Europe/Luxembourg, Europe/Vilnius, Europe/Stockholm, ...).
            names: Names for OBIS codes of P1 telegrams (``{"0-1:24.2.3":
                "gas"}``), over the default table; see :func:`mbuspico.dsmr.load_names`.
            verify_crc: Raise ``ChecksumError`` on a P1 CRC mismatch (default);
                with False the reading says ``crc == "mismatch"``.
            verify_tag: Verify the GCM tag of authenticated telegrams (security
                control 0x30; default). False decrypts them without ``auth_key``
                and without checking the tag, for operators that do not hand
                out the authentication key; such readings are unauthenticated.
            verify_checksum: Raise ``ChecksumError`` when a wired M-Bus frame's
                checksum (8-bit sum, EN 13757-2 §5.4) does not match (default).
                False accepts it, e.g. for a published dump edited by hand;
                start bytes, L-fields and stop byte are still checked, and the
                M-Bus frames of DLMS pushes are always checked.

            Encrypted P1 frames (Luxembourg Smarty, Energienetze Steiermark) need
            ``key``; without ``auth_key`` the Smarty's public authentication key
            ``00112233445566778899AABBCCDDEEFF`` is used for the tag.

        Raises:
            ValueError: A key is not 32 hex digits or 16 bytes (the message does
                not repeat the value); an unknown profile, time zone or
                protocol, or one contradicting the profile; a profile with
                authenticated telegrams without ``auth_key`` (unless
                ``verify_tag=False``).
            TypeError: A key is neither str nor bytes-like.

        """

    @property
    def profile(self) -> str | None:
        """The meter profile's name; None with ``profile="auto"``."""

    @property
    def verify_tag(self) -> bool:
        """Whether GCM tags are verified."""

    @property
    def verify_checksum(self) -> bool:
        """Whether wired M-Bus frame checksums are verified."""

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle as ``(Decoder._restore, (options,))``, the keys as :class:`_Secret`."""

    @classmethod
    def _restore(cls, state: Mapping[str, Any], /) -> Self:
        """Create the decoder :meth:`__reduce__` describes (unpickling)."""

    def identify(self, data: _Bytes, /) -> Identified:
        """What a telegram is, and which meter profiles send telegrams like it.

        Decodes the telegram (so it needs the keys, and raises what
        :meth:`decode` raises) to learn its layout.

        Returns:
            ``protocol`` (``"dlms"``, ``"dsmr"``, ``"mbus"``), ``framing``
            (``"mbus"``, ``"hdlc"``, ``"hdlc+gbt"``, ``"p1"``,
            ``"p1-encrypted"``, ``"apdu"``), ``layout`` of a DLMS
            data-notification (``"obis-flat"``, ``"obis-nested"``,
            ``"wienernetze"``, ``"burgenland"``, ``"object-list"``; None
            otherwise) and ``profiles``, the matching profile names.

        """

    def decode(self, data: _Bytes, /) -> Reading | MbusReading | DsmrReading:
        """Decode one telegram.

        Args:
            data: The telegram: all its M-Bus frames (e.g. 282 bytes for a Netz NÖ
                push, 376 for a KSM-West three-phase push), a bare APDU, as bytes,
                bytearray, memoryview, or a str: a hex dump as :func:`parse_hex`
                reads it (``"68 4d 4d 68 …"``, ``"68:4d:…"``, ``"0x68, 0x4d, …"``,
                otb-iot's ``"ok:68/4d/…/xx"`` messages), or a P1 telegram's text
                when it starts with ``/``.

        Returns:
            The reading: MBusPico's field names (``timestamp``, ``lxTimestamp``,
            ``meterNumber``, ``activePowerPlus`` W, ``activeEnergyPlus`` Wh,
            ``voltageL1`` V, ``currentL1`` A, ``powerFactor`` as cos φ, …),
            ``systemTitle``, ``frameCounter``, and ``obis``: every value by OBIS
            code with its unit. See :class:`mbuspico.Reading`. For a wired M-Bus
            RSP_UD frame (no key needed): the header fields and ``records``,
            each with quantity, base unit and scaled value; see
            :class:`mbuspico.MbusReading` (EN 13757-3). For a P1 telegram
            (DSMR 2.2 to 5.0.2, e-MUCS, Smarty): header, CRC verdict, and every
            line by OBIS code with value, unit, name; see
            :class:`mbuspico.DsmrReading`.

        Raises:
            FrameError: Bad start, length or stop byte, input ending early, a
                segment missing or out of order, bytes after the telegram.
            ChecksumError: A frame's checksum does not match.
            ApduError: Malformed APDU or A-XDR data.
            RecordError: Malformed M-Bus data header or records.
            DecryptionError: No key for an encrypted telegram, no authentication
                key for a tagged one, tag mismatch, or a wrong key.
            HexError: ``data`` is a str that is no hex dump (``.offset`` is the
                character position).
            TypeError: ``data`` is not bytes-like or str.

            Every ``DecodeError`` has ``.offset``, the byte of ``data`` where the
            problem was found, and ``.kind``.

        """

    def decode_many(
        self,
        items: Iterable[_Bytes],
        /,
        *,
        errors: Literal["return", "skip", "raise"] = "return",
    ) -> list[Reading | MbusReading | DsmrReading | Exception]:
        """Decode many telegrams in one call, the GIL released while decoding.

        Args:
            items: Telegrams, each as :meth:`decode` takes it.
            errors: ``"return"`` puts the exception (a :class:`DecodeError`
                subclass, or ``TypeError`` for an item that is no telegram) in
                the failed telegram's place; ``"skip"`` leaves it out;
                ``"raise"`` raises it.

        Returns:
            The readings in input order (see :meth:`decode`), with exceptions
            in place under ``errors="return"``.

        Raises:
            DecodeError: Only with ``errors="raise"``.

        """

    def decode_iter(
        self,
        items: Iterable[_Bytes],
        /,
        *,
        errors: Literal["return", "skip", "raise"] = "return",
        batch: int = 1024,
    ) -> DecodeIter:
        """Readings of an iterable of telegrams, decoded lazily in batches.

        Takes ``batch`` telegrams at a time from ``items`` (a list, a
        generator, :func:`mbuspico.read_capture`), decodes them with the GIL
        released and yields their readings; ``errors`` as for
        :meth:`decode_many` (with ``"raise"`` the readings before the failing
        telegram are yielded first). Memory stays at one batch whatever the
        capture's size.

        Raises:
            ValueError: ``batch`` < 1 or an unknown ``errors``.

        """

    def apdu(self, data: _Bytes, /) -> bytes:
        """The decrypted APDU of a DLMS push telegram.

        The data-notification (tag ``0x0F``) that the general-glo-ciphering
        APDU (``0xDB``) carries, after its tag is verified (DLMS Green Book
        §9.3.5), or the APDU itself when the meter sends it in the clear: what
        "EVN raw" MQTT publishers send.

        Args:
            data: One DLMS telegram, as :meth:`decode` accepts it.

        Returns:
            The APDU bytes (for a Kaifa MA309M push, 0x0F, invoke id, date-time
            and the structure of OBIS values).

        Raises:
            FrameError, ChecksumError, ApduError, DecryptionError: As
                :meth:`decode`, with the byte offset.

        """

    @property
    def has_key(self) -> bool:
        """Whether an encryption key is set."""

    @property
    def has_auth_key(self) -> bool:
        """Whether an authentication key is set."""

@final
class DecodeIter:
    """The iterator :meth:`Decoder.decode_iter` returns."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Reading | MbusReading | DsmrReading | Exception: ...

@final
class Deframer:
    """Finds verified telegrams in a byte stream, whatever its chunking.

    Feed it bytes as they arrive (serial port, ser2net TCP, an MQTT serial bridge,
    a capture file); it returns each telegram once its last byte has arrived and
    every frame has passed its length, stop-byte and checksum checks and its DLMS
    transport segments are complete and in order. Garbage, broken frames and
    incomplete telegrams are skipped and counted in :attr:`stats`; it never raises
    on bad data.

    Safe to share between threads: each call has the deframer to itself, so
    bytes fed from several threads interleave call by call, in the order the
    calls get it (never within one call). It pickles and copies: the copy keeps
    the bytes of a partial telegram and the counters, and goes on from there.
    """

    def __new__(cls, *, protocol: Literal["auto", "dlms", "mbus", "dsmr"] = "auto") -> Self:
        """Create an empty deframer.

        Args:
            protocol: ``"dsmr"`` finds P1 telegrams (``/`` … ``!CRC``, CRC
                verified) and Smarty ``DB 08`` frames; anything else finds M-Bus
                long frames (DLMS push telegrams and EN 13757-3 frames).

        """

    def feed(self, data: _Bytes, /) -> list[bytes]:
        """Add received bytes.

        Args:
            data: The next bytes of the stream (or hex text).

        Returns:
            The telegrams these bytes completed (raw frames, ready for
            :meth:`Decoder.decode`), oldest first; often empty.

        """

    def reject(self, telegram: bytes, /) -> list[bytes]:
        """Give back an encrypted P1 frame that did not decrypt.

        Its first byte is skipped and the rest scanned again, so a frame that
        lost a byte on the line does not take the next frame's start with it.
        Returns the telegrams that completes. No effect for other telegrams.
        """

    def finish(self) -> None:
        """End the stream: bytes still buffered are counted as skipped."""

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a telegram."""

    @property
    def stats(self) -> DeframerStats:
        """Counters (see :class:`mbuspico.DeframerStats`)."""

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle as ``(Deframer._restore, (state,))``: buffered bytes and counters."""

    @classmethod
    def _restore(cls, state: Mapping[str, Any], /) -> Self:
        """Create the deframer :meth:`__reduce__` describes (unpickling)."""

@final
class _Secret:
    """Key bytes whose ``repr`` is masked: how a pickled :class:`Decoder` holds its keys.

    Pickles as its 16 bytes, so a pickle holding one must be kept like the key.
    """

    def __new__(cls, key: str | bytes | bytearray, /) -> Self:
        """Wrap a key (32 hex digits or 16 bytes).

        Raises:
            ValueError: Not 32 hex digits or 16 bytes (the value is not shown).
            TypeError: Neither str nor bytes-like.

        """

    def __reduce__(self) -> tuple[type[_Secret], tuple[bytes]]:
        """Pickle as ``(_Secret, (key bytes,))``."""

    def __eq__(self, other: object, /) -> bool:
        """Whether ``other`` holds the same key."""

    def __hash__(self) -> int:
        """The same for every secret (it reveals nothing)."""

def parse_hex(text: str, /) -> bytes:
    """The bytes of a hex dump, as :meth:`Decoder.decode` reads text.

    Accepts contiguous digits (``"684d4d68"``), pairs separated by whitespace,
    ``:``, ``/``, ``-`` or ``,`` in any mix (``"68 4d 4d 68"`` as libmbus prints,
    ``"68:4D:4D:68"``), ``0x``/``0X`` prefixes (``"0x68, 0x4d"``), and otb-iot's
    serial-over-MQTT status messages (``"ok:68/4d/…"``; several in order, their
    bytes joined; the ``xx`` that ends the last one, "buffer empty", is
    skipped; otb-iot ``docs/source/serial_over_mqtt.rst``).

    Raises:
        HexError: A character that fits none of these (kind ``"invalid_hex"``),
            or a group of digits with an odd count (kind ``"odd_hex_digits"``);
            ``.offset`` is the character position.

    """

@final
class SerialReader:
    """Reads and decodes telegrams from a serial port.

    DLMS push (M-Bus or HDLC framed), wired M-Bus (EN 13757-3) and DSMR P1.
    Opens ``port`` raw with 1 stop bit (2400 Bd 8E1 by
    default: the Netz NÖ M-Bus customer interface; use an M-Bus *slave* adapter
    such as a TSS721 board). Iterate over it, or call :meth:`read`, to get
    readings, the same dicts as :meth:`Decoder.decode`. A reading is returned as
    soon as the telegram's last byte arrives. The GIL is released while waiting,
    and Ctrl-C interrupts a wait within about 50 ms.

    Bad telegrams (wrong key, corrupt bytes) never raise: they are counted in
    :attr:`stats` and logged on the ``mbuspico`` logger. The port failing (an
    adapter unplugged) raises :class:`mbuspico.SerialPortError` (an ``OSError``),
    or with ``reconnect=True`` is retried with backoff (0.25 s doubling to 30 s).

    With ``reconnect=False`` (the default) a lost port stays lost: the read that
    finds it gone raises :class:`mbuspico.SerialPortError`, and so does every
    later :meth:`read` or iteration (naming the port and that it was lost),
    until :meth:`close`; the reader never reopens it by itself. Open a new
    reader, or pass ``reconnect=True``, to read on.
    """

    def __new__(
        cls,
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
    ) -> Self:
        """Open ``port``.

        Args:
            port: Device path, e.g. ``/dev/ttyUSB0``, ``/dev/ttyAMA0``, or the
                path ``mbuspico simulate`` prints.
            key: The meter's encryption key, 32 hex digits or 16 bytes (None only
                for unencrypted meters).
            auth_key: Authentication key, for telegrams with a tag.
            protocol: ``"dsmr"`` for a P1 port (DSMR telegrams, Smarty
                frames); ``"dlms"`` or ``"mbus"``: M-Bus and HDLC framing (DLMS
                push, EN 13757-3); ``"auto"`` (unless a profile says which):
                looks for both until the first verified telegram (an M-Bus or
                HDLC frame by its checksum, a P1 telegram by its CRC, a Smarty
                frame once it decodes), then keeps to that framing
                (:attr:`framing`); the bytes the other one took are counted as
                skipped.
            profile: A meter profile (:data:`mbuspico.profiles.PROFILES`, e.g.
                ``"wienernetze-im350"``, or an ``MBUSPICO_DEVICE`` value): its
                interface settings, protocol and time zone become the defaults,
                and telegrams must look as that meter sends them (see
                :class:`Decoder`). ``"auto"``: decode whatever comes.
            baudrate: Baud rate; default the profile's, else 2400 for M-Bus,
                115200 for P1 (DSMR 2.2/3.0 meters: 9600 with ``parity="even"``
                and ``bytesize=7``).
            parity: ``"even"`` (default for M-Bus, 8E1), ``"none"`` (default for
                P1, 8N1) or ``"odd"``; default the profile's.
            bytesize: Data bits per character: 8, or 7 for the 9600 Bd 7E1 P1
                port of DSMR 2.2/3.0 meters (P1 Companion Standard 3.0 §4.2);
                with 7, bit 7 of every received byte is cleared. Default the
                profile's, else 8.
            tz: The P1 meter's time zone, for its timestamps (default the
                profile's, else Europe/Amsterdam).
            verify_tag: False decrypts authenticated telegrams without checking
                their tag (see :class:`Decoder`).
            names: OBIS code → name entries over the default code table (see
                :func:`mbuspico.dsmr.load_names`).
            apdu: Add the decrypted APDU (``bytes``, see :meth:`Decoder.apdu`)
                to DLMS readings under ``"apdu"``.
            timeout: Seconds :meth:`read` and iteration wait for a reading
                before giving up (``None``: forever).
            reconnect: Retry opening the port when it fails instead of raising.

        Raises:
            SerialPortError: The port cannot be opened (and ``reconnect`` is false).
            ValueError: Bad key, parity, byte size, baud rate, timeout or
                profile; a profile with authenticated telegrams without
                ``auth_key`` (unless ``verify_tag=False``).

        """

    def read(self, timeout: float | None = None) -> Reading | MbusReading | DsmrReading | None:
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

    def __next__(self) -> Reading | MbusReading | DsmrReading:
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
    def baudrate(self) -> int:
        """The line speed the port was opened with (the profile's by default)."""

    @property
    def parity(self) -> Literal["even", "odd", "none"]:
        """The parity the port was opened with."""

    @property
    def bytesize(self) -> Literal[7, 8]:
        """Data bits per character the port was opened with."""

    @property
    def profile(self) -> str | None:
        """The meter profile's name; None without one (``"auto"``)."""

    @property
    def connected(self) -> bool:
        """Whether the port is open right now."""

    @property
    def stats(self) -> ReaderStats:
        """Counters of telegrams, skipped bytes and decoding failures."""

    @property
    def framing(self) -> Literal["mbus", "dsmr"] | None:
        """The framing the telegrams come in.

        ``"mbus"`` (M-Bus or HDLC frames) or ``"dsmr"`` (P1); None while
        ``protocol="auto"`` has found no telegram.
        """

    @property
    def seen(self) -> dict[str, int]:
        """What the port delivered, to tell what is on the line when no telegram comes.

        ``bytes`` received, ``text`` of them printable ASCII, tab or line ends,
        ``text7`` of them the same with bit 7 set (7-bit text with a parity bit
        read as 8 data bits, as a DSMR 2.2/3.0 port at 7E1 sends).
        """

    @property
    def last_error(self) -> DecodeError | None:
        """The error of the last telegram that did not decode (a wrong key, say)."""

def encode_push(
    meter_name: str,
    values: Mapping[str, Any],
    *,
    key: str | bytes | bytearray,
    system_title: bytes,
    frame_counter: int,
    auth_key: str | bytes | bytearray | None = None,
) -> bytes:
    """Build one push telegram exactly as ``meter_name`` sends it (for the simulator).

    Args:
        meter_name: One of :data:`METERS`.
        values: ``longInvokeId``, ``localTime`` (year, month, day, hour, minute,
            second), ``utcOffsetMinutes``, ``dst``, ``activeEnergyPlus``/``Minus``
            (Wh), ``activePowerPlus``/``Minus`` (W), ``reactiveEnergyPlus``/``Minus``
            (varh), ``voltageDecivolt`` (3 x 0.1 V; the Landis+Gyr meters send
            whole volts, truncated), ``currentCentiampere`` (3 x 0.01 A),
            ``powerFactorMilli``, ``meterNumber``, ``deviceName``; optional
            (default 0): ``reactivePowerPlus``/``Minus`` (var, Wiener Netze and
            Steiermark), ``phaseAngle`` (3 raw values, Burgenland).
        key: Encryption key.
        system_title: 8 bytes.
        frame_counter: The frame counter (part of the GCM IV).
        auth_key: Authentication key of the GCM tag; required for the meters
            with security control 0x30 (``burgenland-e450``, ``steiermark-e450``),
            ignored by the others.

    Returns:
        The telegram: M-Bus frames, one HDLC frame, or HDLC frames carrying
        general block transfer blocks (``steiermark-e450``).

    Raises:
        ValueError: Unknown meter, missing or out-of-range values, bad key,
            missing ``auth_key``.

    """

def system_title(meter_name: str, serial: int) -> bytes:
    """An 8-byte system title like ``meter_name``'s own, ending in ``serial``."""

def mbus_to_xml(
    frames: list[_Bytes], /, normalized: bool = False, verify_checksum: bool = True
) -> str:
    """XML as libmbus writes it for one slave's telegrams; see :func:`mbuspico.mbus.to_xml`."""

@final
class MBusLink:
    """The master's side of a wired M-Bus link on a serial port (EN 13757-2).

    Sends request frames and receives one answer frame at a time: the single
    character ``E5``, a short frame, or a long frame (checked with the
    EN 13757-2 §5 length, checksum and stop-byte rules). Waiting releases the
    GIL in slices of at most 50 ms; Ctrl-C raises ``KeyboardInterrupt`` within
    that time. Frames going from master to slave (PRM bit set: the echo of our
    own request from a level converter) are discarded, as libmbus does. Bytes
    that are not one valid frame, or bytes following a valid frame, are a
    collision (several slaves answering at once) and raise
    :class:`mbuspico.errors.CollisionError`.
    """

    def __new__(
        cls,
        port: str,
        *,
        baudrate: int = 2400,
        parity: str = "even",
        timeout: float | None = None,
    ) -> Self:
        """Open ``port`` raw, 8 data bits, 1 stop bit.

        Args:
            port: Device path of the M-Bus level converter, e.g. ``/dev/ttyUSB0``.
            baudrate: Line speed in baud (2400 is the M-Bus default).
            parity: ``"even"`` (8E1, EN 13757-2 §4), ``"none"`` or ``"odd"``.
            timeout: Seconds a slave may stay silent before its first byte and
                between bytes. ``None``: libmbus's value for the baud rate
                (300 Bd 1.3 s, 600 0.8 s, 1200 0.5 s, 2400/4800 0.3 s, faster
                0.2 s). The time to send the last request (11 bits per byte)
                is added to the wait for the first byte.

        Raises:
            SerialPortError: The port cannot be opened.
            ValueError: Bad parity, baud rate or timeout.

        """

    def send(self, data: _Bytes, /) -> None:
        """Send request bytes; input still buffered is discarded first.

        Raises:
            SerialPortError: The port failed.
            ValueError: The link is closed.

        """

    def receive(self, timeout: float | None = None) -> bytes | None:
        """Receive one frame.

        Args:
            timeout: Seconds of silence allowed; ``None``: the link's timeout.

        Returns:
            The frame (the single byte ``E5``, 5 bytes for a short frame,
            ``68 L L 68 … 16`` for a long one), or ``None`` when nothing arrived
            in time.

        Raises:
            CollisionError: Garbage, an incomplete frame, or bytes after a frame.
            SerialPortError: The port failed or vanished.
            ValueError: The link is closed.
            KeyboardInterrupt: Ctrl-C while waiting.

        """

    def transact(self, data: _Bytes, /, timeout: float | None = None) -> bytes | None:
        """Send a request and receive the answer (:meth:`send`, :meth:`receive`)."""

    @property
    def baudrate(self) -> int:
        """The line speed in baud; setting it reconfigures the open port."""

    @baudrate.setter
    def baudrate(self, value: int) -> None: ...
    @property
    def timeout(self) -> float:
        """Seconds of silence allowed before and between the bytes of an answer."""

    @property
    def port(self) -> str:
        """The device path."""

    def close(self) -> None:
        """Close the port; later use raises ``ValueError``."""

    def __enter__(self) -> Self:
        """Return the link."""

    def __exit__(self, *args: object) -> bool:
        """Close the port."""

def mbus_snd_nke(address: int) -> bytes:
    """SND_NKE ``10 40 A CS 16``, the link reset (EN 13757-2 §5.5); 5 bytes."""

def mbus_req_ud2(address: int, *, fcb: bool = False) -> bytes:
    """REQ_UD2 ``10 5B A CS 16`` (``7B`` with ``fcb``), FCV set (EN 13757-2 §5.5); 5 bytes."""

def mbus_application_reset(address: int) -> bytes:
    """Application reset: SND_UD ``68 03 03 68 53 A 50 CS 16`` (EN 13757-3 CI 0x50)."""

def mbus_select(secondary_address: str) -> bytes:
    """Selection: SND_UD ``68 0B 0B 68 73 FD 52 <8 bytes> CS 16`` (EN 13757-3 CI 0x52).

    Args:
        secondary_address: ``IIIIIIIIMMMMVVDD`` (16 hex digits, manufacturer in
            wire byte order, ``F`` = wildcard), ``IIIIIIII`` (the rest
            wildcards), or ``IIIIIIII`` + 3 manufacturer letters [+ ``VVDD``].

    Raises:
        ValueError: Not a secondary address.

    """

def mbus_set_primary_address(address: int, new_address: int) -> bytes:
    """SND_UD ``68 06 06 68 53 A 51 01 7A N CS 16``: set the primary address to N.

    Raises:
        ValueError: ``new_address`` above 250.

    """

def mbus_parse_secondary(secondary_address: str) -> str:
    """The canonical 16-hex-digit form of a secondary address (upper case).

    Raises:
        ValueError: Not a secondary address (see :func:`mbus_select`).

    """

def mbus_secondary_matches(pattern: str, secondary_address: str) -> bool:
    """Whether a slave with ``secondary_address`` answers a selection of ``pattern``.

    ``F`` digits of the identification number and ``FF`` bytes of manufacturer,
    version and medium are wildcards (EN 13757-3).

    Raises:
        ValueError: Either is not a secondary address.

    """

def mbus_classify(data: _Bytes, /) -> tuple[str, int]:
    """What the frame at the start of ``data`` is, and its length in bytes.

    Returns:
        ``("ack", 1)``, ``("response", n)`` (RSP_UD long frame), ``("echo", n)``
        (a master-to-slave frame), ``("other", n)`` (any other valid frame),
        ``("incomplete", 0)`` (``data`` ends inside a frame) or
        ``("invalid", 0)``.

    """

def mbus_secondary_address(frame: _Bytes, /) -> str | None:
    """The ``IIIIIIIIMMMMVVDD`` in the header of a RSP_UD with CI 0x72, else ``None``.

    Raises:
        FrameError: ``frame`` is not a valid frame.

    """

def mbus_more_records_follow(frame: _Bytes, /) -> bool:
    """Whether a RSP_UD (CI 0x72) ends with DIF 0x1F, "more records follow".

    Walks the data records' structure only (EN 13757-3 DIF/VIF), not the values.

    Raises:
        FrameError: ``frame`` is not a valid frame.

    """

def mbus_response_timeout(baudrate: int) -> float:
    """The response timeout of libmbus at ``baudrate``, in seconds (2400 Bd: 0.3)."""

def dsmr_crc16(data: bytes, /) -> int:
    """CRC-16/ARC of ``data`` (DSMR 5.0.2 §6.2): from ``/`` through ``!`` of a telegram."""

def dsmr_encrypt(
    plaintext: bytes,
    /,
    *,
    key: str | bytes | bytearray,
    auth_key: str | bytes | bytearray,
    system_title: bytes,
    frame_counter: int,
) -> bytes:
    """Encrypt a P1 telegram as the Luxembourg Smarty does (for the simulator).

    General-glo-ciphering frame ``DB 08 <system title> 82 <len> 30 <frame
    counter> <ciphertext> <12-byte tag>``, AES-128-GCM, AAD = 0x30 ‖ auth_key
    (Luxembourg Smarty P1 specification v1.1.3 §3.2.5).

    Raises:
        ValueError: A key is not 16 bytes or the system title not 8.

    """

def profiles() -> list[dict[str, Any]]:
    """The meter profiles as dicts (see :mod:`mbuspico.profiles`)."""

def decode_columns(
    decoder: Decoder,
    items: Iterable[_Bytes],
    /,
    *,
    errors: Literal["skip", "raise"] = "skip",
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Decode a batch of telegrams into columns (``to_pandas(..., decoder=)``).

    The telegrams are decoded by up to four threads with the GIL released and
    their values sorted into typed columns in Rust; only the result becomes
    Python objects. Wired M-Bus readings are returned as dicts.

    Args:
        decoder: Decodes the telegrams (its keys and options).
        items: Telegrams, what :meth:`Decoder.decode` accepts.
        errors: ``"skip"`` counts the items that do not decode and leaves them
            out; ``"raise"`` raises the first.
        columns: The names of the columns to build (default all).

    Returns:
        ``{"rows", "timestamp", "naive_rows", "naive_local", "naive_first",
        "columns", "mbus", "skipped", "no_timestamp"}``: ``rows`` readings in
        item order; ``timestamp`` their meter clock as ``bytes`` of int64
        little-endian microseconds since 1970-01-01 UTC, -2**63 (numpy's
        ``NaT``) where there is none, the text is no date, or the clock came
        without UTC offset (IEC 62056-6-2 §4.1.6.1 deviation 0x8000, the
        Landis+Gyr E450): those rows are in ``naive_rows`` (int64), their
        local time in ``naive_local`` (int64 µs), the first such text in
        ``naive_first``. ``columns``: ``(name, unit, first_row, kind, data,
        other_unit)`` in order of first appearance, the MBusPico fields
        (``protocol``, ``meterNumber``, ``lxTimestamp`` s, ``activePowerPlus``
        W, …, ``systemTitle``, ``frameCounter``) then one per OBIS code
        (IEC 62056-6-1): ``kind`` ``"int64"``/``"float64"`` with ``bytes`` of
        ``rows`` little-endian numbers (NaN where missing; int64 only with no
        value missing), ``"text"`` with ``(texts, codes)`` (distinct ``str``
        and int64 indices into them, -1 where missing), ``"object"`` with a
        list (bools, lists, mixed types), ``"empty"`` with None; ``unit`` the
        first unit sent, ``other_unit`` a second, different one (or None).
        ``mbus``: ``(row, reading dict)`` of wired M-Bus readings (no values in
        ``columns``). ``skipped``: items left out; ``no_timestamp``: rows of
        readings without one.

    Raises:
        DecodeError: With ``errors="raise"``, the first telegram that does not
            decode (``offset``: the byte where it failed); TypeError for an
            item that is no telegram.
        ValueError: An unknown ``errors``.

    """
