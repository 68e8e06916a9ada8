"""Read a meter from asyncio with mbuspico.aio, the event loop free meanwhile.

Usage:
    python examples/asyncio_reader.py --demo [--count 5]
    python examples/asyncio_reader.py --port /dev/ttyUSB0 --key HEX [--count 5]

With ``--demo`` a simulated Kaifa MA309M (Netz NÖ) writes real encrypted
telegrams to a pseudo-terminal every second. A second task prints a heartbeat
while the reader waits, to show that nothing blocks the loop; Ctrl-C (or
``--count`` readings) ends it, closing the port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import mbuspico.aio
from mbuspico.simulate import DEMO_KEY
from mbuspico.simulate.dlms import Simulator


async def heartbeat() -> None:
    """Print a dot every quarter second: the loop keeps running."""
    while True:
        await asyncio.sleep(0.25)
        print(".", end="", flush=True)


async def read(port: str, key: str, count: int) -> None:
    """Print ``count`` readings (0: forever), then close the port."""
    beat = asyncio.create_task(heartbeat())
    try:
        async with mbuspico.aio.SerialReader(port, key=key, reconnect=True) as meter:
            print(f"reading {meter!r}")
            n = 0
            async for reading in meter:
                if reading["protocol"] != "dlms":
                    continue
                print(
                    f"\n{reading['timestamp']}  meter {reading['meterNumber']}:"
                    f"  {reading['activePowerPlus']} W,"
                    f"  {reading['activeEnergyPlus']} Wh,"
                    f"  L1 {reading['voltageL1']} V"
                )
                n += 1
                if n == count:
                    break
            stats = meter.stats
            print(f"\n{stats['readings']} readings, {stats['bytes_skipped']} bytes skipped")
    finally:
        beat.cancel()


def main() -> None:
    """Parse the arguments and run the reader."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--demo", action="store_true", help="read a simulated meter")
    p.add_argument("--port", help="serial port of the meter")
    p.add_argument("--key", help="the meter's key (32 hex digits)")
    p.add_argument("--count", type=int, default=5, help="readings to print (0: forever)")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        port, key = args.port, args.key
        if args.demo:
            sim = stack.enter_context(Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1))
            port, key = sim.open(), DEMO_KEY
            sim.start()
        elif not (port and key):
            p.error("give --demo, or --port and --key")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(read(port, key, args.count))


if __name__ == "__main__":
    main()
