"""MqttSink against a real mosquitto broker, with real decoded vectors."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import mbuspico
from conftest import DATA, by_id
from mbuspico.compat import to_mbuspico_json
from mbuspico.serve.sinks.mqtt import MqttSink

MOSQUITTO = Path("/usr/sbin/mosquitto")
PASSWORD = "s3cr3t-Pa55word"  # noqa: S105 - a test broker's password
# <prefix>/status of a sink without statistics, and its last will.
ONLINE = '{"state": "online"}'
OFFLINE = '{"state": "offline"}'


# -- readings ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaifa_vector() -> dict[str, Any]:
    return by_id("fkw9_kaifa_ma309m_real")


@pytest.fixture(scope="module")
def dlms_reading(kaifa_vector) -> dict[str, Any]:
    return dict(mbuspico.Decoder(kaifa_vector["key"]).decode(bytes.fromhex(kaifa_vector["hex"])))


@pytest.fixture(scope="module")
def dsmr_reading() -> dict[str, Any]:
    doc = json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))
    vector = next(v for v in doc["vectors"] if v["id"] == "dsmr_parser/TELEGRAM_V5")
    return dict(mbuspico.Decoder().decode(vector["text"].encode()))


# -- broker --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s")


class Broker:
    def __init__(self, directory: Path, port: int, lines: list[str]) -> None:
        self.port = port
        self.directory = directory
        self.conf = directory / f"mosquitto-{port}.conf"
        self.log = directory / f"mosquitto-{port}.log"
        config = [f"listener {port} 127.0.0.1", *lines, "persistence false"]
        if os.geteuid() == 0:
            config.append("user root")  # do not drop to a user that cannot read tmp_path
        self.conf.write_text("\n".join(config) + "\n", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )

        def accepting() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_for(accepting, 10, "mosquitto accepting connections")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def brokers(tmp_path) -> Iterator[Any]:
    """Start a mosquitto: ``brokers(*config_lines, port=None)``; all are killed at the end."""
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing: run scripts/system-deps to install mosquitto")
    started: list[Broker] = []

    def start(*lines: str, port: int | None = None, run: bool = True) -> Broker:
        broker = Broker(tmp_path, port or free_port(), list(lines))
        started.append(broker)
        if run:
            broker.start()
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(brokers) -> Broker:
    return brokers("allow_anonymous true")  # type: ignore[no-any-return]


class Subscriber:
    """A paho client that records every message under ``topic``."""

    def __init__(self, port: int, topic: str = "#", **options: Any) -> None:
        self.messages: list[tuple[str, Any, bool]] = []
        self.binary = bool(options.get("binary"))  # keep payloads as bytes
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex}")
        if "username" in options:
            client.username_pw_set(options["username"], options.get("password"))
        if "tls" in options:
            client.tls_set_context(options["tls"])
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        assert self._subscribed.wait(10), "subscriber could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            payload = message.payload if self.binary else message.payload.decode()
            self.messages.append((message.topic, payload, bool(message.retain)))

    def latest(self) -> dict[str, tuple[Any, bool]]:
        with self._lock:
            return {topic: (payload, retain) for topic, payload, retain in self.messages}

    def wait(self, topic: str, payload: str | None = None, timeout: float = 10.0) -> Any:
        def seen() -> str | None:
            got = self.latest().get(topic)
            if got is None or (payload is not None and got[0] != payload):
                return None
            return got[0]

        return wait_for(seen, timeout, f"{topic} = {payload!r}")  # type: ignore[no-any-return]

    def wait_state(self, topic: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        """The latest JSON status on ``topic`` once its ``state`` is ``state``."""

        def seen() -> dict[str, Any] | None:
            got = self.latest().get(topic)
            doc = json.loads(got[0]) if got is not None else None
            return doc if isinstance(doc, dict) and doc.get("state") == state else None

        return wait_for(seen, timeout, f"{topic} state {state!r}")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Any]:
    subscribers: list[Subscriber] = []

    def make(port: int, topic: str = "#", **options: Any) -> Subscriber:
        subscriber = Subscriber(port, topic, **options)
        subscribers.append(subscriber)
        return subscriber

    yield make
    for subscriber in subscribers:
        subscriber.close()


@pytest.fixture
def sinks() -> Iterator[Any]:
    """``sinks(**kwargs)``: a started MqttSink (host 127.0.0.1), closed at the end."""
    made: list[MqttSink] = []

    def make(**kwargs: Any) -> MqttSink:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("client_id", f"sink-{uuid.uuid4().hex}")
        sink = MqttSink(**kwargs)
        made.append(sink)
        sink.start()
        return sink

    yield make
    for sink in made:
        sink.close(timeout=2)


def delivered(sink: MqttSink, count: int = 1) -> None:
    wait_for(lambda: sink.status()["published"] >= count, 10, "reading delivered")


# -- modes ---------------------------------------------------------------------------------------


def test_mbuspico_mode_matches_mbuspico_json(broker, subscribe, sinks, dlms_reading):
    sub = subscribe(broker.port, "mbuspico/#")
    sink = sinks(port=broker.port, mode="mbuspico")
    assert sink.wait_connected(10)
    assert sub.wait("mbuspico/status") == ONLINE
    sink.publish(dlms_reading)
    delivered(sink)
    sub.wait("mbuspico/powerFactor")  # the last topic of a reading
    got = sub.latest()

    assert got["mbuspico/activePowerPlus"][0] == "1055.00"
    assert got["mbuspico/voltageL1"][0] == "234.50"
    assert got["mbuspico/currentL1"][0] == "3.83"
    assert got["mbuspico/powerFactor"][0] == "968.00"
    assert got["mbuspico/meterNumber"][0] == "181220002177"
    assert got["mbuspico/timestamp"][0] == "2022-02-04T16:43:20Z"
    assert got["mbuspico/lxTimestamp"][0] == "413225000"
    assert got["mbuspico/activeEnergyPlus"][0] == "1340436.00"
    # The same texts as MBusPico's JSON, except the zero export total (never published).
    expected = json.loads(to_mbuspico_json(dlms_reading))  # type: ignore[arg-type]
    for line in to_mbuspico_json(dlms_reading).splitlines()[1:-1]:  # type: ignore[arg-type]
        name, text = line.rstrip(",").split(": ", 1)
        name = name.strip('"')
        if name == "activeEnergyMinus":
            assert expected[name] == 0
            assert "mbuspico/activeEnergyMinus" not in got
        else:
            assert got[f"mbuspico/{name}"][0] == text.strip('"')
    status = sink.status()
    assert status == {"published": 1, "failed": 0, "dropped": 0, "connected": True}

    sink.close()  # a clean stop says offline too
    assert sub.wait("mbuspico/status", OFFLINE) == OFFLINE
    assert sink.status()["connected"] is False


def test_evn_topics(broker, subscribe, sinks, dlms_reading):
    """EVN Kaifa to MQTT's topics: w_ the total energies (Wh), p_ the powers (W); zero is sent."""
    sub = subscribe(broker.port, "evn/#")
    sink = sinks(port=broker.port, mode="evn-topics", topic_prefix="evn")
    assert sink.wait_connected(10)
    sink.publish(dlms_reading)
    delivered(sink)
    sub.wait("evn/phi")
    got = {topic: payload for topic, (payload, _) in sub.latest().items()}
    assert got == {
        "evn/status": ONLINE,
        "evn/meternumber": "181220002177",
        "evn/timestamp": "2022-02-04T16:43:20+01:00",
        "evn/w_p": "1340436",
        "evn/w_n": "0",
        "evn/p_p": "1055",
        "evn/p_n": "0",
        "evn/u1": "234.5",
        "evn/u2": "233.4",
        "evn/u3": "233.7",
        "evn/i1": "3.83",
        "evn/i2": "1.69",
        "evn/i3": "0.92",
        "evn/phi": "0.968",
    }


