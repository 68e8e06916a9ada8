"""Write examples/data/kaifa_ma309m_1h.bin: one simulated hour of a Kaifa MA309M.

Usage: .venv/bin/python examples/data/make_capture.py

The capture is what a Netz NÖ Kaifa MA309M sends on its customer interface
every 5 seconds (720 telegrams of 282 bytes, encrypted with the simulator's demo
key 36C66639E48A8CA4D6BC8B282A793BBB), from 2026-11-21 18:00 Vienna time, with
a few random bytes of line noise between some telegrams (the reader skips and
counts them). The seed makes it reproducible byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mbuspico.simulate.dlms import Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
OUT = Path(__file__).with_name("kaifa_ma309m_1h.bin")


def main() -> None:
    """Generate the capture."""
    start = datetime(2026, 11, 21, 18, 0, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    sim = Simulator("kaifa-ma309m", key=KEY, interval=5, seed=11, start=start, garbage=0.02)
    telegrams = [t for _, t in zip(range(720), sim.telegrams())]
    OUT.write_bytes(b"".join(t.wire for t in telegrams))
    print(f"{OUT}: {len(telegrams)} telegrams, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
