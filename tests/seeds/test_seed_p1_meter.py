r"""The MicroPython P1 meter (ESP32, DSMR P1 port to MQTT): its document replayed.

Seed: ``shared/seeds/003_b86063f8c3008a9c.txt`` (Josverl/micropython-p1meter README).
What it shows and where it is checked here, on real telegrams of
``tests/data/dsmr/vectors.json``, the P1 simulator on a pseudo-terminal and a
real mosquitto:

* "runs a CRC check on the received information to suppress incorrect
  readings": :func:`test_crc16_accepts_the_right_telegrams_and_refuses_the_others`
  (every telegram of the corpus, CRC-16 computed here independently),
  :func:`test_the_serial_reader_drops_and_counts_a_telegram_with_a_wrong_crc`
  (a real capture with a lost byte between good telegrams);
* "allows the configuration to be changed through a simple config file" and
  "translates the OBIS codes to readable topics" (the ``codetable`` of
  ``config.py``, the regex key ``(\d)-1:24.2.1``, ``total/gas_meter`` with its
  ``/``): :func:`test_the_codetable_of_config_py_names_the_values` (the file is
  read, never run); :func:`test_the_seeds_config_py_loads_without_a_warning`
  (the seed's non-raw ``"(\d)..."`` loads without a warning);
* "publishes the information to a MQTT server", ``ROOT_TOPIC = b"p1_meter"``,
  ``publish_as_json``, the broker's ``user``/``password``:
  :func:`test_simulated_meter_to_mqtt_topics_of_the_codetable` (simulator →
  serial port → service → broker: ``p1_meter/total/gas_meter`` carries the
  telegram's gas value);
* "Configuration for Belgian DSMR Meters" (change the gas line to
  ``0-1:24.2.3``): :func:`test_belgian_meter_needs_the_changed_gas_code` (on
  the broker) and :func:`test_belgian_gas_code_on_every_belgian_telegram`;
* "logs a few relevant sensors statistics to MQTT (client_id, free memory, CPU
  core temperature)": :func:`test_statistics_on_mqtt_and_http` and
  :func:`test_free_memory_and_cpu_temperature_figures`;
* "Simulation / test mode": "a fake P1 message is generated every 10 seconds",
  "a few random values", "the CRC16 is calculated before sending":
  :func:`test_the_simulator_sends_a_telegram_every_10_s_with_its_crc16`; "the
  message is passed over the serial connection to the input" and "processed by
  the normal software" (the seed's own fake messages, ``p1meter_sym.py``):
  :func:`test_the_seed_simulators_own_messages_are_read`; "the root topic is
  changed ... to avoid interfering with actual input":
  :func:`test_simulation_mode_publishes_under_another_root_topic` (``--demo``
  publishes under ``<prefix>_demo``);
* "uses mDns to simplify configuration and avoid the need for fixed IP
  addresses", "advertises itself as ``p1_meter.local``":
  :func:`test_mdns_announces_the_meter` (found by its mDNS name, read without a
  configured address; mbuspico announces a DNS-SD instance ``p1_meter_<id>``, the
  host name stays the machine's).

Not replayed (hardware or MicroPython tooling with no counterpart): the
neopixel LEDs, wiring tables, webrepl, FTP upload, firmware flashing.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import mbuspico
from conftest import DATA, serve
from mbuspico.dsmr import load_names
from mbuspico.serve import stats
from mbuspico.serve.sinks import flat_values
from mbuspico.serve.sinks.mqtt import MqttSink
from mbuspico.simulate.p1 import P1Simulator
from test_mqtt import Subscriber, broker, brokers, subscribe, wait_for

__all__ = ["broker", "brokers", "subscribe"]  # fixtures used by name below

VECTORS: dict[str, dict[str, Any]] = {
    v["id"]: v
    for v in json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))["vectors"]
}

# The seed's MQTT broker settings (its config.py example).
SEED_USER, SEED_PASSWORD = "sensor", "beepbeep"

# The seed's config.py as its document shows it, with a codetable in the seed's
# form (code or regex, topic). The first line proves the file is only read: run,
# it would leave a marker file (and MicroPython's const/unique_id do not exist here).
DUTCH_GAS_LINE = '    ("(\\d)-1:24.2.1"        , "total/gas_meter"),\n'
BELGIAN_GAS_LINE = '    ("0-1:24.2.3"           , "total/gas_meter"),\n'
CONFIG_PY = (
    "open(__file__ + '.was-run', 'w').close()\n"
    "from micropython import const\n"
    "from ubinascii import hexlify\n"
    "from machine import unique_id\n"
    "\n"
    "# Serial Pins for meter connection\n"
    "# TX pin is only used for testing/simulation but needs to be specified\n"
    "RX_PIN_NR = const(2)\n"
    "TX_PIN_NR = const(15)\n"
    "RTS_PIN_NR = const(5)\n"
    "\n"
    "# Base SSID to connect to\n"
    "homenet = {'SSID': 'IoT', 'password': 'MicroPython'}\n"
    "\n"
    "#the mqtt broker to connect to\n"
    "broker = {'server': 'homeassistant.local', 'user': 'sensor', 'password': 'beepbeep'}\n"
    "\n"
    "HOST_NAME = b'p1_meter_' + hexlify(unique_id())\n"
    'ROOT_TOPIC = b"p1_meter"\n'
    "\n"
    "#also publish telegram as json\n"
    "publish_as_json = False\n"
    "\n"
    "codetable = [\n"
    '    ("1-0:1.8.1"            , "total/consumption_low_tariff"),\n'
    '    ("1-0:1.8.2"            , "total/consumption_high_tariff"),\n'
    '    ("1-0:2.8.1"            , "total/production_low_tariff"),\n'
    '    ("1-0:1.7.0.*"          , "instant/consumption"),\n'
    '    ("1-0:2.7.0.*"          , "instant/production"),\n'
    f"{DUTCH_GAS_LINE}"
    '    ("1-0:32.7.0"           , "instant/voltage/l1"),\n'
    "]\n"
)


# Python warns about the "\d" in the seed's non-raw string literal (DeprecationWarning
# on 3.11, SyntaxWarning from 3.12); pytest here turns warnings into errors. The tests
# that load the seed's file take the warning as a user's Python shows it; whether
# the file loads without it is test_the_seeds_config_py_loads_without_a_warning.
def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0): the DSMR P1 CRC, written here on its own."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def telegram_of(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"]) if "hex" in vector else vector["text"].encode("latin-1")


def line_value(telegram: bytes, code: str) -> float:
    """The number in the last ``(...)`` of the line of ``code``, read from the text itself."""
    line = re.search(rb"\r?\n" + re.escape(code.encode()) + rb"(\([^\r\n]*\))\r?\n", telegram)
    assert line is not None, code
    return float(re.findall(rb"\(([^()*]*)", line.group(1))[-1])


def write_config(directory: Path, belgian: bool = False) -> Path:
    text = CONFIG_PY.replace(DUTCH_GAS_LINE, BELGIAN_GAS_LINE) if belgian else CONFIG_PY
    path = directory / ("config_be.py" if belgian else "config.py")
    path.write_text(text, encoding="utf-8")
    return path


def seed_broker(brokers: Any, tmp_path: Path) -> Any:
    """A mosquitto that only lets the seed's broker user in."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        pytest.fail("mosquitto_passwd is missing: run scripts/system-deps to install mosquitto")
    passwords = tmp_path / "passwords"
    subprocess.run([tool, "-b", "-c", str(passwords), SEED_USER, SEED_PASSWORD], check=True)
    return brokers("allow_anonymous false", f"password_file {passwords}")


