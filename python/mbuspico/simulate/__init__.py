"""Simulated meters: real telegrams written to a pseudo-terminal, for demos and tests.

* :class:`~mbuspico.simulate.dlms.Simulator` (:mod:`mbuspico.simulate.dlms`):
  DLMS/COSEM push meters (Kaifa MA309M, Sagemcom T210-D, KSM-West, Wiener
  Netze, Burgenland, Steiermark), encrypted and framed by mbuspico's own
  encoder as each meter does.
* :class:`~mbuspico.simulate.p1.P1Simulator` (:mod:`mbuspico.simulate.p1`):
  DSMR P1 meters of every country variant (DSMR 5.0.2 §6 telegrams, CRC16,
  the encrypted Smarty and Steiermark variants).
* :class:`~mbuspico.simulate.mbus_slave.MBusSlave`
  (:mod:`mbuspico.simulate.mbus_slave`): wired M-Bus slaves answering a
  master's requests (EN 13757-2 §5) with frames from files.
* :mod:`mbuspico.simulate.pty`: the pseudo-terminal they share.

The names below load their module on first use. POSIX only (``os.openpty``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "DEMO_AUTH_KEY",
    "DEMO_KEY",
    "MBusSlave",
    "P1Simulator",
    "Simulator",
    "SlaveMeter",
]

DEMO_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
"""The key published in the Netz NÖ customer-interface documentation; the
simulated meters of ``mbuspico simulate`` and ``mbuspico serve --demo`` use it."""

DEMO_AUTH_KEY = "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF"
"""Authentication key of the simulated meter of ``--demo`` for profiles whose
telegrams carry a tag (the one Netz Burgenland's published frames use)."""

_LAZY = {
    "Simulator": "dlms",
    "P1Simulator": "p1",
    "MBusSlave": "mbus_slave",
    "SlaveMeter": "mbus_slave",
}


def __getattr__(name: str) -> Any:
    """Import the module behind a lazily loaded name (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, including those not loaded yet."""
    return sorted(__all__)