def test_evn_json(broker, subscribe, sinks, dlms_reading):
    sub = subscribe(broker.port, "mbuspico/json")
    sink = sinks(port=broker.port, mode="evn-json", qos=1, retain=True)
    assert sink.wait_connected(10)
    sink.publish(dlms_reading)
    text = sub.wait("mbuspico/json")
    doc = json.loads(text)
    assert list(doc) == [
        *("meternumber", "timestamp", "w_p", "w_n", "p_p", "p_n"),
        *("u1", "u2", "u3", "i1", "i2", "i3", "phi", "ip", "rssi"),
    ]  # the order of the seed's table and example
    assert doc == {
        "meternumber": "181220002177",
        "timestamp": "2022-02-04T16:43:20+01:00",
        "w_p": 1340436,
        "w_n": 0,
        "p_p": 1055,
        "p_n": 0,
        "u1": 234.5,
        "u2": 233.4,
        "u3": 233.7,
        "i1": 3.83,
        "i2": 1.69,
        "i3": 0.92,
        "phi": 0.968,
        "ip": "127.0.0.1",  # this host's address on the connection to the broker
        "rssi": None,  # loopback is not a wireless interface
    }
    # retain=True: a late subscriber gets it as a retained message.
    late = subscribe(broker.port, "mbuspico/json")
    late.wait("mbuspico/json")
    assert late.latest()["mbuspico/json"][1] is True


