"""Service statistics: ``GET /api/status`` and ``<prefix>/status`` on a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import serve
from mbuspico.serve import Service, stats
from mbuspico.serve.config import Config, ConfigError, load
from mbuspico.serve.sinks.mqtt import MqttSink
from mbuspico.simulate.dlms import Simulator
from mbuspico.simulate.mbus_slave import MBusSlave, SlaveMeter
from test_mqtt import PASSWORD, Subscriber, broker, brokers, free_port, subscribe, wait_for

__all__ = ["broker", "brokers", "subscribe"]  # fixtures used by name below

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
CF_ECHO = Path(__file__).parent / "data" / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"
OTHER_KEY = "00112233445566778899AABBCCDDEEFF"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(r.read())


def status_docs(sub: Subscriber, topic: str) -> list[dict[str, Any]]:
    """Every JSON document received on ``topic``, oldest first."""
    with sub._lock:
        return [json.loads(payload) for t, payload, _ in sub.messages if t == topic]


# -- system figures ------------------------------------------------------------------------------


def zone(base: Path, number: int, kind: str, temp: str) -> None:
    d = base / f"thermal_zone{number}"
    d.mkdir(parents=True)
    (d / "type").write_text(kind + "\n")
    (d / "temp").write_text(temp + "\n")


def test_cpu_temperature_picks_the_cpu_zone(tmp_path):
    zone(tmp_path, 0, "acpitz", "27800")
    zone(tmp_path, 1, "x86_pkg_temp", "48312")
    zone(tmp_path, 2, "iwlwifi_1", "39000")
    (tmp_path / "cooling_device0").mkdir()
    assert stats.cpu_temperature(tmp_path) == 48.3
    zone(tmp_path, 10, "cpu-thermal", "51540")  # a Raspberry Pi's name beats Intel's
    assert stats.cpu_temperature(tmp_path) == 51.5


def test_cpu_temperature_fallbacks(tmp_path):
    assert stats.cpu_temperature(tmp_path / "missing") is None
    assert stats.cpu_temperature(tmp_path) is None  # no zones at all
    zone(tmp_path, 1, "gpu-thermal", "60000")
    zone(tmp_path, 0, "soc-dummy", "-5250")
    assert stats.cpu_temperature(tmp_path) == -5.2  # no CPU type: the lowest zone
    zone(tmp_path, 3, "CPU0 sensor", "45000")
    assert stats.cpu_temperature(tmp_path) == 45.0  # a type mentioning cpu
    (tmp_path / "thermal_zone3" / "temp").write_text("N/A\n")
    assert stats.cpu_temperature(tmp_path) is None  # unreadable value: no figure, no error
    (tmp_path / "thermal_zone3" / "temp").unlink()
    assert stats.cpu_temperature(tmp_path) is None


def test_rss_from_proc_and_fallback(tmp_path):
    fake = tmp_path / "status"
    fake.write_text("Name:\tpython\nVmPeak:\t  99999 kB\nVmRSS:\t   20992 kB\nThreads:\t1\n")
    assert stats.rss_mib(fake) == 20.5
    mine = Path("/proc/self/status").read_text()
    kib = int(next(line for line in mine.splitlines() if line.startswith("VmRSS:")).split()[1])
    assert abs(stats.rss_mib() - kib / 1024) < 5  # type: ignore[operator]
    peak = stats.rss_mib(tmp_path / "missing")  # getrusage's peak instead
    assert peak is not None
    assert peak >= kib / 1024 - 5
    fake.write_text("VmRSS:\tlots\n")  # unparsable: the peak again, no error
    assert stats.rss_mib(fake) >= peak  # type: ignore[operator]


# -- settings ------------------------------------------------------------------------------------


def test_status_interval_setting():
    assert Config().mqtt_status_interval == 60.0
    env = {"MBUSPICO_MQTT_STATUS_INTERVAL_S": "15"}
    assert load(env, demo=True).mqtt_status_interval == 15.0
    assert load(env, flags={"mqtt_status_interval": "0"}, demo=True).mqtt_status_interval == 0.0
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="MBUSPICO_MQTT_STATUS_INTERVAL_S"):
            load({"MBUSPICO_MQTT_STATUS_INTERVAL_S": bad}, demo=True)


# -- HTTP ----------------------------------------------------------------------------------------


def test_api_status_counts_what_the_meter_sent(tmp_path):
    zone(tmp_path, 0, "cpu-thermal", "47234")
    with Simulator("kaifa-ma309m", key=KEY, interval=0.05, garbage=0.5, seed=5) as sim:
        service = serve(sim, start=False)
        service.thermal_base = str(tmp_path)
        service.start()
        try:
            url = f"http://127.0.0.1:{service.http_port}/api/status"
            port = sim.port
            before = get_json(url)
            assert before["telegrams"] == {
                "good": 0,
                "badChecksum": 0,
                "decryptionFailures": 0,
                "bytesSkipped": 0,
            }
            assert before["lastReadingAt"] is None
            sim.start(count=6)
            sim.wait()
            wait_for(lambda: service.status()["telegrams"]["good"] == 6, 10, "6 readings")
            info = get_json(url)
            page = urllib.request.urlopen(url.replace("/api/status", "/status.html"), timeout=5)  # noqa: S310
            with page:
                html = page.read().decode()
        finally:
            service.stop()
    garbage = sum(len(t.wire) - len(t.telegram) for t in sim.sent)
    assert garbage > 0  # seed 5 puts garbage before some telegrams
    assert not any(t.faulted for t in sim.sent)
    assert info["telegrams"] == {
        "good": 6,
        "badChecksum": 0,
        "decryptionFailures": 0,
        "bytesSkipped": garbage,
    }
    # The existing keys stay, and agree with the new object.
    counters = info["counters"]
    assert counters["readings"] == 6
    assert counters["bytes_skipped"] == garbage
    assert info["serialPort"] == {"path": port, "connected": True}
    assert info["lastReadingAt"].endswith("+00:00")
    assert info["lastMeterTime"] == sim.sent[-1].expected["timestamp"]  # type: ignore[index]
    assert info["uptimeSeconds"] >= 0
    assert info["cpuTemperatureC"] == 47.2
    assert 5 < info["rssMiB"] < 4096
    assert info["hostname"] == stats.hostname()
    assert info["clientId"] is None  # no MQTT
    assert info["mdns"] is None  # off
    assert "CPU temperature 47.2 °C" in html
    assert f"telegrams 6 good, 0 bad checksum,\n0 not decrypted, {garbage} bytes skipped" in html


def test_api_status_counts_decryption_failures():
    with Simulator("kaifa-ma309m", key=OTHER_KEY, interval=0.05, seed=2) as sim:
        service = serve(sim, start=False)
        service.thermal_base = "/nonexistent"
        service.start()
        try:
            sim.start(count=4)
            sim.wait()
            wait_for(lambda: service.status()["telegrams"]["decryptionFailures"] == 4, 10, "4")
            info = get_json(f"http://127.0.0.1:{service.http_port}/api/status")
        finally:
            service.stop()
    assert info["telegrams"] == {
        "good": 0,
        "badChecksum": 0,
        "decryptionFailures": 4,
        "bytesSkipped": 0,
    }
    assert info["counters"]["decryption_errors"] == 4
    assert info["lastReadingAt"] is None
    assert info["cpuTemperatureC"] is None


def test_api_status_counts_bad_checksums():
    with Simulator("kaifa-ma309m", key=KEY, interval=0.05, flip_bit=0.002, seed=7) as sim:
        service = serve(sim)
        try:
            sim.start(count=12)
            sim.wait()
            intact = sum(not t.faulted for t in sim.sent)
            wait_for(lambda: service.status()["telegrams"]["good"] == intact, 10, "intact ones")
            info = service.status()
        finally:
            service.stop()
    assert 0 < intact < 12  # seed 7 damages some telegrams
    assert info["telegrams"]["good"] == intact
    assert info["telegrams"]["badChecksum"] == info["counters"]["bad_checksums"] >= 1
    assert info["telegrams"]["decryptionFailures"] == 0


def test_api_status_counts_bad_checksums_of_a_polled_mbus_meter():
    """A wired meter answering with a wrong checksum: the master sees garbage, counted."""
    meter = SlaveMeter(CF_ECHO, address=5)
    frame = meter.frames[0]
    meter.frames = [frame[:-2] + bytes([frame[-2] ^ 0x01, 0x16])]  # checksum off by one
    with MBusSlave(meter) as bus:
        bus.start()
        service = Service(
            Config(
                protocol="mbus",
                serial_port=bus.port,
                mbus_address="5",
                mbus_interval=0.1,
                http_host="127.0.0.1",
                http_port=0,
                mdns_enabled=False,
            )
        )
        service.start()
        try:
            wait_for(lambda: service.status()["telegrams"]["badChecksum"] >= 2, 10, "2 bad")
            info = service.status()
        finally:
            service.stop()
    counters = info["counters"]
    assert info["telegrams"]["good"] == counters["readings"] == 0
    assert info["telegrams"]["badChecksum"] == counters["bad_checksums"]
    assert counters["no_response"] >= counters["bad_checksums"]  # a garbled answer, as libmbus
    assert info["telegrams"]["decryptionFailures"] == 0
    assert info["lastReadingAt"] is None


# -- MQTT ----------------------------------------------------------------------------------------


def test_mqtt_status_json_retained_and_periodic(broker, subscribe):
    sub = subscribe(broker.port, "st/status")
    with Simulator("kaifa-ma309m", key=KEY, interval=0.05, seed=3) as sim:
        service = serve(
            sim,
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=broker.port,
            mqtt_prefix="st",
            mqtt_client_id="status-test",
            mqtt_user="meter",
            mqtt_password=PASSWORD,
            mqtt_status_interval=0.3,
        )
        try:
            first = wait_for(lambda: status_docs(sub, "st/status"), 10, "status on connect")[0]
            assert first["state"] == "online"
            assert first["clientId"] == "status-test"
            assert first["telegrams"]["good"] == 0
            assert first["sinks"]["mqtt"]["connected"] is True
            sim.start(count=5)
            sim.wait()
            wait_for(lambda: service.status()["telegrams"]["good"] == 5, 10, "5 readings")
            http = get_json(f"http://127.0.0.1:{service.http_port}/api/status")

            def counted() -> list[dict[str, Any]]:
                docs = status_docs(sub, "st/status")
                return [d for d in docs if d["telegrams"]["good"] == 5]

            # Updates keep coming at the interval, without a reconnect.
            later = wait_for(lambda: len(counted()) >= 3 and counted(), 10, "3 updates")
            late = subscribe(broker.port, "st/status")  # retained: a newcomer gets it at once
            retained = json.loads(late.wait("st/status"))
            assert late.latest()["st/status"][1] is True
        finally:
            service.stop()
    assert (
        later[0]["telegrams"]
        == http["telegrams"]
        == {
            "good": 5,
            "badChecksum": 0,
            "decryptionFailures": 0,
            "bytesSkipped": 0,
        }
    )
    assert later[0]["counters"] == http["counters"]
    assert later[0]["lastReadingAt"] == http["lastReadingAt"]
    uptimes = [d["uptimeSeconds"] for d in later]
    assert uptimes == sorted(uptimes)
    assert uptimes[-1] > uptimes[0]
    assert retained["state"] == "online"
    assert retained["telegrams"]["good"] == 5
    assert http["clientId"] == "status-test"
    assert http["sinks"]["mqtt"]["connected"] is True
    assert {"rssMiB", "cpuTemperatureC", "hostname", "uptimeSeconds"} <= retained.keys()
    with sub._lock:
        assert not any(PASSWORD in payload for _, payload, _ in sub.messages)
    # A clean stop leaves the state offline, as JSON.
    assert json.loads(sub.wait("st/status", '{"state": "offline"}')) == {"state": "offline"}


def test_mqtt_status_interval_zero_sends_the_state_alone(broker, subscribe):
    sub = subscribe(broker.port, "zero/status")
    with Simulator("kaifa-ma309m", key=KEY, interval=0.05, seed=3) as sim:
        service = serve(
            sim,
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=broker.port,
            mqtt_prefix="zero",
            mqtt_status_interval=0,
        )
        try:
            assert json.loads(sub.wait("zero/status")) == {"state": "online"}
        finally:
            service.stop()
    sub.wait("zero/status", '{"state": "offline"}')
    assert [json.loads(p) for t, p, _ in sub.messages] == [
        {"state": "online"},
        {"state": "offline"},
    ]


def test_status_payload_without_or_with_failing_statistics():
    def broken() -> dict[str, Any]:
        raise RuntimeError("no figures")

    assert json.loads(MqttSink(status=broken).status_payload()) == {"state": "online"}
    assert json.loads(MqttSink().status_payload()) == {"state": "online"}
    # The state cannot be overridden by the statistics.
    both = MqttSink(status=lambda: {"state": "weird", "uptimeSeconds": 1.5}).status_payload()
    assert json.loads(both) == {"state": "online", "uptimeSeconds": 1.5}
    off = MqttSink(status=lambda: {"uptimeSeconds": 1.5}, status_interval=0).status_payload()
    assert json.loads(off) == {"state": "online"}
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="status_interval"):
            MqttSink(status_interval=bad)


def test_serve_demo_status_and_last_will_after_kill(broker, subscribe):
    """``mbuspico serve --demo``: statistics on MQTT and HTTP; killed, the will says offline."""
    sub = subscribe(broker.port, "demo_demo/status")
    port = free_port()
    env = {
        **os.environ,
        "MBUSPICO_MDNS_ENABLED": "false",
        "MBUSPICO_MQTT_ENABLED": "true",
        "MBUSPICO_MQTT_BROKER_ADDRESS": "127.0.0.1",
        "MBUSPICO_MQTT_BROKER_PORT": str(broker.port),
        "MBUSPICO_MQTT_TOPIC_PREFIX": "demo",
        "MBUSPICO_MQTT_STATUS_INTERVAL_S": "0.5",
    }
    exe = str(Path(sys.executable).with_name("mbuspico"))
    proc = subprocess.Popen(
        [exe, "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def reading() -> dict[str, Any] | None:
            docs = [d for d in status_docs(sub, "demo_demo/status") if d["telegrams"]["good"] >= 2]
            return docs[-1] if docs else None

        doc = wait_for(reading, 20, "a status with two readings")
        http = get_json(f"http://127.0.0.1:{port}/api/status")
        assert doc["state"] == "online"
        assert doc["clientId"].startswith("mbuspico-")
        assert doc["counters"]["readings"] == doc["telegrams"]["good"]
        # The demo meter sends a telegram a second: HTTP, read later, has counted at least as many.
        assert http["telegrams"]["good"] >= doc["telegrams"]["good"]
        assert (
            http["telegrams"]["decryptionFailures"] == doc["telegrams"]["decryptionFailures"] == 0
        )
        assert http["lastMeterTime"] is not None
        proc.send_signal(signal.SIGKILL)  # no clean disconnect: the broker sends the will
        proc.wait(5)
        assert json.loads(sub.wait("demo_demo/status", '{"state": "offline"}', 15)) == {
            "state": "offline"
        }
        late = subscribe(broker.port, "demo_demo/status")
        assert json.loads(late.wait("demo_demo/status")) == {"state": "offline"}
        assert late.latest()["demo_demo/status"][1] is True  # the will is retained
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()
