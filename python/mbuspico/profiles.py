"""Meter profiles: how one meter of one grid operator talks on its customer interface.

A profile names the framing (M-Bus, HDLC, HDLC with general block transfer, DSMR
P1), the serial settings and connector, the value layout and the keys a meter
needs. Select one with ``Decoder(profile=...)``, ``SerialReader(profile=...)``,
``mbuspico read --profile``, ``mbuspico simulate --meter`` or, for ``mbuspico
serve``, ``MBUSPICO_DEVICE``; ``"auto"`` detects framing and layout from the
bytes (:meth:`mbuspico.Decoder.identify` tells which profiles fit a telegram)::

    >>> from mbuspico.profiles import PROFILES
    >>> p = PROFILES["wienernetze-im350"]
    >>> p.framing, p.baudrate, p.parity
    ('hdlc', 9600, 'none')

The table lives in the Rust core (``src/profile.rs``, one declarative entry per
meter, with the test vector that proves it); this module only presents it.
Sources: ``shared/notes/dlms.md`` §1-§4 and ``shared/notes/dsmr.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _core

__all__ = ["PROFILES", "Profile", "find", "readme_table"]


@dataclass(frozen=True)
class Profile:
    """One meter as one operator runs it.

    Attributes:
        name: The profile's name, e.g. ``"kaifa-ma309m-netznoe"``.
        aliases: Other names that select it (MBusPico's ``MBUSPICO_DEVICE``
            values, simulator meter names).
        meter: Make and model.
        operators: Grid operators that install it this way.
        protocol: ``"dlms"`` or ``"dsmr"``.
        framing: ``"mbus"``, ``"hdlc"``, ``"hdlc+gbt"``, ``"p1"`` or
            ``"p1-encrypted"``.
        layout: DLMS data-notification layout (``"obis-flat"``,
            ``"obis-nested"``, ``"wienernetze"``, ``"burgenland"``,
            ``"object-list"``); None for DSMR.
        security: ``"none"``, ``"encrypted"`` (key) or ``"authenticated"``
            (key and authentication key, security control 0x30).
        baudrate: Baud rate of the interface.
        bytesize: Data bits (7 or 8).
        parity: ``"even"``, ``"none"`` or ``"odd"``.
        stopbits: Stop bits.
        connector: The interface and connector.
        tz: IANA time zone of the meter clock.
        vectors: ``(vector id, how far it proves the profile)`` pairs; ids of
            ``tests/data/dlms/vectors.json`` or ``tests/data/dsmr/vectors.json``.
        simulator: The ``mbuspico simulate --meter`` that plays it, if any.

    """

    name: str
    aliases: tuple[str, ...]
    meter: str
    operators: str
    protocol: str
    framing: str
    layout: str | None
    security: str
    baudrate: int
    bytesize: int
    parity: str
    stopbits: int
    connector: str
    tz: str
    vectors: tuple[tuple[str, str], ...]
    simulator: str | None

    @property
    def serial(self) -> str:
        """The serial settings as ``"2400 8E1"``."""
        return f"{self.baudrate} {self.bytesize}{self.parity[0].upper()}{self.stopbits}"


def _load() -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for d in _core.profiles():
        d = dict(d)
        d["aliases"] = tuple(d["aliases"])
        d["vectors"] = tuple(tuple(v) for v in d["vectors"])
        out[d["name"]] = Profile(**d)
    return out


PROFILES: dict[str, Profile] = _load()
"""Every supported meter profile by name, in the order of the README table."""


def find(name: str) -> Profile:
    """The profile called ``name`` or one of its aliases (any case, ``_`` or ``-``).

    Raises:
        ValueError: No profile has that name; the message lists the names.

    """
    wanted = name.strip().lower().replace("_", "-")
    for p in PROFILES.values():
        if wanted in (n.lower().replace("_", "-") for n in (p.name, *p.aliases)):
            return p
    msg = f"unknown meter profile {name!r}; one of {', '.join(PROFILES)}"
    raise ValueError(msg)


def readme_table() -> str:
    """The README's table of supported meters (Markdown), one row per profile."""
    rows = [
        "| profile | meter | operators | interface | framing, layout | keys | proven by |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PROFILES.values():
        shape = p.framing if p.layout is None else f"{p.framing}, {p.layout}"
        proof = "; ".join(f"`{v}` ({how})" for v, how in p.vectors)
        rows.append(
            f"| `{p.name}` | {p.meter} | {p.operators} | {p.serial}, {p.connector} "
            f"| {shape} | {p.security} | {proof} |"
        )
    return "\n".join(rows) + "\n"