def test_evn_raw_is_the_decrypted_apdu_as_binary(
    broker, subscribe, sinks, dlms_reading, kaifa_vector
):
    sub = subscribe(broker.port, "mbuspico/raw", binary=True)
    sink = sinks(port=broker.port, mode="evn-raw")
    assert sink.wait_connected(10)
    sink.publish(dlms_reading)  # no "apdu": skipped, counted nowhere
    apdu = bytes.fromhex(kaifa_vector["plaintext_hex"])
    sink.publish({**dlms_reading, "apdu": apdu})
    assert sub.wait("mbuspico/raw") == apdu
    sink.publish({**dlms_reading, "apdu": apdu.hex().upper()})
    delivered(sink, 2)
    assert sink.status()["published"] == 2
    assert sink.status()["failed"] == 0
    assert [m for m in sub.messages if m[0] == "mbuspico/raw"] == [
        ("mbuspico/raw", apdu, False)
    ] * 2


def test_mbuspico_mode_publishes_p1_readings_too(broker, subscribe, sinks, dsmr_reading):
    """A P1 reading carries MBusPico's fields: the same topics and texts as MBusPico's JSON."""
    sub = subscribe(broker.port, "mbuspico/#")
    sink = sinks(port=broker.port, mode="mbuspico")
    assert sink.wait_connected(10)
    sink.publish(dsmr_reading)
    delivered(sink)
    sub.wait("mbuspico/powerFactor")
    got = {topic: payload for topic, (payload, _) in sub.latest().items()}
    expected = json.loads(to_mbuspico_json(dsmr_reading))  # type: ignore[arg-type]
    assert expected["meterNumber"] == "K8EG004046395507"  # the equipment id, hex-decoded
    for line in to_mbuspico_json(dsmr_reading).splitlines()[1:-1]:  # type: ignore[arg-type]
        name, text = line.rstrip(",").split(": ", 1)
        name = name.strip('"')
        if name.startswith("activeEnergy") and expected[name] == 0:
            assert f"mbuspico/{name}" not in got  # a zero total is never published
        else:
            assert got[f"mbuspico/{name}"] == text.strip('"'), name
    assert got["mbuspico/activePowerPlus"] == "244.00"  # 0.244 kW in the telegram
    assert got["mbuspico/activeEnergyPlus"] == "6825.00"  # the two tariffs, Wh
    assert sink.status()["published"] == 1


