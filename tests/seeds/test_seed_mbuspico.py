"""MBusPico (Raspberry Pi Pico W, Kaifa MA309M of Netz NÖ): its document replayed.

Seed: ``shared/seeds/000_11029afec93e5ba5.txt`` (raven-worx/MBusPico README).
What it shows and where it is checked here:

* the JSON at ``GET /`` and in UDP, with its example for meter 123456789012
  (``tests/data/seeds/mbuspico_example.json``): a Kaifa MA309M push with the
  example's values, encoded as the meter sends it, decodes to exactly that text;
* the build options (``MBUSPICO_*``, ``ON``/``OFF``, ``LOG_*``) and their defaults;
* the HTTP endpoints (``/``, ``/update``, ``/reboot``) and UDP, on a running service.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import mbuspico
from conftest import DATA, SIMULATOR_KEY, serve
from mbuspico._core import encode_push
from mbuspico.serve.config import ConfigError, load
from mbuspico.simulate.dlms import Simulator

EXAMPLE = DATA / "seeds" / "mbuspico_example.json"


def example_push() -> bytes:
    """A Kaifa MA309M push carrying the values of the seed's example JSON."""
    return encode_push(
        "kaifa-ma309m",
        {
            "longInvokeId": 0x80000001,
            "localTime": (2022, 11, 20, 19, 3, 40),
            "utcOffsetMinutes": 60,  # CET: 20 November is winter time
            "dst": False,
            "activeEnergyPlus": 1385960,
            "activeEnergyMinus": 0,
            "activePowerPlus": 472,
            "activePowerMinus": 0,
            "reactiveEnergyPlus": 0,
            "reactiveEnergyMinus": 0,
            "voltageDecivolt": [2350, 2343, 2350],
            "currentCentiampere": [172, 17, 99],
            "powerFactorMilli": 823,
            "meterNumber": "123456789012",
            "deviceName": "KFM1200200000001",
        },
        key=SIMULATOR_KEY,
        system_title=bytes.fromhex("4B464D1020000001"),
        frame_counter=1,
    )


def test_the_example_json_byte_for_byte() -> None:
    reading = mbuspico.Decoder(SIMULATOR_KEY).decode(example_push())
    ours = mbuspico.to_mbuspico_json(reading)
    theirs = EXAMPLE.read_text().rstrip("\n")
    # Field by field first, for a readable failure, then the whole text.
    assert [line.rstrip(",") for line in ours.splitlines()] == [
        line.rstrip(",") for line in theirs.splitlines()
    ]
    assert ours == theirs
    # The fields and units of the seed's table.
    assert reading["activePowerPlus"] == 472  # W
    assert reading["activeEnergyPlus"] == 1385960  # Wh
    assert reading["voltageL2"] == 234.3  # V
    assert reading["currentL1"] == 1.72  # A
    assert reading["powerFactor"] == 0.823  # cos φ; MBusPico's JSON shows x 1000
    assert reading["lxTimestamp"] == 438203020  # seconds since 1.1.2009, local time


def test_build_options_and_their_defaults() -> None:
    defaults = load({"MBUSPICO_DEVICE_KEY": SIMULATOR_KEY, "MBUSPICO_SERIAL_PORT": "/dev/x"})
    assert defaults.http_enabled is True  # MBUSPICO_HTTP_ENABLED ON
    assert defaults.http_port == 80  # MBUSPICO_HTTP_SERVER_PORT 80
    assert defaults.udp_enabled is False  # MBUSPICO_UDP_ENABLED OFF
    assert defaults.udp_interval == 30  # MBUSPICO_UDP_INTERVAL_S 30
    env = {
        "MBUSPICO_DEVICE_KEY": SIMULATOR_KEY,
        "MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0",
        "MBUSPICO_LOG_LEVEL": "LOG_DEBUG",
        "MBUSPICO_UDP_ENABLED": "ON",
        "MBUSPICO_UDP_RECEIVER_HOST": "192.0.2.7",
        "MBUSPICO_UDP_RECEIVER_PORT": "4711",
        "MBUSPICO_UDP_INTERVAL_S": "10",
        "MBUSPICO_HTTP_ENABLED": "OFF",
        "MBUSPICO_HTTP_SERVER_PORT": "8080",
        "MBUSPICO_HTTP_AUTH_USER": "loxone",
        "MBUSPICO_HTTP_AUTH_PWD": "pw",
        "MBUSPICO_DEVICE": "KAIFA_MA309M_NETZNOE",
    }
    c = load(env)
    assert (c.key, c.log_level, c.udp_enabled, c.udp_host, c.udp_port, c.udp_interval) == (
        SIMULATOR_KEY,
        "debug",
        True,
        "192.0.2.7",
        4711,
        10.0,
    )
    assert (c.http_enabled, c.http_port, c.http_user, c.http_password) == (
        False,
        8080,
        "loxone",
        "pw",
    )
    assert c.profile is not None
    assert c.profile.name == "kaifa-ma309m-netznoe"
    for value, level in (
        ("LOG_NONE", "none"),
        ("LOG_ERROR", "error"),
        ("LOG_INFO", "info"),
        ("LOG_DEBUG", "debug"),
    ):
        assert load({**env, "MBUSPICO_LOG_LEVEL": value}).log_level == level
    with pytest.raises(ConfigError) as e:
        load({**env, "MBUSPICO_LOG_LEVEL": "LOG_VERBOSE"})
    assert str(e.value) == (
        "invalid environment variable MBUSPICO_LOG_LEVEL ('LOG_VERBOSE'): must be LOG_NONE, "
        "LOG_ERROR, LOG_INFO or LOG_DEBUG (or none, error, warning, info, debug)"
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_endpoints_and_udp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``GET /`` the JSON, UDP the same text; ``/update`` and ``/reboot`` are Pico-only (404)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        with Simulator("kaifa-ma309m", key=SIMULATOR_KEY, interval=0.2, seed=5) as sim:
            sim.start()
            with caplog.at_level(logging.DEBUG, logger="mbuspico"):
                service = serve(
                    sim,
                    udp_enabled=True,
                    udp_port=rx.getsockname()[1],
                    udp_interval=0.3,
                    log_level="debug",
                )
                try:
                    url = f"http://127.0.0.1:{service.http_port}"
                    datagram = rx.recv(4096).decode()
                    status, body = get(url + "/")
                    assert status == 200
                    doc = json.loads(body)
                    assert list(doc) == list(json.loads(EXAMPLE.read_text()))  # names, order
                    assert list(json.loads(datagram)) == list(doc)
                    assert doc["meterNumber"] == sim.sent[0].expected["meterNumber"]
                    assert get(url + "/update")[0] == 404
                    assert get(url + "/reboot")[0] == 404
                finally:
                    service.stop()
    # LOG_DEBUG shows each telegram's handling.
    handled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("telegram:")]
    assert handled
    assert f"dlms meter {doc['meterNumber']}" in handled[0]
