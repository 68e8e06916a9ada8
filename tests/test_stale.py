"""Honest staleness: a silent meter is never served as fresh (issue 19).

A simulated meter pushes every 0.2 s, then goes silent (its thread stopped, as
a meter whose adapter hangs), then pushes again. Checked on a running service
with UDP and a real mosquitto: ``Age``/``Last-Modified`` on every reading,
``GET /`` 503 with ``Retry-After`` while stale (200 with ``http.serve_stale``),
UDP paused, ``/api/status`` ``stale``, MQTT's availability ``stale`` then
``online``, and one log line when the meter goes quiet and one when it is back.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from conftest import serve
from mbuspico.simulate.dlms import Simulator
from test_mqtt import broker, brokers, subscribe, wait_for

__all__ = ["broker", "brokers", "subscribe"]  # fixtures used by name below

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def datagrams(rx: socket.socket, seconds: float) -> int:
    """Datagrams received within ``seconds``."""
    count = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        rx.settimeout(left)
        try:
            rx.recv(4096)
        except TimeoutError:
            break
        count += 1
    return count


def test_a_silent_meter_is_stale_everywhere(broker: Any, subscribe: Any, caplog: Any) -> None:
    sub = subscribe(broker.port, "stale/status")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=8) as sim,
    ):
        rx.bind(("127.0.0.1", 0))
        sim.start()
        with caplog.at_level(logging.INFO, logger="mbuspico"):
            service = serve(
                sim,
                stale_after=1.0,
                udp_enabled=True,
                udp_port=rx.getsockname()[1],
                udp_interval=0.1,
                mqtt_enabled=True,
                mqtt_host="127.0.0.1",
                mqtt_port=broker.port,
                mqtt_prefix="stale",
            )
            try:
                url = f"http://127.0.0.1:{service.http_port}"
                wait_for(lambda: get(url + "/")[0] == 200, 10, "a reading")
                status, headers, _ = get(url + "/")
                assert status == 200
                assert int(headers["Age"]) <= 1
                last = parsedate_to_datetime(headers["Last-Modified"]).timestamp()
                assert abs(last - time.time()) < 2
                assert sub.wait_state("stale/status", "online")["stale"] is False
                assert datagrams(rx, 0.5) >= 3  # fresh: UDP goes on

                sim.stop()  # the meter goes silent
                wait_for(lambda: get(url + "/")[0] == 503, 5, "503 once stale")
                _, headers, body = get(url + "/")
                assert body.startswith(b"stale: no reading from the meter for ")
                assert int(headers["Retry-After"]) >= 1
                assert int(headers["Age"]) >= 1
                reading_status, reading_headers, reading = get(url + "/api/reading")
                assert reading_status == 200  # the whole reading, with its age
                assert int(reading_headers["Age"]) >= 1
                assert json.loads(reading)["meterNumber"]
                doc = json.loads(get(url + "/api/status")[2])
                assert (doc["stale"], doc["staleAfterSeconds"]) == (True, 1.0)
                assert doc["ageSeconds"] >= 1
                assert sub.wait_state("stale/status", "stale")["stale"] is True
                datagrams(rx, 0.3)  # what was in flight
                assert datagrams(rx, 1.0) == 0  # stale: UDP pauses

                sim.start()  # data returns
                wait_for(lambda: get(url + "/")[0] == 200, 5, "fresh again")
                assert sub.wait_state("stale/status", "online")["stale"] is False
                assert datagrams(rx, 0.5) >= 3
                wait_for(lambda: "readings again" in caplog.text, 5, "the end logged")
            finally:
                service.stop()
    quiet = [r for r in caplog.records if "no reading for" in r.getMessage()]
    back = [r for r in caplog.records if "readings again after" in r.getMessage()]
    assert [r.levelno for r in quiet] == [logging.WARNING]
    assert [r.levelno for r in back] == [logging.INFO]


def test_serve_stale_keeps_mbuspicos_behaviour() -> None:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=9) as sim:
        sim.start()
        service = serve(sim, stale_after=0.5, http_serve_stale=True)
        try:
            url = f"http://127.0.0.1:{service.http_port}"
            wait_for(lambda: get(url + "/")[0] == 200, 10, "a reading")
            sim.stop()
            time.sleep(1.2)
            status, headers, body = get(url + "/")
            assert status == 200  # MBusPico serves the last reading whatever its age
            assert int(headers["Age"]) >= 1  # but says how old it is
            assert json.loads(body)["meterNumber"]
            assert json.loads(get(url + "/api/status")[2])["stale"] is True
        finally:
            service.stop()


def test_the_threshold_follows_the_meter(caplog: Any) -> None:
    """Without ``stale_after``: 3 x the observed push interval, at least 10 s."""
    with Simulator("kaifa-ma309m", key=KEY, interval=0.1, seed=10) as sim:
        sim.start()
        service = serve(sim)
        try:
            wait_for(lambda: service.state.interval() is not None, 10, "two readings")
            assert service.stale_after() == 10.0  # 3 x 0.1 s is below the floor
            service.state._intervals.extend([5.0] * 15)  # a Netz NÖ meter: every 5 s
            assert service.stale_after() == 15.0
        finally:
            service.stop()


def test_no_reading_at_all_is_logged_once(caplog: Any) -> None:
    never_started = Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=11)
    with never_started as sim, caplog.at_level(logging.INFO, logger="mbuspico"):
        service = serve(sim, stale_after=0.5)
        try:
            url = f"http://127.0.0.1:{service.http_port}"
            wait_for(lambda: "no reading yet" in caplog.text, 5, "the silence logged")
            time.sleep(1.5)
            assert get(url + "/")[0] == 204  # nothing read yet: MBusPico's 204
        finally:
            service.stop()
    assert len([r for r in caplog.records if "no reading yet" in r.getMessage()]) == 1


@pytest.mark.parametrize("protocol", ["mbus"])
def test_polled_meters_use_their_poll_interval(protocol: str) -> None:
    from mbuspico.serve import Config, Service

    service = Service(Config(protocol=protocol, mbus_interval=60.0, serial_port="/dev/null"))
    assert service.stale_after() == 180.0
