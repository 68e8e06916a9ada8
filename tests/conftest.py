"""Shared loaders for the golden corpus in tests/data (see tests/data/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


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


@pytest.fixture
def kaifa() -> dict[str, Any]:
    """The Netz NÖ documentation example (Kaifa MA309M), with its published key."""
    return by_id("netznoe_doc_example_kaifa_ma309m")
