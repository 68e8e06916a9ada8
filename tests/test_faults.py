"""Fault injection: the service keeps serving HTTP and recovers when its outputs fail.

A simulated meter on a pty feeds a real :class:`mbuspico.serve.Service`; then
the MQTT broker (a real mosquitto) goes away and comes back, the UDP receiver
goes away and comes back (or every send fails), and the disk of the CSV log is
full for a while. The serial port vanishing and returning is tested in
test_service.py.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import serve
from mbuspico.serve import Service
from mbuspico.serve.sinks import csvlog
from mbuspico.simulate.dlms import Simulator
from test_mqtt import MOSQUITTO, Broker, Subscriber, free_port
from test_service import get, wait_for

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


@pytest.fixture
def meter() -> Iterator[Simulator]:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.1, seed=10) as sim:
        yield sim


def frame_counter(url: str) -> int | None:
    status, _, body = get(url + "/api/reading")
    return int(json.loads(body)["frameCounter"]) if status == 200 else None


def assert_serving_fresh_readings(service: Service) -> None:
    """HTTP answers, and the reading it serves moves on (the reader thread is alive)."""
    url = f"http://127.0.0.1:{service.http_port}"
    before = wait_for(lambda: frame_counter(url))
    wait_for(lambda: (frame_counter(url) or 0) > before, 5)
    assert get(url + "/")[0] == 200
    assert get(url + "/api/status")[0] == 200
    for thread in (service._thread, service._reader_thread):
        assert thread is not None
        assert thread.is_alive()


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


# -- MQTT ------------------------------------------------------------------------------


def test_mqtt_broker_stopped_and_restarted(
    meter: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing: run scripts/system-deps to install mosquitto")
    caplog.set_level(logging.DEBUG, logger="mbuspico")
    port = free_port()
    broker = Broker(tmp_path, port, ["allow_anonymous true"])
    broker.start()
    subscribers: list[Subscriber] = []
    service = serve(
        meter, mqtt_enabled=True, mqtt_host="127.0.0.1", mqtt_port=port, mqtt_prefix="fault"
    )
    try:
        mqtt = lambda: service.status()["sinks"]["mqtt"]  # noqa: E731
        wait_for(lambda: mqtt()["connected"], 10)
        meter.start()
        first = Subscriber(port, "fault/#")
        subscribers.append(first)
        first.wait("fault/activeEnergyPlus")

        broker.stop()  # the broker dies
        wait_for(lambda: not mqtt()["connected"], 10)
        published = mqtt()["published"]
        read = service.status()["telegrams"]["good"]
        wait_for(lambda: service.status()["telegrams"]["good"] >= read + 3, 5)  # reading goes on
        assert_serving_fresh_readings(service)
        assert warnings_with(caplog, "mqtt: lost the connection")
        outage = mqtt()
        assert (outage["published"], outage["failed"], outage["dropped"]) == (published, 0, 0)
        assert not warnings_with(caplog, "mqtt: could not deliver")  # kept, not failed

        broker.start()  # the same broker comes back on the same port
        wait_for(lambda: mqtt()["connected"], 15)
        again = Subscriber(port, "fault/#")
        subscribers.append(again)
        # The readings kept during the outage go first, then new ones.
        wait_for(lambda: mqtt()["published"] >= published + 3, 10)
        again.wait("fault/activeEnergyPlus")  # not retained: published after the restart
        assert again.latest()["fault/activeEnergyPlus"][1] is False
        assert_serving_fresh_readings(service)
        assert (mqtt()["failed"], mqtt()["dropped"]) == (0, 0)
    finally:
        for sub in subscribers:
            sub.close()
        service.stop()
        broker.stop()


# -- UDP -------------------------------------------------------------------------------


def test_udp_receiver_gone_and_back(meter: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mbuspico")
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    service = serve(meter, udp_enabled=True, udp_port=port, udp_interval=0.1)
    try:
        meter.start()
        assert json.loads(rx.recv(4096))["meterNumber"] == "181220002177"
        rx.close()  # nothing listens any more: the datagrams go nowhere
        sent = service.udp_sent
        wait_for(lambda: service.udp_sent >= sent + 5, 5)
        assert_serving_fresh_readings(service)
        assert not warnings_with(caplog, "UDP")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:  # the receiver returns
            back.bind(("127.0.0.1", port))
            back.settimeout(5)
            assert json.loads(back.recv(4096))["meterNumber"] == "181220002177"
    finally:
        rx.close()
        service.stop()


def test_udp_sends_failing_are_logged_once(
    meter: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Every send fails (broadcast address without SO_BROADCAST: EACCES): one warning."""
    caplog.set_level(logging.INFO, logger="mbuspico")
    service = serve(
        meter, udp_enabled=True, udp_host="255.255.255.255", udp_port=9, udp_interval=0.05
    )
    try:
        meter.start()
        wait_for(lambda: service.udp_failed >= 10, 5)
        assert_serving_fresh_readings(service)
        assert service.udp_sent == 0
    finally:
        service.stop()
    logged = warnings_with(caplog, "UDP to 255.255.255.255:9 failed")
    assert len(logged) == 1, logged


# -- CSV log on a full disk ------------------------------------------------------------


class FullDisk:
    """Makes the CSV sink's writes fail as on a full disk while ``full`` is set.

    A row being written when the disk fills gets half its bytes onto the disk
    (a torn line), then ``ENOSPC``, as a short ``write`` followed by a failing
    one does.
    """

    def __init__(self) -> None:
        self.full = threading.Event()
        self.refused = 0
        self._write_all = csvlog._write_all

    def __call__(self, fd: int, data: bytes) -> None:
        if not self.full.is_set():
            self._write_all(fd, data)
            return
        self.refused += 1
        if self.refused == 1:
            os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_csv_disk_full_then_space_again(
    meter: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mbuspico")
    disk = FullDisk()
    monkeypatch.setattr(csvlog, "_write_all", disk)
    directory = tmp_path / "csv"
    service = serve(meter, csv_directory=str(directory))
    (csv_sink,) = service.sinks
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        sink = lambda: service.status()["sinks"]["csv"]  # noqa: E731
        meter.start()
        wait_for(lambda: sink()["published"] >= 3, 5)

        disk.full.set()
        failed = sink()["failed"]
        wait_for(lambda: sink()["failed"] >= failed + 5, 5)
        assert_serving_fresh_readings(service)
        status, _, body = get(url + "/api/files")
        assert status == 200
        assert [f["name"] for f in json.loads(body)]
        assert len(warnings_with(caplog, "No space left on device")) == 1
        # A full disk tears a row per reading: the repair is no warning of its own each time.
        assert len(warnings_with(caplog, "torn last line")) <= 1

        disk.full.clear()
        published = sink()["published"]
        wait_for(lambda: sink()["published"] >= published + 3, 5)
        assert_serving_fresh_readings(service)
        assert any("csv: delivering again" in m for m in caplog.messages)
    finally:
        service.stop()
    # The torn row was cut off when the file was reopened: every line is complete.
    (path,) = directory.glob("*.csv")
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0][:3] == ["time", "meterNumber", "activePowerPlus"]
    assert all(len(row) == len(rows[0]) for row in rows)
    assert all(row[0] and float(row[2]) >= 0 for row in rows[1:])
    assert len(rows) - 1 == csv_sink.published  # one row per reading delivered, none twice
    # Repaired (at debug level: the failure run's start was the one warning).
    assert any("torn last line removed" in m for m in caplog.messages)
    assert disk.refused >= 5
