"""Time mbuspico's decoders from Python on the reference frames (not a test).

Usage: .venv/bin/python benchmarks/bench_decode.py [--quick]

Prints microseconds per call (best of several timeit repeats) for
Decoder.decode on real frames and for Deframer.feed on a stream of them.
"""

from __future__ import annotations

import argparse
import functools
import json
import timeit
from pathlib import Path

import mbuspico

VECTORS = Path(__file__).parent.parent / "tests" / "data" / "dlms" / "vectors.json"
CASES = {
    "Kaifa MA309M (Netz NÖ, 282 B)": "fkw9_kaifa_ma309m_real",
    "Kaifa KSM-West 3-phase (376 B)": "amsreader_gh905_kaifa_poland",
    "Sagemcom T210-D L=0x01 (282 B)": "fkw9_sagemcom_t210d_L01",
}


def best_us(stmt: object, number: int, repeat: int) -> float:
    """Best time per call in microseconds."""
    times = timeit.repeat(stmt, number=number, repeat=repeat)  # type: ignore[arg-type]
    return min(times) / number * 1e6


def main() -> None:
    """Run the timings and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (50_000, 7)
    vectors = {v["id"]: v for v in json.loads(VECTORS.read_text())["vectors"]}
    print(f"mbuspico {mbuspico.__version__}: µs per call, best of {repeat}x{number}")
    for name, vid in CASES.items():
        v = vectors[vid]
        frame = bytes.fromhex(v["hex"])
        decode = mbuspico.Decoder(v["key"]).decode
        decode(frame)
        call = functools.partial(decode, frame)
        print(f"  decode  {name:<34} {best_us(call, number, repeat):8.2f}")
    cf_echo = VECTORS.parent.parent / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"
    frame = bytes.fromhex(cf_echo.read_text())
    call = functools.partial(mbuspico.Decoder().decode, frame)
    name = "M-Bus Itron CF Echo II (83 B, 13 rec)"
    print(f"  decode  {name:<34} {best_us(call, number, repeat):8.2f}")
    dsmr = {
        v["id"]: v
        for v in json.loads((VECTORS.parent.parent / "dsmr" / "vectors.json").read_text())[
            "vectors"
        ]
    }
    v5 = dsmr["dsmr_parser/TELEGRAM_V5"]["text"].encode()
    call = functools.partial(mbuspico.Decoder(protocol="dsmr").decode, v5)
    name = f"DSMR 5 telegram ({len(v5)} B)"
    print(f"  decode  {name:<34} {best_us(call, number, repeat):8.2f}")
    # The Smarty frame of peers-baseline.md: the real meterlogger telegram,
    # encrypted with key AAAA..., the public AK, "SYSTEMID", counter 0x10000001.
    plain = dsmr["meterlogger/luxembourgTelegram"]["text"].encode()
    smarty = mbuspico._core.dsmr_encrypt(
        plain,
        key="AA" * 16,
        auth_key="00112233445566778899AABBCCDDEEFF",
        system_title=b"SYSTEMID",
        frame_counter=0x10000001,
    )
    call = functools.partial(mbuspico.Decoder("AA" * 16).decode, smarty)
    name = f"Smarty encrypted frame ({len(smarty)} B)"
    print(f"  decode  {name:<34} {best_us(call, number, repeat):8.2f}")
    frame = bytes.fromhex(vectors["fkw9_kaifa_ma309m_real"]["hex"])
    stream = (b"\x00garbage" + frame) * 100

    def deframe() -> None:
        d = mbuspico.Deframer()
        for i in range(0, len(stream), 64):
            d.feed(stream[i : i + 64])

    per = best_us(deframe, max(1, number // 200), repeat) / 100
    print(f"  deframe {'Kaifa push + 8 B garbage, 64 B chunks':<34} {per:8.2f}")


if __name__ == "__main__":
    main()