def payloads(sub: Subscriber) -> dict[str, str]:
    return {topic: payload for topic, (payload, _) in sub.latest().items()}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(r.read())


# -- CRC ---------------------------------------------------------------------------------


CRC_VECTORS = [
    v
    for v in VECTORS.values()
    if v["kind"] == "telegram" and v.get("crc_given") and "crc_computed_crc16_arc" in v
]


@pytest.mark.parametrize("vector", CRC_VECTORS, ids=[v["id"] for v in CRC_VECTORS])
def test_crc16_accepts_the_right_telegrams_and_refuses_the_others(vector):
    telegram = telegram_of(vector)
    bang = telegram.rindex(b"!")
    given = int(vector["crc_given"], 16)
    right = crc16_arc(telegram[: bang + 1]) == given
    assert right == vector["crc_ok"]  # the corpus and this CRC agree on every telegram
    decoder = mbuspico.Decoder(protocol="dsmr")
    if right:
        reading = decoder.decode(telegram)
        assert reading["crc"] == "ok"
        assert reading["obis"], "the OBIS coded information is read"
    else:
        with pytest.raises(mbuspico.ChecksumError):
            decoder.decode(telegram)


def test_the_serial_reader_drops_and_counts_a_telegram_with_a_wrong_crc():
    lost_byte = telegram_of(VECTORS["issue/dsmr-reader#1008/raw"])  # real capture, CRC wrong
    repaired = telegram_of(VECTORS["issue/dsmr-reader#1008/repaired"])
    v5 = telegram_of(VECTORS["dsmr_parser/TELEGRAM_V5"])
    assert crc16_arc(lost_byte[: lost_byte.rindex(b"!") + 1]) != int(
        lost_byte[lost_byte.rindex(b"!") + 1 :].strip(), 16
    )
    master, slave = os.openpty()
    try:
        with mbuspico.SerialReader(
            os.ttyname(slave), key=None, protocol="dsmr", baudrate=115200, parity="none"
        ) as reader:
            os.write(master, repaired + lost_byte + v5)
            got = []
            while (reading := reader.read(timeout=1.0)) is not None:
                got.append(reading)
            counters = reader.stats
    finally:
        os.close(master)
        os.close(slave)
    assert [r["obis"]["1-0:1.8.1"]["value"] for r in got] == [
        line_value(repaired, "1-0:1.8.1"),
        line_value(v5, "1-0:1.8.1"),
    ]
    assert counters["bad_checksums"] == 1
    assert counters["readings"] == 2


