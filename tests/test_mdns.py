"""mDNS: the service announces ``_http._tcp.local.``; browsed with zeroconf on loopback."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

import mbuspico
from conftest import serve
from mbuspico.serve.config import Config, ConfigError, load
from mbuspico.serve.mdns import SERVICE_TYPE, default_name, meter_number
from mbuspico.serve.stats import hostname
from mbuspico.simulate.dlms import Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


class Events(ServiceListener):
    """Records what a ServiceBrowser sees: ``(event, name)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def _note(self, event: str, name: str) -> None:
        with self.lock:
            self.seen.append((event, name))

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._note("add", name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._note("remove", name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._note("update", name)

    def names(self, event: str) -> list[str]:
        with self.lock:
            return [name for e, name in self.seen if e == event]


@pytest.fixture
def browser() -> Iterator[tuple[Zeroconf, Events]]:
    """A zeroconf browser for ``_http._tcp.local.`` on loopback."""
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    events = Events()
    browsing = ServiceBrowser(zc, SERVICE_TYPE, events)
    try:
        yield zc, events
    finally:
        browsing.cancel()
        zc.close()


def info_of(zc: Zeroconf, instance: str) -> ServiceInfo | None:
    return zc.get_service_info(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}", timeout=3000)


def test_announces_the_configured_name_and_withdraws_it(browser):
    zc, events = browser
    name = f"mbuspico-test-{uuid.uuid4().hex[:8]}"
    with Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=1) as sim:
        service = serve(sim, mdns_enabled=True, mdns_name=name, device="KAIFA_MA309M_NETZNOE")
        try:
            wait_for(lambda: f"{name}.{SERVICE_TYPE}" in events.names("add"), 10, "announced")
            info = info_of(zc, name)
            assert info is not None
            assert info.port == service.http_port
            assert info.parsed_addresses() == ["127.0.0.1"]
            assert info.properties == {
                b"path": b"/",
                b"version": mbuspico.__version__.encode(),
                b"device": b"KAIFA_MA309M_NETZNOE",
            }
            assert info.server is not None
            assert info.server.endswith(".local.")
            assert service.status()["mdns"] == {"name": name}
            sim.start(count=2)  # a configured name is kept when readings arrive
            wait_for(lambda: service.status()["telegrams"]["good"] == 2, 10, "2 readings")
            assert service.status()["mdns"] == {"name": name}
        finally:
            service.stop()
    # Unregistered on stop: goodbye packets reach the browser.
    wait_for(lambda: f"{name}.{SERVICE_TYPE}" in events.names("remove"), 10, "withdrawn")
    assert service.status()["mdns"] is None


def test_default_name_host_first_then_meter_number(browser):
    zc, events = browser
    serial = random.randrange(1000, 10000)  # noqa: S311 - a meter number no other run announces
    number = f"18122000{serial}"
    with Simulator("kaifa-ma309m", key=KEY, interval=0.1, seed=2, serial=serial) as sim:
        service = serve(sim, mdns_enabled=True)
        try:
            first = wait_for(lambda: (service.status()["mdns"] or {}).get("name"), 10, "first")
            # Before any reading: the host name (with " (2)" if another service on
            # this machine holds that name already).
            assert first.startswith(f"mbuspico-{hostname()}")
            info = info_of(zc, first)
            assert info is not None
            assert info.port == service.http_port

            sim.start(count=2)
            renamed = f"mbuspico-{number}"
            wait_for(lambda: service.status()["mdns"] == {"name": renamed}, 10, "renamed")
            wait_for(lambda: f"{renamed}.{SERVICE_TYPE}" in events.names("add"), 10, "browsed")
            info = info_of(zc, renamed)
            assert info is not None
            assert info.port == service.http_port
            assert info.properties[b"device"] == b"auto"
            # The host-name registration was withdrawn.
            wait_for(lambda: f"{first}.{SERVICE_TYPE}" in events.names("remove"), 10, "old gone")
        finally:
            service.stop()
    wait_for(lambda: f"{renamed}.{SERVICE_TYPE}" in events.names("remove"), 10, "withdrawn")


def test_names_from_readings():
    assert meter_number({"protocol": "dlms", "meterNumber": "181220002177"}) == "181220002177"
    assert meter_number({"protocol": "mbus", "id": "12345678", "meterNumber": None}) == "12345678"
    assert meter_number({"protocol": "dsmr", "meterNumber": " \x00 "}) is None
    assert meter_number(None) is None
    assert default_name({"protocol": "dlms", "meterNumber": "1812"}) == "mbuspico-1812"
    assert default_name(None) == f"mbuspico-{hostname()}"
    long = default_name({"protocol": "dlms", "meterNumber": "ü" * 60})
    assert len(long.encode()) <= 63  # an instance label's limit, cut on a character boundary
    assert long.startswith("mbuspico-üü")


def test_settings():
    assert Config().mdns_enabled is True
    assert Config().mdns_name is None
    config = load(
        {"MBUSPICO_MDNS_ENABLED": "false", "MBUSPICO_MDNS_NAME": "Stromzähler"}, demo=True
    )
    assert (config.mdns_enabled, config.mdns_name) == (False, "Stromzähler")
    assert load({}, flags={"mdns_name": "  "}, demo=True).mdns_name is None  # empty: default
    with pytest.raises(ConfigError, match=r"--mdns-name.*63 bytes"):
        load({}, flags={"mdns_name": "x" * 64}, demo=True)
    with pytest.raises(ConfigError, match="MBUSPICO_MDNS_NAME"):
        load({"MBUSPICO_MDNS_NAME": "a\nb"}, demo=True)


def test_off_imports_no_zeroconf():
    """With mDNS off the service never imports zeroconf (nor ifaddr)."""
    code = (
        "import sys, time\n"
        "from mbuspico.serve.config import Config\n"
        "from mbuspico.serve import Service\n"
        "assert 'zeroconf' not in sys.modules\n"
        "s = Service(Config(demo=True, http_host='127.0.0.1', http_port=0, mdns_enabled=False))\n"
        "s.start()\n"
        "end = time.monotonic() + 10\n"
        "while not s.status()['telegrams']['good'] and time.monotonic() < end:\n"
        "    time.sleep(0.05)\n"
        "print(s.status()['mdns'], s.status()['telegrams']['good'] >= 1)\n"
        "s.stop()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('zeroconf', 'ifaddr')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["None True", "[]"]
