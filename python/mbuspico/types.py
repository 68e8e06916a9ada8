"""Shapes of the dicts mbuspico returns, for type checkers and readers."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

__all__ = [
    "DeframerStats",
    "DsmrMbusDevice",
    "DsmrReading",
    "DsmrValue",
    "Identified",
    "MbusError",
    "MbusPicoFields",
    "MbusReading",
    "MbusRecord",
    "Number",
    "ObisValue",
    "ReaderStats",
    "Reading",
]

Number = Union[int, float]
"""Scaled values: ``int`` when the scaler is ≥ 0, ``float`` otherwise."""


class ObisValue(TypedDict):
    """One value of :attr:`Reading.obis`."""

    value: Any
    """The scaled value (int or float), text (str: printable octets, ISO 8601
    date-time, or lower-case hex of binary octets), bool, list, or None."""
    unit: Optional[str]
    """Unit symbol: ``"Wh"``, ``"W"``, ``"varh"``, ``"V"``, ``"A"``, …; None when
    dimensionless (IEC 62056-6-2 §4.3.2 unit enumeration)."""


class MbusPicoFields(TypedDict):
    """MBusPico's field names, shared by DLMS and P1 readings.

    Fields the meter does not send are None (KSM-West meters send no power
    factor; Netz NÖ meters no reactive energy). P1 values are converted from
    kW/kWh to W/Wh; a P1 meter that sends no total energy gets the sum of its
    tariff registers (1-0:1.8.1, 1.8.2, …).
    """

    timestamp: Optional[str]
    """The meter clock, ISO 8601 local time with the meter's UTC offset,
    e.g. ``"2021-09-27T09:47:15+02:00"`` (no offset when the meter sends none)."""
    lxTimestamp: Optional[int]
    """Loxone time: local wall-clock seconds since 2009-01-01 00:00."""
    meterNumber: Optional[str]
    """0-0:96.1.0.255 (DLMS: or the last element of the Netz NÖ layout; P1: or
    the equipment identifier 0-0:96.1.1, its hex decoded to text)."""
    activePowerPlus: Optional[Number]
    """+P, 1-0:1.7.0, W."""
    activePowerMinus: Optional[Number]
    """-P, 1-0:2.7.0, W."""
    activeEnergyPlus: Optional[Number]
    """+A, 1-0:1.8.0, Wh."""
    activeEnergyMinus: Optional[Number]
    """-A, 1-0:2.8.0, Wh."""
    reactiveEnergyPlus: Optional[Number]
    """+R, 1-0:3.8.0, varh."""
    reactiveEnergyMinus: Optional[Number]
    """-R, 1-0:4.8.0, varh."""
    voltageL1: Optional[Number]
    """1-0:32.7.0, V."""
    voltageL2: Optional[Number]
    """1-0:52.7.0, V."""
    voltageL3: Optional[Number]
    """1-0:72.7.0, V."""
    currentL1: Optional[Number]
    """1-0:31.7.0, A."""
    currentL2: Optional[Number]
    """1-0:51.7.0, A."""
    currentL3: Optional[Number]
    """1-0:71.7.0, A."""
    powerFactor: Optional[Number]
    """cos φ, 1-0:13.7.0, e.g. 0.968; signed."""
    systemTitle: Optional[str]
    """System title of the general-glo-ciphering APDU, 16 lower-case hex digits
    (None for a telegram sent in the clear)."""
    frameCounter: Optional[int]
    """Frame counter (invocation counter) of the APDU."""


class Reading(MbusPicoFields):
    """A decoded DLMS push, with MBusPico's field names."""

    protocol: Literal["dlms"]
    obis: Dict[str, ObisValue]
    """Every value by OBIS code ``A-B:C.D.E`` (``*F`` only when F ≠ 255), in the
    order the meter sent them."""


class MbusRecord(TypedDict):
    """One data record of a wired M-Bus telegram (EN 13757-3 §6.3)."""

    function: str
    """``instantaneous``, ``maximum``, ``minimum``, ``error`` (value during error
    state), ``manufacturer_specific`` or ``more_records_follow`` (DIF 0x0F/0x1F
    data, value is hex); fixed data structure: ``actual`` or ``stored``."""
    storageNumber: int
    """0 for the current value, else a stored (historic) value."""
    tariff: int
    subunit: int
    quantity: Optional[str]
    """``Energy``, ``Volume``, ``Flow temperature``, … (libmbus's normalized
    names), the text of a plain-text VIF, or None when the VIF is unknown."""
    unit: Optional[str]
    """Base unit: ``Wh``, ``J``, ``m^3``, ``kg``, ``W``, ``J/h``, ``m^3/h``,
    ``°C``, ``K``, ``bar``, ``s``, ``V``, ``A``; None for counts, codes, dates, text."""
    value: Any
    """Scaled to ``unit`` (int or float); ISO 8601 str for dates; str for text
    and hex data; None for an empty or invalid field."""
    raw: str
    """The record's bytes (DIF to last data byte), hex."""


class MbusError(TypedDict):
    """An application error (CI 0x70, EN 13757-3 Table 5)."""

    code: int
    text: str


