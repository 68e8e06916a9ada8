"""mbuspico: read, decrypt and decode smart meters from Python.

Decodes the DLMS/COSEM push of the Austrian customer interfaces (Kaifa MA309M and
Sagemcom T210-D of Netz NÖ; the KSM-West operators TINETZ, IKB, Salzburg Netz, VKW)
in a Rust core::

    >>> import mbuspico
    >>> decoder = mbuspico.Decoder("36C66639E48A8CA4D6BC8B282A793BBB")
    >>> reading = decoder.decode(frame_bytes)          # doctest: +SKIP
    >>> reading["activeEnergyPlus"], reading["timestamp"]  # doctest: +SKIP
    (12937, '2021-09-27T09:47:15+02:00')
"""

from __future__ import annotations

from ._core import Decoder, Deframer, SerialReader, __version__
from .compat import to_mbuspico_json
from .errors import (
    ApduError,
    ChecksumError,
    CollisionError,
    DecodeError,
    DecryptionError,
    FrameError,
    MbusPicoError,
    NoResponseError,
    RecordError,
    SerialPortError,
)
from .master import MBusMaster
from .types import (
    DeframerStats,
    DsmrReading,
    DsmrValue,
    MbusReading,
    MbusRecord,
    ObisValue,
    Reading,
)

__all__ = [
    "ApduError",
    "ChecksumError",
    "CollisionError",
    "DecodeError",
    "Decoder",
    "DecryptionError",
    "Deframer",
    "DeframerStats",
    "DsmrReading",
    "DsmrValue",
    "FrameError",
    "MBusMaster",
    "MbusPicoError",
    "MbusReading",
    "MbusRecord",
    "NoResponseError",
    "ObisValue",
    "Reading",
    "RecordError",
    "SerialPortError",
    "SerialReader",
    "__version__",
    "to_mbuspico_json",
]
