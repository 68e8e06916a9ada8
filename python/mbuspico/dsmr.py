"""DSMR P1: the name table and its overrides.

Decoding is :meth:`mbuspico.Decoder.decode` (``protocol="dsmr"`` or auto-detected
by the telegram's ``/``). Names come from a default table (the lower-case names
of dsmr_parser and Home Assistant, e.g. ``electricity_used_tariff_1``); a code
table, as the MicroPython p1meter's ``codetable`` maps codes to topics, replaces
or adds names::

    decoder = mbuspico.Decoder(protocol="dsmr", names=load_names("codes.toml"))
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["load_names"]


def load_names(
    source: str | Path | Mapping[str, object] | Sequence[tuple[str, str]],
) -> dict[str, str]:
    r"""Read a code table: OBIS code (or pattern) → name, in the table's order.

    A code is an OBIS code as telegrams write it (``"1-0:1.8.1"``) or a
    regular expression that must match the whole code (``"(\d)-1:24.2.1"``:
    the gas meter on M-Bus channel 1, whatever the first group). An exact
    code wins; of the patterns, the first that matches. Names are kept as
    written: ``"total/gas_meter"`` becomes two MQTT topic levels in ``obis``
    mode.

    Args:
        source: A TOML file (``"0-1:24.2.3" = "gas"`` lines, optionally under a
            ``[names]`` table; a pattern is easiest as a literal string,
            ``'(\d)-1:24.2.1' = "total/gas_meter"``), the MicroPython P1
            meter's ``config.py`` (its ``codetable`` list of ``(code, topic)``
            pairs, read without running the file), a mapping, or a sequence of
            pairs.

    Returns:
        The names by code or pattern, to pass as ``Decoder(names=...)``.

    Raises:
        ValueError: An entry is not a code or a valid pattern with a text name,
            or a ``.py`` file has no ``codetable`` list of pairs.
        OSError: The file cannot be read.

    Source: the MicroPython P1 meter's README ("Configuration for Belgian DSMR
    Meters": ``("(\d)-1:24.2.1", "total/gas_meter")``).

    """
    pairs: list[tuple[object, object]]
    if isinstance(source, Mapping):
        pairs = list(source.items())
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".py":
            pairs = _codetable(path)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - depends on the interpreter
                import tomli as tomllib
            with path.open("rb") as f:
                doc = tomllib.load(f)
            names = doc.get("names", doc)
            pairs = list(names.items()) if isinstance(names, Mapping) else []
    else:
        pairs = [tuple(pair) for pair in source]  # type: ignore[misc]
    out: dict[str, str] = {}
    for code, name in pairs:
        if not isinstance(code, str) or not isinstance(name, str) or not _valid_code(code):
            msg = (
                f"code table entry {code!r} = {name!r}: expected "
                '"A-B:C.D.E" (or a pattern such as "(\\d)-1:24.2.1") = "name"'
            )
            raise ValueError(msg)
        out.setdefault(code, name)
    return out


_CODE = re.compile(r"\d+-\d+:\d+\.\d+\.\d+")


_CODE_CHARS = re.compile(r"[\d.:-]+")


def _valid_code(code: str) -> bool:
    """An OBIS code, or a pattern that compiles and can match one (it has a ``:``).

    Text of digits and ``-:.`` only is meant as a code, so it must be a whole
    one (``1-0:1.8`` is a typo, not a pattern).
    """
    if _CODE.fullmatch(code):
        return True
    if _CODE_CHARS.fullmatch(code):
        return False
    try:
        re.compile(code)
    except re.error:
        return False
    return ":" in code


def _codetable(path: Path) -> list[tuple[object, object]]:
    """The ``codetable = [(code, topic), ...]`` of a MicroPython P1 meter ``config.py``."""
    import ast
    import warnings

    with warnings.catch_warnings():
        # The P1 meter's own line ("(\\d)-1:24.2.1", ...) is no raw string: Python
        # warns of the escape, which stays a backslash, as MicroPython reads it.
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "codetable" for t in targets):
            try:
                value = ast.literal_eval(node.value)  # type: ignore[attr-defined]
            except ValueError:
                break
            if isinstance(value, (list, tuple)) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in value
            ):
                return [(p[0], p[1]) for p in value]
            break
    msg = f"{path}: no codetable = [(code, topic), ...] list"
    raise ValueError(msg)