class MbusReading(TypedDict):
    """A decoded wired M-Bus telegram (``protocol == "mbus"``)."""

    protocol: Literal["mbus"]
    control: int
    """C-field (0x08 RSP_UD)."""
    address: int
    """A-field (primary address; 0xFD after secondary selection)."""
    ci: int
    """CI-field (0x72 variable data, 0x73 fixed, 0x70 application error, …)."""
    id: Optional[str]
    """Identification number, 8 digits for BCD (hex letters if not BCD)."""
    manufacturer: Optional[str]
    """Three-letter FLAG code, e.g. ``KAM``."""
    version: Optional[int]
    productName: Optional[str]
    medium: Optional[str]
    """Device type, e.g. ``Heat: Outlet``, ``Water``."""
    accessNumber: Optional[int]
    status: Optional[int]
    signature: Optional[int]
    records: List[MbusRecord]
    moreRecordsFollow: bool
    """DIF 0x1F ended the telegram: request the next one."""
    error: Optional[MbusError]


class DsmrValue(TypedDict):
    """One line of a P1 telegram (DSMR 5.0.2 §6.12 table 6-3)."""

    value: Any
    """float for decimals (``1.001``), int for integers and counts, str for
    octet strings as sent (equipment ids, ``0002`` tariff, hex texts) and ISO
    8601 timestamps, a list for multi-value lines (power failure log: ``[time,
    duration, unit]`` entries), or None for ``()`` and placeholders."""
    unit: Optional[str]
    """As sent: ``kWh``, ``kW``, ``V``, ``A``, ``m3``, ``GJ``, ``s``, …"""
    name: Optional[str]
    """From the name table, e.g. ``electricity_used_tariff_1``; None if unknown."""
    timestamp: Optional[str]
    """The line's own time (M-Bus readings, peak demand), ISO 8601 with offset."""


class DsmrMbusDevice(TypedDict):
    """A device on an M-Bus channel of the meter (gas, water, heat)."""

    deviceType: Optional[int]
    """EN 13757-3 device type: 3 gas, 4 heat, 7 water, …"""
    equipmentId: Optional[str]
    value: Any
    unit: Optional[str]
    timestamp: Optional[str]
    valvePosition: Optional[int]


class DsmrReading(MbusPicoFields):
    """A decoded DSMR P1 telegram (``protocol == "dsmr"``).

    Besides the telegram's own lines it carries MBusPico's field names
    (:class:`MbusPicoFields`), so a P1 meter's reading has the shape of a DLMS
    push's (DSMR P1 Companion Standard 5.0.2 §6.12 for the OBIS codes).
    """

    protocol: Literal["dsmr"]
    header: str
    """The identification line without ``/``, e.g. ``ISK5\\2M550T-1013``."""
    crc: Literal["ok", "missing", "mismatch"]
    """``missing`` for DSMR 2.2/3.0 (no CRC); ``mismatch`` only with ``verify_crc=False``."""
    lineEndings: Literal["crlf", "lf"]
    """``lf`` for a re-saved capture; its CRC was checked over the CR LF form."""
    obis: Dict[str, DsmrValue]
    """Every line by OBIS code ``A-B:C.D.E``, in telegram order."""
    mbus: Dict[str, DsmrMbusDevice]
    """M-Bus devices by channel number (``"1"``, ``"2"``, …)."""
    unknownLines: List[str]
    """Lines that are not COSEM lines, kept as sent."""


class DeframerStats(TypedDict):
    """Counters of a :class:`mbuspico.Deframer`."""

    telegrams: int
    """Telegrams handed out."""
    bytes_skipped: int
    """Bytes not part of any telegram handed out."""
    bad_checksums: int
    """Frame candidates whose checksum failed."""
    incomplete_telegrams: int
    """Telegrams dropped because a segment was missing or out of order."""
    shared_flags: int
    """HDLC flags that closed one frame and opened the next (in both
    telegrams): bytes in telegrams + ``bytes_skipped`` = bytes fed +
    ``shared_flags``."""


class ReaderStats(DeframerStats):
    """Counters of a :class:`mbuspico.SerialReader`."""

    readings: int
    """Readings returned."""
    decode_errors: int
    """Verified telegrams that did not decode (malformed APDU)."""
    decryption_errors: int
    """Telegrams that failed decryption: wrong or missing key, tag mismatch."""
    reconnects: int
    """Times the port was reopened after failing."""


class Identified(TypedDict):
    """What :meth:`mbuspico.Decoder.identify` found out about a telegram."""

    protocol: Literal["dlms", "dsmr", "mbus"]
    framing: Literal["mbus", "hdlc", "hdlc+gbt", "p1", "p1-encrypted", "apdu"]
    """How the telegram is framed on the wire (``apdu``: a bare APDU)."""
    layout: Optional[
        Literal["obis-flat", "obis-nested", "wienernetze", "burgenland", "object-list"]
    ]
    """Layout of a DLMS data-notification (``shared/notes/dlms.md`` §4); None
    for DSMR and M-Bus."""
    profiles: List[str]
    """Names of the meter profiles (:data:`mbuspico.profiles.PROFILES`) that
    send telegrams like it."""