# -- the code table ----------------------------------------------------------------------


def test_the_codetable_of_config_py_names_the_values(tmp_path):
    config = write_config(tmp_path)
    names = load_names(config)
    assert not Path(f"{config}.was-run").exists(), "config.py was executed"
    assert list(names.items()) == [
        ("1-0:1.8.1", "total/consumption_low_tariff"),
        ("1-0:1.8.2", "total/consumption_high_tariff"),
        ("1-0:2.8.1", "total/production_low_tariff"),
        ("1-0:1.7.0.*", "instant/consumption"),
        ("1-0:2.7.0.*", "instant/production"),
        (r"(\d)-1:24.2.1", "total/gas_meter"),
        ("1-0:32.7.0", "instant/voltage/l1"),
    ]
    telegram = telegram_of(VECTORS["dsmr_parser/TELEGRAM_V5"])
    reading = mbuspico.Decoder(protocol="dsmr", names=names).decode(telegram)
    values = flat_values(reading, topics=True)
    # Regex and exact keys: each OBIS code its topic, "/" kept as topic levels.
    assert values["total/gas_meter"] == line_value(telegram, "0-1:24.2.1") == 0.107
    assert values["total/consumption_low_tariff"] == line_value(telegram, "1-0:1.8.1")
    assert values["total/consumption_high_tariff"] == line_value(telegram, "1-0:1.8.2")
    assert values["instant/consumption"] == line_value(telegram, "1-0:1.7.0") == 0.244
    assert values["instant/voltage/l1"] == line_value(telegram, "1-0:32.7.0")
    assert reading["obis"]["0-1:24.2.1"]["name"] == "total/gas_meter"
    assert reading["obis"]["1-0:2.8.2"]["name"] == "electricity_delivered_tariff_2"  # not listed
    # The key matches the whole code: (\d)-1:24.2.1 is M-Bus channel 1, never channel 2.
    two = telegram_of(VECTORS["dsmr_parser/TELEGRAM_V5_TWO_MBUS"])
    both = mbuspico.Decoder(protocol="dsmr", names=names).decode(two)["obis"]
    assert both["0-1:24.2.1"]["name"] == "total/gas_meter"
    assert both["0-2:24.2.1"]["name"] != "total/gas_meter"
    assert both["0-2:24.2.1"]["value"] == line_value(two, "0-2:24.2.1") == 246.138


