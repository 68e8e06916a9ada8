"""Shared loaders for the golden corpus in tests/data (see tests/data/SOURCES.md)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

# A shell starts background jobs with Ctrl-C ignored, and ignored signals stay
# ignored in every child: the Ctrl-C tests (in this process and in the CLI
# subprocesses) need the normal KeyboardInterrupt behaviour whatever started us.
signal.signal(signal.SIGINT, signal.default_int_handler)


def _vectors() -> list[dict[str, Any]]:
    doc = json.loads((DATA / "dlms" / "vectors.json").read_text(encoding="utf-8"))
    return list(doc["vectors"])


VECTORS = _vectors()
MBUS = [v for v in VECTORS if v["framing"] == "mbus"]
MBUS_KEYED = [v for v in MBUS if v.get("key")]
MBUS_UNKEYED = [v for v in MBUS if not v.get("key")]
# The vectors with MBusPico's own output for the frame (Netz NÖ layout).
MBUSPICO = [v for v in MBUS_KEYED if "mbuspico_json_emulated" in v]


def by_id(vector_id: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["id"] == vector_id)


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


@pytest.fixture(autouse=True)
def _state_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test's own state directory: a service's default history file
    (``mbuspico.history.default_path``) is never the user's, nor another test's.
    """
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture
def kaifa() -> dict[str, Any]:
    """The Netz NÖ documentation example (Kaifa MA309M), with its published key."""
    return by_id("netznoe_doc_example_kaifa_ma309m")


# The simulator's demo key (README): the key of every simulated meter in the tests.
SIMULATOR_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def serve(sim: Any = None, *, start: bool = True, **settings: Any) -> Any:
    """A ``mbuspico.serve.Service`` for a test: HTTP on 127.0.0.1 at a free
    port, mDNS off (tests of it pass ``mdns_enabled=True``), no history (tests of
    it pass ``history_enabled=True`` and a ``history_path``), reading the
    simulated meter ``sim`` (a ``Simulator``) when given, with the simulator's
    key; ``settings`` override any of these. Started unless ``start=False``.
    """
    from mbuspico.serve import Service
    from mbuspico.serve.config import Config

    base: dict[str, Any] = {
        "key": SIMULATOR_KEY,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "mdns_enabled": False,
        "history_enabled": False,
    }
    if sim is not None:
        base["serial_port"] = sim.port
    service = Service(Config(**{**base, **settings}))
    if start:
        service.start()
    return service
