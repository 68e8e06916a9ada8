"""Announce the HTTP endpoint of ``mbuspico serve`` by multicast DNS (DNS-SD).

:class:`Announcer` registers one ``_http._tcp.local.`` service (DNS-based
service discovery, RFC 6763; multicast DNS, RFC 6762) with the
`zeroconf <https://python-zeroconf.readthedocs.io/>`_ package, so browsers,
Home Assistant and ``avahi-browse -r _http._tcp`` find the meter without an
address. TXT records: ``path=/``, ``version`` (mbuspico's), ``device`` (the
configured meter profile or ``auto``).

This module imports zeroconf (and ifaddr, which zeroconf depends on), so the
service imports it only when mDNS is on.

Instance names: :func:`default_name` gives ``mbuspico-<meter number>`` once a
reading has shown the meter number, ``mbuspico-<host name>`` before. A name
another responder already holds is changed by zeroconf to ``<name> (2)``, …
(RFC 6762 section 9).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from .stats import hostname

if TYPE_CHECKING:
    from .config import Config
    from .meter import Latest

__all__ = ["SERVICE_TYPE", "Announcer", "announce", "default_name", "meter_number"]

log = logging.getLogger("mbuspico.serve")

SERVICE_TYPE = "_http._tcp.local."
"""The DNS-SD service type announced (RFC 6763 section 7, IANA ``http``)."""

_MAX_LABEL = 63  # bytes of an instance name (RFC 6763 section 4.1.1)


def meter_number(reading: Mapping[str, Any] | None) -> str | None:
    """The meter number of a reading: ``meterNumber`` (DLMS, DSMR) or ``id`` (wired M-Bus)."""
    if reading is None:
        return None
    value = reading.get("id") if reading.get("protocol") == "mbus" else reading.get("meterNumber")
    if not isinstance(value, str):
        return None
    text = "".join(c for c in value if c.isprintable()).strip()
    return text or None


def _label(text: str) -> str:
    """``text`` cut to at most 63 bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8")[:_MAX_LABEL]
    return data.decode("utf-8", "ignore")


def default_name(reading: Mapping[str, Any] | None = None) -> str:
    """``mbuspico-<meter number>`` for a reading that shows one, else ``mbuspico-<host name>``."""
    return _label(f"mbuspico-{meter_number(reading) or hostname()}")


def _addresses(host: str) -> tuple[list[str], Any, IPVersion]:
    """The addresses to announce, the interfaces to announce on, the IP version.

    A wildcard ``host`` (``0.0.0.0``, ``::`` or empty) announces every address
    of every interface but loopback (loopback too when there is nothing
    else); a specific one announces that address on its interface only.
    """
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        v6 = host == "::"
        found: list[str] = []
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str):
                    found.append(ip.ip)
                elif v6 and ip.ip[2] == 0:  # IPv6 with a scope id (link-local): left out
                    found.append(ip.ip[0])
        outside = [a for a in found if not ipaddress.ip_address(a).is_loopback]
        version = IPVersion.All if v6 else IPVersion.V4Only
        return outside or found, InterfaceChoice.All, version
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name
        address = ipaddress.ip_address(socket.gethostbyname(host))
    version = IPVersion.V6Only if address.version == 6 else IPVersion.V4Only
    return [str(address)], [str(address)], version


class Announcer:
    """One ``_http._tcp.local.`` registration, renamed and withdrawn on demand.

    Args:
        port: The HTTP port.
        host: The address HTTP listens on: a wildcard announces every
            interface's addresses on every interface, a specific address only
            itself (``127.0.0.1`` announces on loopback).
        txt: TXT record keys and values (``{"path": "/", ...}``).

    Run its coroutines on one asyncio loop. Errors of zeroconf (no usable
    interface, port 5353 refused) propagate as ``OSError`` or
    ``zeroconf.Error`` from :meth:`register`.

    """

    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - the address HTTP listens on, not a bind
        txt: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare the announcement; nothing is sent before :meth:`register`."""
        self.port = port
        self.host = host
        self.txt = dict(txt or {})
        self._zc: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None

    @property
    def name(self) -> str | None:
        """The instance name registered (zeroconf may have added `` (2)``), or None."""
        if self._info is None:
            return None
        return self._info.name[: -len(SERVICE_TYPE) - 1]

    async def register(self, name: str) -> None:
        """Announce ``<name>._http._tcp.local.``, replacing an earlier registration.

        Returns once probing is done and the name is ours (about 1.5 s,
        RFC 6762 section 8).
        """
        addresses, interfaces, version = _addresses(self.host)
        if self._zc is None:
            self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=version)
        if self._info is not None:
            goodbye = await self._zc.async_unregister_service(self._info)
            self._info = None
            await goodbye
        server = "".join(c if c.isalnum() or c == "-" else "-" for c in hostname())
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{_label(name)}.{SERVICE_TYPE}",
            port=self.port,
            properties=self.txt,
            server=f"{server or 'mbuspico'}.local.",
            parsed_addresses=addresses,
        )
        task = await self._zc.async_register_service(info, allow_name_change=True)
        self._info = info
        await task

    async def close(self) -> None:
        """Withdraw the announcement (goodbye packets, TTL 0) and close the sockets."""
        zc, self._zc = self._zc, None
        self._info = None
        if zc is not None:
            await zc.async_close()  # unregisters every service first


async def announce(
    port: int,
    config: Config,
    latest: Latest,
    stop: threading.Event,
    txt: Mapping[str, str],
    registered: Callable[[Announcer | None], None],
) -> None:
    """Announce HTTP as ``_http._tcp.local.`` until cancelled, then withdraw it.

    Without ``config.mdns_name``: ``mbuspico-<host name>`` at once, renamed to
    ``mbuspico-<meter number>`` when the first reading that shows one arrives
    (once per run). A failure is logged once; HTTP keeps serving without it.

    Args:
        port: The HTTP port announced.
        config: The settings (``http_host``, ``mdns_name``).
        latest: Where the reader thread keeps the latest reading.
        stop: Set when the service stops.
        txt: The TXT record.
        registered: Called with the :class:`Announcer` once it is set up, and
            with None once it is closed (the service's status shows its name).

    """
    announcer: Announcer | None = None
    try:
        announcer = Announcer(port, config.http_host, txt)
        registered(announcer)
        name = config.mdns_name or default_name(latest.snapshot()[0])
        await announcer.register(name)
        log.info("mDNS: announcing %s on %s", announcer.name, SERVICE_TYPE)
        while config.mdns_name is None and not stop.is_set():
            reading = latest.snapshot()[0]
            if meter_number(reading) is not None:
                if default_name(reading) != name:
                    await announcer.register(default_name(reading))
                    log.info("mDNS: announcing %s (the meter's number)", announcer.name)
                break
            await asyncio.sleep(0.5)
        await asyncio.Event().wait()  # until cancelled
    except asyncio.CancelledError:
        pass
    except Exception as e:  # no multicast, port 5353 refused: HTTP works without it
        log.warning("mDNS: could not announce the HTTP service: %s", e)
    finally:
        if announcer is not None:
            try:
                await announcer.close()
            except Exception as e:  # sockets gone already
                log.debug("mDNS: closing: %s", e)
        registered(None)
