"""Wired M-Bus (EN 13757-2/-3): libmbus-compatible XML, and the master.

Decoding itself is :meth:`mbuspico.Decoder.decode`, which tells M-Bus telegrams
from DLMS by the CI-field (or ``Decoder(protocol="mbus")``). This module adds
what tools built on libmbus expect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Union

from . import _core

__all__ = ["record_name", "to_xml"]

_Frame = Union[bytes, bytearray, memoryview, str]
_NAME = re.compile(r"[^A-Za-z0-9_]+")


def record_name(record: Mapping[str, Any]) -> str:
    """A wired M-Bus record's name: ``<quantity>_<storage>_<tariff>_<subunit>`` in snake case.

    ``energy_0_0_0`` for the current energy register (EN 13757-3 §6.3: storage
    number, tariff and subunit of the DIF/DIFE chain), ``volume_1_0_0`` for a
    stored volume. The names the CSV, Graphite, InfluxDB and MQTT sinks and the
    history (:mod:`mbuspico.history`) give wired M-Bus values.
    """
    quantity = _NAME.sub("_", (record.get("quantity") or "value").lower()).strip("_")
    return (
        f"{quantity}_{record.get('storageNumber', 0)}_{record.get('tariff', 0)}"
        f"_{record.get('subunit', 0)}"
    )


def to_xml(
    frames: _Frame | Sequence[_Frame], normalized: bool = False, *, verify_checksum: bool = True
) -> str:
    """Return libmbus's XML for the telegrams of one slave.

    The same text libmbus's ``mbus_frame_xml`` (``normalized=False``: libmbus's
    unit descriptions and raw values, as ``mbus-serial-request-data`` prints) or
    ``mbus_frame_xml_normalized`` (``normalized=True``: quantity, base unit and
    scaled value, as ``mbus-serial-request-data -n`` / ``mbus_parse_hex -n``)
    produce. Byte-identical to libmbus on all 76 frames of its test corpus;
    deliberate differences are listed in ``tests/data/libmbus/KNOWN_DIFFERENCES.md``.

    Args:
        frames: One RSP_UD long frame, or the frames of a multi-telegram
            readout in order (records numbered on; ``frame="n"`` attributes),
            as bytes or hex text.
        normalized: Normalized output.
        verify_checksum: Check each frame's checksum (EN 13757-2 §5.4); False
            accepts a frame whose checksum byte is wrong, as
            ``Decoder(verify_checksum=False)`` does: a published dump whose
            data was redacted but not its checksum (otb-iot's CF Echo II).

    Returns:
        The XML document, ending with a newline.

    Raises:
        FrameError: A frame's start, length, stop byte or length is wrong.
        ChecksumError: A frame's checksum does not match (with ``verify_checksum``).
        RecordError: The application data is malformed (EN 13757-3 §6).

    """
    if isinstance(frames, (bytes, bytearray, memoryview, str)):
        frames = [frames]
    return _core.mbus_to_xml(list(frames), normalized, verify_checksum)
