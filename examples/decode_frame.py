"""Decode one DLMS push telegram from a capture file and print its values.

Usage: python examples/decode_frame.py KEY FILE

FILE holds one telegram (binary or hex text), e.g.
tests/data/dlms/netznoe_kaifa_ma309m_doc.hex with key 36C66639E48A8CA4D6BC8B282A793BBB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mbuspico


def main(key: str, path: str) -> int:
    """Decode the telegram in ``path`` with ``key`` and print its OBIS values."""
    raw = Path(path).read_bytes()
    data: bytes | str = raw.decode() if path.endswith(".hex") else raw
    try:
        reading = mbuspico.Decoder(key).decode(data)
    except mbuspico.DecodeError as e:
        print(f"cannot decode {path}: {e}", file=sys.stderr)
        return 1
    if reading["protocol"] != "dlms":
        print(f"{path} is a wired M-Bus telegram, not a DLMS push", file=sys.stderr)
        return 1
    print(f"meter {reading['meterNumber']} at {reading['timestamp']}")
    for code, value in reading["obis"].items():
        print(f"  {code:<12} {value['value']!s:>26} {value['unit'] or ''}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
