"""Latency from the last byte written to the reading returned (not a test).

Usage: .venv/bin/python benchmarks/serial_latency.py [--count N] [--meter NAME]

A simulated meter writes a telegram to a pseudo-terminal while a SerialReader
waits in another thread, blocked in read(). For each telegram the time from
os.write() returning (the last byte is in the pty) to read() returning the
decoded reading is recorded. Prints median, 99th percentile and maximum.
Goal (issue 3): at most 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from mbuspico import SerialReader
from mbuspico.simulate.dlms import METERS, Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def main() -> None:
    """Measure and print the latency distribution."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--meter", choices=METERS, default="kaifa-ma309m")
    args = parser.parse_args()

    with Simulator(args.meter, key=KEY, seed=1) as sim:
        assert sim.port is not None
        telegrams = sim.telegrams()
        got = threading.Event()
        returned_at = 0.0
        with SerialReader(sim.port, key=KEY) as reader:

            def read_loop() -> None:
                nonlocal returned_at
                for _ in range(args.count):
                    if reader.read(timeout=5) is None:
                        return
                    returned_at = time.perf_counter()
                    got.set()

            thread = threading.Thread(target=read_loop)
            thread.start()
            latencies = []
            for _ in range(args.count):
                wire = next(telegrams).wire
                time.sleep(0.005)  # let the reader block in read() again
                got.clear()
                sim.write(wire)
                written_at = time.perf_counter()
                if not got.wait(5):
                    raise SystemExit("no reading within 5 s")
                latencies.append((returned_at - written_at) * 1000)
            thread.join()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{args.meter}, {len(latencies)} telegrams: last byte written -> reading returned: "
        f"median {statistics.median(latencies):.3f} ms, p99 {p99:.3f} ms, "
        f"max {latencies[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