def test_the_seeds_config_py_loads_without_a_warning(tmp_path):
    config = write_config(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = load_names(config)
    assert names[r"(\d)-1:24.2.1"] == "total/gas_meter"
    assert [str(w.message) for w in caught] == []


# -- MQTT --------------------------------------------------------------------------------


def test_simulated_meter_to_mqtt_topics_of_the_codetable(brokers, subscribe, tmp_path):
    mqtt = seed_broker(brokers, tmp_path)
    sub = subscribe(mqtt.port, "p1_meter/#", username=SEED_USER, password=SEED_PASSWORD)
    client_id = f"p1_meter_{uuid.uuid4().hex[:12]}"  # HOST_NAME: b"p1_meter_" + the chip id
    with P1Simulator("dsmr5", interval=0.2, seed=3) as sim:
        service = serve(
            protocol="dsmr",
            serial_port=sim.port,
            baudrate=115200,
            parity="none",
            names_file=str(write_config(tmp_path)),
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=mqtt.port,
            mqtt_user=SEED_USER,
            mqtt_password=SEED_PASSWORD,
            mqtt_client_id=client_id,
            mqtt_mode="obis",
            mqtt_prefix="p1_meter",  # ROOT_TOPIC
            mqtt_telegram_json=True,  # publish_as_json = True
        )
        try:
            wait_for(lambda: service.status()["sinks"]["mqtt"]["connected"], 10, "connected")
            sim.start(count=3)
            sim.wait(10)
            wait_for(lambda: service.status()["sinks"]["mqtt"]["published"] == 3, 10, "3 sent")
            last = sim.sent[-1].expected
            assert last is not None
            telegram = json.loads(
                wait_for(
                    lambda: (
                        (t := payloads(sub).get("p1_meter/telegram"))
                        and json.loads(t)["timestamp"] == last["timestamp"]
                        and t
                    ),
                    10,
                    "the last telegram as JSON",
                )
            )
        finally:
            service.stop()
    got = payloads(sub)
    assert float(got["p1_meter/total/gas_meter"]) == last["mbus"]["1"]["value"] > 0
    obis = last["obis"]
    assert float(got["p1_meter/total/consumption_low_tariff"]) == obis["1-0:1.8.1"]["value"]
    assert float(got["p1_meter/total/consumption_high_tariff"]) == obis["1-0:1.8.2"]["value"]
    assert float(got["p1_meter/instant/consumption"]) == obis["1-0:1.7.0"]["value"]
    assert float(got["p1_meter/instant/production"]) == obis["1-0:2.7.0"]["value"]
    assert float(got["p1_meter/instant/voltage/l1"]) == obis["1-0:32.7.0"]["value"]
    assert not any(topic.startswith("p1_meter/0-") for topic in got)
    # publish_as_json: the whole telegram, with the table's names.
    assert telegram["obis"]["0-1:24.2.1"]["name"] == "total/gas_meter"
    assert telegram["mbus"]["1"]["value"] == last["mbus"]["1"]["value"]
    assert telegram["obis"]["1-0:1.8.1"]["value"] == obis["1-0:1.8.1"]["value"]
    # A clean stop leaves the retained state offline.
    assert sub.wait("p1_meter/status", '{"state": "offline"}') == '{"state": "offline"}'


@pytest.mark.parametrize("belgian_table", [False, True], ids=["dutch-table", "belgian-table"])
def test_belgian_meter_needs_the_changed_gas_code(broker, subscribe, tmp_path, belgian_table):
    vector = VECTORS["dsmr_parser/TELEGRAM_FLUVIUS_V171"]
    telegram = telegram_of(vector)
    names = load_names(write_config(tmp_path, belgian=belgian_table))
    reading = mbuspico.Decoder(protocol="dsmr", names=names).decode(telegram)
    sub = subscribe(broker.port, "p1_meter/#")
    sink = MqttSink(
        "127.0.0.1",
        broker.port,
        client_id=f"p1_meter_{uuid.uuid4().hex[:12]}",
        mode="obis",
        topic_prefix="p1_meter",
        telegram_json=False,  # publish_as_json = False, as the seed's default
    )
    sink.start()
    try:
        assert sink.wait_connected(10)
        sink.publish(reading)
        wait_for(lambda: sink.status()["published"] == 1, 10, "published")
        # The water meter on channel 2 is the last value of the reading: all have arrived.
        water = next(d for d in vector["expected"]["MBUS_DEVICES"] if d["CHANNEL_ID"] == 2)
        sub.wait("p1_meter/mbus_2", water["MBUS_METER_READING"]["value"])
    finally:
        sink.close(timeout=2)
    got = payloads(sub)
    gas = next(d for d in vector["expected"]["MBUS_DEVICES"] if d["CHANNEL_ID"] == 1)
    assert gas["MBUS_METER_READING"]["obis"] == "0-1:24.2.3"
    assert "p1_meter/telegram" not in got
    if belgian_table:
        assert got["p1_meter/total/gas_meter"] == gas["MBUS_METER_READING"]["value"] == "112.384"
    else:  # the Dutch line (\d)-1:24.2.1 does not find the Belgian gas meter
        assert "p1_meter/total/gas_meter" not in got
    tariff_2 = vector["expected"]["1-0:1.8.2"]["value"]
    assert got["p1_meter/total/consumption_high_tariff"] == tariff_2  # the other lines stay


BELGIAN_GAS = [
    v
    for v in VECTORS.values()
    if v["variant"] == "belgium"
    and b"\n0-1:24.2.3(" in telegram_of(v)
    and line_value(telegram_of(v), "0-1:24.2.3") > 0
]


@pytest.mark.parametrize("vector", BELGIAN_GAS, ids=[v["id"] for v in BELGIAN_GAS])
def test_belgian_gas_code_on_every_belgian_telegram(vector, tmp_path):
    telegram = telegram_of(vector)
    dutch = mbuspico.Decoder(protocol="dsmr", names=load_names(write_config(tmp_path)))
    belgian = mbuspico.Decoder(
        protocol="dsmr", names=load_names(write_config(tmp_path, belgian=True))
    )
    assert "total/gas_meter" not in flat_values(dutch.decode(telegram), topics=True)
    values = flat_values(belgian.decode(telegram), topics=True)
    assert values["total/gas_meter"] == line_value(telegram, "0-1:24.2.3")


# -- statistics --------------------------------------------------------------------------


def mem_available_now() -> float:
    text = Path("/proc/meminfo").read_text(encoding="ascii")
    kib = int(re.search(r"^MemAvailable:\s+(\d+) kB$", text, re.M).group(1))  # type: ignore[union-attr]
    return kib / 1024


def test_statistics_on_mqtt_and_http(broker, subscribe, tmp_path):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48512\n")
    client_id = f"p1_meter_{uuid.uuid4().hex[:12]}"
    sub = subscribe(broker.port, "p1_meter/status")
    with P1Simulator("dsmr5", interval=0.2, seed=5) as sim:
        service = serve(
            start=False,
            protocol="dsmr",
            serial_port=sim.port,
            baudrate=115200,
            parity="none",
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=broker.port,
            mqtt_client_id=client_id,
            mqtt_mode="obis",
            mqtt_prefix="p1_meter",
            mqtt_status_interval=0.3,
        )
        service.thermal_base = str(tmp_path / "thermal")
        service.start()
        try:
            sim.start(count=2)

            def counted() -> dict[str, Any] | None:
                got = sub.latest().get("p1_meter/status")
                doc = json.loads(got[0]) if got else None
                return doc if doc and doc.get("telegrams", {}).get("good") == 2 else None

            doc = wait_for(counted, 10, "a status after two telegrams")
            http = get_json(f"http://127.0.0.1:{service.http_port}/api/status")
            late = subscribe(broker.port, "p1_meter/status")  # a newcomer gets it: retained
            late.wait("p1_meter/status")
            retained = late.latest()["p1_meter/status"]
        finally:
            service.stop()
    for figures in (doc, http):
        assert figures["clientId"] == client_id
        assert figures["cpuTemperatureC"] == 48.5  # 48512 m°C
        free = figures["memAvailableMiB"]
        assert isinstance(free, float)
        assert abs(free - mem_available_now()) < max(256.0, 0.2 * free)
        assert 0 < figures["rssMiB"] < 4096
    assert doc["state"] == "online"
    assert retained[1] is True
    assert json.loads(retained[0])["clientId"] == client_id


def test_free_memory_and_cpu_temperature_figures(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        3884568 kB\nMemFree:          200000 kB\n")
    assert stats.mem_available_mib(meminfo) is None  # no MemAvailable line: no figure
    meminfo.write_text(
        "MemTotal:        3884568 kB\nMemFree:          200000 kB\nMemAvailable:    2621440 kB\n"
    )
    assert stats.mem_available_mib(meminfo) == 2560.0  # 2621440 KiB
    assert stats.mem_available_mib(tmp_path / "missing") is None
    assert stats.cpu_temperature(tmp_path / "no-thermal") is None  # a board without a sensor


# -- simulation --------------------------------------------------------------------------


def test_the_simulator_sends_a_telegram_every_10_s_with_its_crc16():
    sim = P1Simulator("dsmr5", interval=10, seed=11, start=datetime(2026, 3, 2, 6, 0))
    sent = [t for t, _ in zip(sim.telegrams(), range(7))]
    stamps = [datetime.fromisoformat(t.expected["timestamp"]) for t in sent if t.expected]
    assert [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])] == [10.0] * 6
    for t in sent:
        bang = t.telegram.rindex(b"!")
        assert t.telegram[bang + 5 :] == b"\r\n"
        assert int(t.telegram[bang + 1 : bang + 5], 16) == crc16_arc(t.telegram[: bang + 1])
    for code in ("1-0:1.7.0", "1-0:32.7.0", "1-0:52.7.0"):
        values = {line_value(t.telegram, code) for t in sent}
        assert len(values) > 1, f"{code} changes from message to message"
    # A changed byte after sending: the CRC calculated before sending refuses it.
    damaged = sent[0].telegram.replace(b"1-0:1.8.1(0", b"1-0:1.8.1(1", 1)
    assert damaged != sent[0].telegram
    with pytest.raises(mbuspico.ChecksumError):
        mbuspico.Decoder(protocol="dsmr").decode(damaged)