def test_mbuspico_and_evn_modes_skip_wired_mbus(broker, sinks):
    frame = bytes.fromhex((DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text())
    mbus_reading = dict(mbuspico.Decoder().decode(frame))
    for mode in ("mbuspico", "evn-topics", "evn-json"):
        sink = sinks(port=broker.port, mode=mode)
        assert sink.wait_connected(10)
        sink.publish(mbus_reading)
        time.sleep(0.2)
        assert sink.status() == {"published": 0, "failed": 0, "dropped": 0, "connected": True}


def test_obis_mode_dsmr5(broker, subscribe, sinks, dsmr_reading):
    sub = subscribe(broker.port, "p1/#")
    sink = sinks(port=broker.port, mode="obis", topic_prefix="p1", telegram_json=True)
    assert sink.wait_connected(10)
    sink.publish(dsmr_reading)
    telegram = json.loads(sub.wait("p1/telegram"))  # published last
    got = {topic: payload for topic, (payload, _) in sub.latest().items()}
    assert got["p1/electricity_used_tariff_1"] == "4.426"
    assert got["p1/electricity_used_tariff_2"] == "2.399"
    assert got["p1/electricity_delivered_tariff_1"] == "2.444"
    assert "p1/electricity_delivered_tariff_2" not in got  # 0 kWh total: skipped
    assert got["p1/current_electricity_usage"] == "0.244"
    assert got["p1/current_electricity_delivery"] == "0"
    assert got["p1/instantaneous_voltage_l1"] == "230"
    assert got["p1/instantaneous_current_l3"] == "0.86"
    assert got["p1/short_power_failure_count"] == "13"
    assert got["p1/mbus_1"] == "0.107"
    assert "p1/mbus_2" not in got  # channel 2 sent no value
    assert not any(topic.startswith("p1/equipment") for topic in got)  # text is not a value
    assert telegram == json.loads(json.dumps(dsmr_reading))


# -- Home Assistant discovery ----------------------------------------------------------------


def configs(sub: Subscriber, node: str) -> dict[str, tuple[dict[str, Any], bool]]:
    prefix = f"homeassistant/sensor/{node}/"
    return {
        topic[len(prefix) : -len("/config")]: (json.loads(payload), retain)
        for topic, (payload, retain) in sub.latest().items()
        if topic.startswith(prefix)
    }


def test_discovery_dlms_and_republish_on_reconnect(
    brokers, subscribe, sinks, dlms_reading, tmp_path
):
    broker = brokers("allow_anonymous true")
    sink = sinks(port=broker.port, mode="mbuspico", discovery=True)
    assert sink.wait_connected(10)
    first = subscribe(broker.port, "mbuspico/powerFactor")
    sink.publish(dlms_reading)
    first.wait("mbuspico/powerFactor")

    node = "mbuspico_181220002177"
    late = subscribe(broker.port, "homeassistant/#")  # retained configs only
    wait_for(lambda: len(configs(late, node)) == 11, 10, "11 discovery configs")
    got = configs(late, node)
    assert all(retain for _, retain in got.values())

    energy = got["activeEnergyPlus"][0]
    assert energy["device_class"] == "energy"
    assert energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "Wh"
    assert energy["state_topic"] == "mbuspico/activeEnergyPlus"
    assert energy["availability_topic"] == "mbuspico/status"
    assert energy["availability_template"] == "{{ value_json.state }}"  # the status is JSON
    assert energy["unique_id"] == "mbuspico_181220002177_activeEnergyPlus"
    assert energy["device"]["manufacturer"] == "mbuspico"
    assert energy["device"]["identifiers"] == [node]
    assert energy["name"]
    assert energy["device"]["model"]
    power = got["activePowerPlus"][0]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    assert got["voltageL2"][0]["unit_of_measurement"] == "V"
    assert got["voltageL2"][0]["device_class"] == "voltage"
    assert got["currentL3"][0]["unit_of_measurement"] == "A"
    assert got["currentL3"][0]["device_class"] == "current"
    factor = got["powerFactor"][0]
    assert factor["device_class"] == "power_factor"
    assert "unit_of_measurement" not in factor
    assert "1000" in factor["value_template"]  # MBusPico's x 1000 undone

    # A new broker (no retained messages) gets the configs again on reconnect.
    broker.stop()
    wait_for(lambda: not sink.status()["connected"], 10, "sink sees the broker gone")
    again = brokers("allow_anonymous true", port=broker.port)
    assert again.port == broker.port
    wait_for(lambda: sink.status()["connected"], 15, "sink reconnected")
    after = subscribe(again.port, "#")
    wait_for(lambda: len(configs(after, node)) == 11, 10, "configs republished")
    assert after.wait("mbuspico/status") == ONLINE
    assert after.latest()["mbuspico/status"][1] is True


def test_discovery_dsmr(broker, subscribe, sinks, dsmr_reading):
    sink = sinks(port=broker.port, mode="obis", discovery=True, discovery_prefix="ha")
    assert sink.wait_connected(10)
    sub = subscribe(broker.port, "#")
    sink.publish(dsmr_reading)
    delivered(sink)
    node = "mbuspico_4B384547303034303436333935353037"

    def config(name: str) -> dict[str, Any]:
        return json.loads(sub.wait(f"ha/sensor/{node}/{name}/config"))  # type: ignore[no-any-return]

    energy = config("electricity_used_tariff_1")
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy",
        "total_increasing",
        "kWh",
    )
    assert energy["state_topic"] == "mbuspico/electricity_used_tariff_1"
    power = config("current_electricity_usage")
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "kW",
    )
    gas = config("mbus_1")
    assert (gas["device_class"], gas["state_class"], gas["unit_of_measurement"]) == (
        "gas",
        "total_increasing",
        "m³",
    )
    assert config("instantaneous_voltage_l1")["unit_of_measurement"] == "V"
    assert config("instantaneous_current_l1")["device_class"] == "current"


