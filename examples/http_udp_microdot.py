"""MBusPico's HTTP and UDP service in a few lines, with microdot and mbuspico.

Usage:
    python examples/http_udp_microdot.py --demo [--http-port 8080] [--udp HOST:PORT]
    python examples/http_udp_microdot.py --port /dev/ttyAMA0 --key HEX [...]

A reader thread keeps the latest reading; microdot serves MBusPico's JSON on
``/`` (204 before the first reading); an asyncio task sends it by UDP every
30 s. ``mbuspico serve`` does all of this and more (auth, status, reconnects).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading

from microdot import Microdot, Response

import mbuspico
from mbuspico.simulate import DEMO_KEY
from mbuspico.simulate.dlms import Simulator

latest: dict[str, str] = {}


def read_forever(port: str, key: str) -> None:
    """Keep the latest reading as MBusPico JSON."""
    with mbuspico.SerialReader(port, key=key, reconnect=True) as meter:
        for reading in meter:
            if reading["protocol"] == "dlms":
                latest["json"] = mbuspico.to_mbuspico_json(reading)


async def main(args: argparse.Namespace) -> None:
    """Serve HTTP (and UDP if asked) until interrupted."""
    port, key = args.port, args.key
    if args.demo:
        sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1)
        port, key = sim.open(), DEMO_KEY
        sim.start()
    threading.Thread(target=read_forever, args=(port, key), daemon=True).start()

    app = Microdot()
    no_cache = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}

    async def index(request: object) -> Response:
        text = latest.get("json")
        headers = {**no_cache, "Content-Type": "application/json"}
        return Response(text or b"", 200 if text else 204, headers)

    app.route("/")(index)

    async def udp(host: str, udp_port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while True:
                await asyncio.sleep(args.interval)
                if "json" in latest:
                    sock.sendto(latest["json"].encode(), (host, udp_port))

    jobs = [app.start_server(host=args.http_host, port=args.http_port)]
    if args.udp:
        host, udp_port = args.udp.rsplit(":", 1)
        jobs.append(udp(host, int(udp_port)))
    print(f"serving on http://{args.http_host}:{args.http_port}/", flush=True)
    await asyncio.gather(*jobs)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--demo", action="store_true", help="serve a simulated meter")
    p.add_argument("--port", help="serial port of the meter")
    p.add_argument("--key", help="the meter's key (32 hex digits)")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--udp", metavar="HOST:PORT", help="also send UDP there")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between UDP packets")
    parsed = p.parse_args()
    if not parsed.demo and not (parsed.port and parsed.key):
        p.error("give --demo, or --port and --key")
    asyncio.run(main(parsed))