def test_the_seed_simulators_own_messages_are_read():
    """``p1meter_sym.py``'s messages as it sends them: LF lines, CRC16 after ``!``."""
    rng = random.Random(7)  # noqa: S311 - the seed's "random values", reproducible
    sent = []
    for name in ("meter1", "meter2", "meter3"):
        template = VECTORS[f"micropython-p1meter/{name}"]["text"]
        u = rng.randint(-1000, 1000) / 100
        msg = template.format(0, max(u, 0), -1 * min(u, 0))
        sent.append(msg.encode() + f"{crc16_arc(msg.encode()):04X}\r\n".encode())
    master, slave = os.openpty()
    try:
        with mbuspico.SerialReader(
            os.ttyname(slave), key=None, protocol="dsmr", baudrate=115200, parity="none"
        ) as reader:
            os.write(master, b"".join(sent))
            got = [reader.read(timeout=2.0) for _ in sent]
    finally:
        os.close(master)
        os.close(slave)
    for message, reading in zip(sent, got):
        assert reading is not None
        assert reading["crc"] == "ok"
        header = message.split(b"\n", 1)[0].decode()
        assert "/" + reading["header"] == header
        # The last 1-0:1.7.0 / 1-0:2.7.0 lines carry the random values.
        lines = message.decode().splitlines()
        plus = [ln for ln in lines if ln.startswith("1-0:1.7.0(")][-1]
        minus = [ln for ln in lines if ln.startswith("1-0:2.7.0(")][-1]
        assert reading["obis"]["1-0:1.7.0"]["value"] == float(plus[10:16])
        assert reading["obis"]["1-0:2.7.0"]["value"] == float(minus[10:16])
        assert reading["mbus"]["1"]["value"] == line_value(message, "0-1:24.2.1")
    assert got[1]["obis"]["0-0:96.1.1"]["value"] == "4530303236303030303234343934333135"


