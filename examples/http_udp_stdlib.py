"""MBusPico's HTTP and UDP service with the Python standard library only.

Usage:
    python examples/http_udp_stdlib.py --demo [--http-port 8080] [--udp HOST:PORT]
    python examples/http_udp_stdlib.py --port /dev/ttyAMA0 --key HEX [...]

Three threads: the meter reader, http.server, and a UDP sender. No web
framework; only mbuspico itself besides the standard library.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mbuspico
from mbuspico.simulate import DEMO_KEY
from mbuspico.simulate.dlms import Simulator

latest: dict[str, bytes] = {}


def read_forever(port: str, key: str) -> None:
    """Keep the latest reading as MBusPico JSON."""
    with mbuspico.SerialReader(port, key=key, reconnect=True) as meter:
        for reading in meter:
            if reading["protocol"] == "dlms":
                latest["json"] = mbuspico.to_mbuspico_json(reading).encode()


def send_udp_forever(host: str, port: int, interval: float) -> None:
    """Send the latest reading every ``interval`` seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while True:
            time.sleep(interval)
            if "json" in latest:
                sock.sendto(latest["json"], (host, port))


class Handler(BaseHTTPRequestHandler):
    """``GET /``: MBusPico's JSON, 204 before the first reading."""

    def do_GET(self) -> None:
        """Answer GET."""
        if self.path != "/":
            self.send_error(404)
            return
        body = latest.get("json", b"")
        self.send_response(200 if body else 204)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep quiet."""


def main() -> None:
    """Start the threads and serve until interrupted."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--demo", action="store_true", help="serve a simulated meter")
    p.add_argument("--port", help="serial port of the meter")
    p.add_argument("--key", help="the meter's key (32 hex digits)")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--udp", metavar="HOST:PORT", help="also send UDP there")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between UDP packets")
    args = p.parse_args()
    port, key = args.port, args.key
    if args.demo:
        sim = Simulator("kaifa-ma309m", key=DEMO_KEY, interval=1)
        port, key = sim.open(), DEMO_KEY
        sim.start()
    elif not (port and key):
        p.error("give --demo, or --port and --key")
    threading.Thread(target=read_forever, args=(port, key), daemon=True).start()
    if args.udp:
        host, udp_port = args.udp.rsplit(":", 1)
        threading.Thread(
            target=send_udp_forever, args=(host, int(udp_port), args.interval), daemon=True
        ).start()
    server = ThreadingHTTPServer((args.http_host, args.http_port), Handler)
    print(f"serving on http://{args.http_host}:{server.server_port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
