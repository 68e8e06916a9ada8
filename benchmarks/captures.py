r"""Stream framers on adversarial captures, from Python (issue 19's figures).

Writes 16 MiB capture files of byte patterns chosen to make a resynchronising
framer re-scan (each a candidate start that fails late), then reads each with
:func:`mbuspico.read_capture` and feeds it to a :class:`mbuspico.Deframer` in
64 KiB chunks, and prints MB/s (10^6 bytes a second, best of 3) with the
telegrams found and bytes skipped. Goal: at least 50 MB/s on every pattern,
i.e. no pattern more than a small factor slower than random bytes.

Patterns:

* ``mbus-68ffff68``: ``68 FF FF 68`` repeated: every fourth byte opens an M-Bus
  long frame claiming 255 bytes (EN 13757-2 §5.2) that never closes;
* ``hdlc-valid-hcs``: HDLC type 3 headers whose HCS is right, claiming 2,047
  bytes (IEC 62056-46), followed by zeros, so every one is checked to its end;
* ``hdlc-bogus``: ``7E A7 FF`` repeated: flags with bogus lengths;
* ``p1-no-bang``: a DSMR P1 header line and data lines without the closing
  ``!`` line (NEN-EN-IEC 62056-21 / DSMR 5.0.2 P1 §6.2), repeated;
* ``random``: uniformly random bytes (the reference);
* ``real-kaifa``: the Netz NÖ documentation push repeated (every byte a
  telegram's).

Not part of the test run: ``.venv/bin/python benchmarks/captures.py``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable, Literal

import mbuspico

SIZE = 16 << 20
CHUNK = 1 << 16


def _crc16_x25(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _hdlc_valid_hcs() -> bytes:
    header = bytes([0xA7, 0xFF, 0x41, 0x03, 0x13])  # type 3, 2,047 bytes, UI frame
    hcs = _crc16_x25(header)
    return b"\x7e" + header + hcs.to_bytes(2, "little")


def _kaifa() -> bytes:
    data = Path(__file__).resolve().parent.parent / "tests" / "data" / "dlms"
    return bytes.fromhex("".join((data / "netznoe_kaifa_ma309m_doc.hex").read_text().split()))


def patterns(size: int) -> dict[str, bytes]:
    """Each pattern's bytes, ``size`` long."""

    def fill(unit: bytes) -> bytes:
        return (unit * (size // len(unit) + 1))[:size]

    p1 = b"/KFM5KAIFA-METER\r\n\r\n1-3:0.2.8(42)\r\n0-0:1.0.0(161113205757W)\r\n" * 4
    return {
        "mbus-68ffff68": fill(b"\x68\xff\xff\x68"),
        "hdlc-valid-hcs": fill(_hdlc_valid_hcs() + bytes(64)),
        "hdlc-bogus": fill(b"\x7e\xa7\xff"),
        "p1-no-bang": fill(p1),
        "random": random.Random(19).randbytes(size),  # noqa: S311 (test data)
        "real-kaifa": fill(_kaifa()),
    }


Protocol = Literal["dlms", "dsmr"]


def _best(run: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    """The shortest of ``repeat`` runs (seconds) and what the last returned."""
    best, result = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _read(path: str, protocol: Protocol) -> int:
    """Telegrams :func:`mbuspico.read_capture` finds in the file."""
    return sum(1 for _ in mbuspico.read_capture(path, protocol=protocol))


def _deframe(data: bytes, protocol: Protocol) -> int:
    """Bytes a :class:`mbuspico.Deframer` skips on ``data`` in 64 KiB chunks."""
    deframer = mbuspico.Deframer(protocol=protocol)
    for i in range(0, len(data), CHUNK):
        deframer.feed(data[i : i + CHUNK])
    deframer.finish()
    return int(deframer.stats["bytes_skipped"])


def main() -> None:
    """Print each pattern's MB/s through read_capture and Deframer."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=SIZE >> 20, help="file size (MiB)")
    size = parser.parse_args().mib << 20
    print(f"{'pattern':<16} {'read_capture':>14} {'Deframer':>10} {'telegrams':>10}", end="")
    print(f" {'skipped':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in patterns(size).items():
            path = os.path.join(tmp, name + ".bin")
            Path(path).write_bytes(data)
            protocol: Protocol = "dsmr" if name.startswith("p1") else "dlms"
            t_read, found = _best(lambda: _read(path, protocol))  # noqa: B023
            t_deframe, skipped = _best(lambda: _deframe(data, protocol))  # noqa: B023
            print(
                f"{name:<16} {size / t_read / 1e6:>9.0f} MB/s {size / t_deframe / 1e6:>5.0f} MB/s"
                f" {found:>10,} {skipped:>10,}"
            )


if __name__ == "__main__":
    main()
