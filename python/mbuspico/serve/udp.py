"""UDP of ``mbuspico serve``: the latest reading's JSON to one receiver at an interval.

As MBusPico's ``udp.py`` (raven-worx/MBusPico): every ``udp_interval`` seconds
the text ``GET /`` serves (MBusPico's JSON for a DLMS push meter) goes as one
datagram to ``udp_host:udp_port``; nothing is sent before the first reading,
nor while the latest is stale (an old reading is never re-sent as if new).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Callable

from .config import Config
from .meter import Latest

__all__ = ["UdpSender"]

log = logging.getLogger("mbuspico.serve")


class UdpSender:
    """Sends the latest reading by UDP until stopped or cancelled.

    Args:
        latest: Where the reader thread keeps the latest reading.
        fresh: Whether the latest reading is fresh; nothing is sent while not.

    Attributes:
        sent: Datagrams sent.
        failed: Sends that failed (the first of a run is logged as a warning,
            the recovery once).

    """

    def __init__(self, latest: Latest, fresh: Callable[[], bool] = lambda: True) -> None:
        """Nothing sent yet."""
        self.latest = latest
        self.fresh = fresh
        self.sent = 0
        self.failed = 0

    async def run(self, config: Config, stop: threading.Event) -> None:
        """Send every ``config.udp_interval`` seconds to ``config.udp_host:udp_port``."""
        c = config
        loop = asyncio.get_running_loop()
        failing = 0  # sends failed in a row: the first is logged, then one line on recovery
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not stop.is_set():
                await asyncio.sleep(c.udp_interval)
                _, text, _ = self.latest.snapshot()
                if text is None or not self.fresh():
                    continue
                try:
                    await loop.run_in_executor(
                        None, sock.sendto, text.encode(), (c.udp_host, c.udp_port)
                    )
                except OSError as e:  # receiver gone, network down: keep serving
                    self.failed += 1
                    if not failing:
                        log.warning(
                            "UDP to %s:%s failed: %s (not logged again until a send works)",
                            c.udp_host,
                            c.udp_port,
                            e,
                        )
                    failing += 1
                else:
                    self.sent += 1
                    if failing:
                        log.info(
                            "UDP to %s:%s works again after %d failed sends",
                            c.udp_host,
                            c.udp_port,
                            failing,
                        )
                    failing = 0
