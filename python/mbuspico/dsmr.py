"""DSMR P1: the name table and its overrides.

Decoding is :meth:`mbuspico.Decoder.decode` (``protocol="dsmr"`` or auto-detected
by the telegram's ``/``). Names come from a default table (the lower-case names
of dsmr_parser and Home Assistant, e.g. ``electricity_used_tariff_1``); a code
table, as the MicroPython p1meter's ``codetable`` maps codes to topics, replaces
or adds names::

    decoder = mbuspico.Decoder(protocol="dsmr", names=load_names("codes.toml"))
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["load_names"]


def load_names(source: str | Path | Mapping[str, object]) -> dict[str, str]:
    """Read a code table: OBIS code → name.

    Args:
        source: A TOML file (``"0-1:24.2.3" = "gas"`` lines, optionally under a
            ``[names]`` table) or a mapping.

    Returns:
        The names by code, to pass as ``Decoder(names=...)``.

    Raises:
        ValueError: An entry is not ``"A-B:C.D.E" = "name"``.
        OSError: The file cannot be read.

    """
    if isinstance(source, Mapping):
        table: Mapping[str, object] = source
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - depends on the interpreter
            import tomli as tomllib
        with Path(source).open("rb") as f:
            doc = tomllib.load(f)
        names = doc.get("names", doc)
        table = names if isinstance(names, Mapping) else {}
    out: dict[str, str] = {}
    for code, name in table.items():
        parts = code.replace("-", ".").replace(":", ".").split(".")
        if len(parts) != 5 or not all(p.isdigit() for p in parts) or not isinstance(name, str):
            msg = f'code table entry {code!r} = {name!r}: expected "A-B:C.D.E" = "name"'
            raise ValueError(msg)
        out[code] = name
    return out