# -- availability, security, robustness ----------------------------------------------------------


def test_last_will_after_unclean_death(broker, subscribe, tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from mbuspico.serve.sinks.mqtt import MqttSink
        sink = MqttSink("127.0.0.1", {broker.port}, topic_prefix="will", client_id="will-test")
        sink.start()
        assert sink.wait_connected(10)
        print("connected", flush=True)
        time.sleep(60)
        """
    )
    sub = subscribe(broker.port, "will/status")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"connected\n"
        assert sub.wait("will/status", ONLINE) == ONLINE
        late = subscribe(broker.port, "will/status")
        assert late.wait("will/status") == ONLINE
        assert late.latest()["will/status"][1] is True  # retained
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert json.loads(sub.wait("will/status", OFFLINE)) == {"state": "offline"}
        later = subscribe(broker.port, "will/status")
        assert later.wait("will/status") == OFFLINE
        assert later.latest()["will/status"][1] is True  # the will is retained
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)  # noqa: S607


@pytest.fixture
def pki(tmp_path) -> Path:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: run scripts/system-deps")
    d = tmp_path / "pki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "ca.cnf").write_text(
        "[req]\ndistinguished_name=dn\nx509_extensions=ca\n[dn]\n"
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
        encoding="utf-8",
    )
    openssl(
        "req", "-x509", *ec, "-config", "ca.cnf", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=mbuspico test CA", cwd=d,
    )  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + ext,
            encoding="utf-8",
        )
        openssl(
            "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", "-config", "ca.cnf", cwd=d,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d,
        )  # fmt: skip
    return d


def test_tls_with_client_certificate(brokers, subscribe, sinks, pki, dlms_reading):
    import ssl

    broker = brokers(
        "allow_anonymous true",
        f"cafile {pki / 'ca.crt'}",
        f"certfile {pki / 'server.crt'}",
        f"keyfile {pki / 'server.key'}",
        "require_certificate true",
    )
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    sub = subscribe(broker.port, "secure/#", tls=context)
    # Without the CA the broker's certificate is not trusted: never connects, never raises.
    untrusted = sinks(port=broker.port, topic_prefix="untrusted", tls=True)
    sink = sinks(
        port=broker.port,
        mode="evn-json",
        topic_prefix="secure",
        tls=True,
        ca_file=str(pki / "ca.crt"),
        cert_file=str(pki / "client.crt"),
        key_file=str(pki / "client.key"),
    )
    assert sink.wait_connected(10)
    sink.publish(dlms_reading)
    assert json.loads(sub.wait("secure/json"))["p_p"] == 1055
    assert sub.wait("secure/status") == ONLINE
    assert not untrusted.status()["connected"]


def test_username_password(brokers, subscribe, sinks, tmp_path, dlms_reading, caplog):
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        pytest.skip("mosquitto_passwd is not installed")
    passwords = tmp_path / "passwords"
    subprocess.run([tool, "-b", "-c", str(passwords), "meter", PASSWORD], check=True)
    broker = brokers("allow_anonymous false", f"password_file {passwords}")
    caplog.set_level(logging.DEBUG, logger="mbuspico")

    sub = subscribe(broker.port, "mbuspico/#", username="meter", password=PASSWORD)
    wrong = sinks(port=broker.port, username="meter", password=PASSWORD + "x")
    sink = sinks(port=broker.port, mode="evn-topics", username="meter", password=PASSWORD)
    assert sink.wait_connected(10)
    sink.publish(dlms_reading)
    assert sub.wait("mbuspico/p_p") == "1055"
    wait_for(lambda: "refused" in caplog.text, 5, "the wrong password is refused")
    assert not wrong.status()["connected"]
    wrong.publish(dlms_reading)
    time.sleep(1.0)  # kept for when the broker takes it: neither published nor failed
    assert (wrong.status()["published"], wrong.status()["failed"]) == (0, 0)
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refusals) == 1  # logged once while it keeps being refused

    for shown in (repr(sink), repr(wrong), str(sink.status()), str(wrong.status()), caplog.text):
        assert PASSWORD not in shown
    assert "meter" in repr(sink)


def test_unreachable_broker_never_blocks_and_recovers(brokers, subscribe, sinks, dlms_reading):
    broker = brokers("allow_anonymous true", run=False)
    sink = sinks(port=broker.port, mode="evn-json", maxsize=10)
    start = time.monotonic()
    for i in range(50):
        sink.publish({**dlms_reading, "meterNumber": f"{i:02d}"})
    assert time.monotonic() - start < 0.5
    # 10 wait in the buffer (and 1 in delivery, if the worker took it in time);
    # the oldest are dropped, and counted.
    time.sleep(0.5)
    status = sink.status()
    assert status["dropped"] in (39, 40)
    assert status["connected"] is False
    assert (status["published"], status["failed"]) == (0, 0)
    kept = 50 - status["dropped"]

    broker.start()
    assert sink.wait_connected(15)
    sub = subscribe(broker.port, "mbuspico/#")
    wait_for(lambda: sink.status()["published"] == kept, 10, "the kept readings delivered")
    sink.publish({**dlms_reading, "meterNumber": "50"})
    wait_for(lambda: sink.status()["published"] == kept + 1, 10, "a new one after them")

    # The subscriber gets the kept readings, then this one (published is counted
    # when the broker acknowledges, before the subscriber has it).
    def newest() -> str | None:
        got = sub.latest().get("mbuspico/json")
        return str(json.loads(got[0])["meternumber"]) if got is not None else None

    wait_for(lambda: newest() == "50", 10, "the new reading at the subscriber")
    assert sink.status()["failed"] == 0


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="mode"):
        MqttSink("localhost", mode="xml")
    with pytest.raises(ValueError, match="qos"):
        MqttSink("localhost", qos=3)
    with pytest.raises(ValueError, match="topic_prefix"):
        MqttSink("localhost", topic_prefix="a/#")
    sink = MqttSink("localhost", password=PASSWORD, username="u")
    assert PASSWORD not in repr(sink)
    assert sink.client_id.startswith("mbuspico-")


def test_serve_publishes_to_mqtt_end_to_end(broker, subscribe):
    """``mbuspico serve --demo`` configured by MBusPico's MQTT variables, as a user runs it.

    The simulated meter publishes under ``<prefix>_demo``, never the real meter's topics.
    """
    sub = subscribe(broker.port)
    env = {
        **os.environ,
        "MBUSPICO_HTTP_ENABLED": "false",
        "MBUSPICO_MQTT_ENABLED": "true",
        "MBUSPICO_MQTT_BROKER_ADDRESS": "127.0.0.1",
        "MBUSPICO_MQTT_BROKER_PORT": str(broker.port),
        "MBUSPICO_MQTT_TOPIC_PREFIX": "home/meter",
        "MBUSPICO_MQTT_DISCOVERY": "true",
    }
    exe = str(Path(sys.executable).with_name("mbuspico"))
    proc = subprocess.Popen(
        [exe, "serve", "--demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        online = sub.wait_state("home/meter_demo/status", "online", timeout=15)
        assert online["clientId"].startswith("mbuspico-")  # the service's statistics
        power = sub.wait("home/meter_demo/activePowerPlus", timeout=15)
        voltage = sub.wait("home/meter_demo/voltageL1", timeout=15)
        number = sub.wait("home/meter_demo/meterNumber", timeout=15)
        # The simulated Kaifa meter: plausible values in MBusPico's number format.
        assert float(power) >= 0
        assert re.fullmatch(r"\d+\.\d\d", power)
        assert 200 <= float(voltage) <= 260
        topic = f"homeassistant/sensor/mbuspico_{number}/activeEnergyPlus/config"
        config = json.loads(sub.wait(topic, timeout=15))
        assert (config["device_class"], config["state_class"]) == ("energy", "total_increasing")
        assert config["state_topic"] == "home/meter_demo/activeEnergyPlus"
        late = subscribe(broker.port, topic)  # a client that comes later gets it: retained
        late.wait(topic, timeout=10)
        assert late.latest()[topic][1] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"publishing to mqtt" in out
    assert sub.wait("home/meter_demo/status", OFFLINE, timeout=10) == OFFLINE


def test_serve_evn_raw_publishes_the_decrypted_apdu(broker, subscribe):
    from mbuspico.serve import Service
    from mbuspico.serve.config import Config
    from mbuspico.simulate.dlms import Simulator

    key = "36C66639E48A8CA4D6BC8B282A793BBB"
    sub = subscribe(broker.port, "evn/#", binary=True)
    with Simulator("kaifa-ma309m", key=key, interval=0.1, seed=9) as sim:
        service = Service(
            Config(
                key=key,
                serial_port=sim.port,
                http_enabled=False,
                mqtt_enabled=True,
                mqtt_host="127.0.0.1",
                mqtt_port=broker.port,
                mqtt_prefix="evn",
                mqtt_mode="evn-raw",
            )
        )
        service.start()
        try:
            # Readings are not kept while the broker is unreachable: connect first.
            wait_for(lambda: service.status()["sinks"]["mqtt"]["connected"], 10, "connected")
            sim.start(count=3)
            sim.wait()
            wait_for(lambda: service.status()["sinks"]["mqtt"]["published"] == 3, 15, "3 published")
        finally:
            service.stop()
    raws = [payload for topic, payload, _ in sub.messages if topic == "evn/raw"]
    decoder = mbuspico.Decoder(key)
    assert raws == [decoder.apdu(t.telegram) for t in sim.sent]  # binary, as EVN's raw mode
    assert all(raw[0] == 0x0F for raw in raws)  # data-notification
