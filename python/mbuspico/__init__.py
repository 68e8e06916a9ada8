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

from ._core import Decoder, Deframer, SerialReader, __version__
from .errors import (
    ApduError,
    ChecksumError,
    CollisionError,
    DecodeError,
    DecryptionError,
    FrameError,
    HexError,
    MbusPicoError,
    NoResponseError,
    RecordError,
    SerialPortError,
)

# typing itself costs milliseconds to import; type checkers treat this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import aio as aio
    from . import dsmr as dsmr
    from . import history as history
    from . import mbus as mbus
    from . import profiles as profiles
    from . import serve as serve
    from . import simulate as simulate
    from .capture import Capture, read_capture
    from .compat import to_mbuspico_json
    from .frames import to_pandas
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

# The rest loads on first use, so "import mbuspico" costs only the Rust core and
# the exceptions (the services' modules, logging, re and typing stay unloaded).
_LAZY = {
    "Capture": "capture",
    "read_capture": "capture",
    "to_mbuspico_json": "compat",
    "to_pandas": "frames",
    "MBusMaster": "master",
    "DeframerStats": "types",
    "DsmrReading": "types",
    "DsmrValue": "types",
    "MbusReading": "types",
    "MbusRecord": "types",
    "ObisValue": "types",
    "Reading": "types",
}


# Submodules loaded on first use, as users type them after "import mbuspico":
# mbuspico.aio imports asyncio, mbuspico.serve the service's modules.
_SUBMODULES = ("aio", "dsmr", "history", "mbus", "profiles", "serve", "simulate")


def __getattr__(name: str) -> "Any":
    """Import the module behind a lazily loaded name (PEP 562)."""
    if name in _SUBMODULES:
        from importlib import import_module

        return import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'mbuspico' has no attribute {name!r}"
        raise AttributeError(msg)
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    """The public names, including those not loaded yet."""
    return sorted([*__all__, *_SUBMODULES])


__all__ = [
    "ApduError",
    "Capture",
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
    "HexError",
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
    "read_capture",
    "to_mbuspico_json",
    "to_pandas",
]