def test_simulation_mode_publishes_under_another_root_topic(broker, subscribe):
    sub = subscribe(broker.port, "#")
    service = serve(
        demo=True,
        protocol="dsmr",
        mqtt_enabled=True,
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        mqtt_mode="obis",
        mqtt_prefix="p1_meter",  # the actual input's ROOT_TOPIC
        mqtt_telegram_json=True,
    )
    try:
        topic = wait_for(
            lambda: next((t for t in sub.latest() if t.endswith("/telegram")), None),
            10,
            "a simulated telegram on MQTT",
        )
    except AssertionError as e:  # not the mismatch under test: fail, do not xfail
        raise RuntimeError(str(e)) from None
    finally:
        service.stop()
    assert json.loads(sub.latest()[topic][0])["protocol"] == "dsmr"
    assert not topic.startswith("p1_meter/"), "simulated data under the real meter's topic"
    assert topic == "p1_meter_demo/telegram"


# -- mDNS --------------------------------------------------------------------------------


def test_mdns_announces_the_meter():
    from zeroconf import IPVersion, Zeroconf

    from mbuspico.serve.mdns import SERVICE_TYPE

    name = f"p1_meter_{uuid.uuid4().hex[:8]}"
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        with P1Simulator("dsmr5", interval=0.2, seed=2) as sim:
            service = serve(
                protocol="dsmr",
                serial_port=sim.port,
                baudrate=115200,
                parity="none",
                mdns_enabled=True,
                mdns_name=name,
            )
            try:
                wait_for(lambda: service.status()["mdns"] == {"name": name}, 10, "registered")
                deadline = time.monotonic() + 10
                info = None
                while info is None and time.monotonic() < deadline:
                    info = zc.get_service_info(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", 2000)
                assert info is not None, "not found by mDNS"
                assert info.port == service.http_port
                assert info.parsed_addresses() == ["127.0.0.1"]
                sim.start(count=1)
                wait_for(lambda: service.status()["telegrams"]["good"] == 1, 10, "a reading")
                url = f"http://{info.parsed_addresses()[0]}:{info.port}/api/reading"
                reading = get_json(url)  # found by name, no fixed address configured
                assert (
                    reading["obis"]["1-0:1.8.1"]["value"]
                    == (
                        sim.sent[0].expected["obis"]["1-0:1.8.1"]["value"]  # type: ignore[index]
                    )
                )
            finally:
                service.stop()
    finally:
        zc.close()
