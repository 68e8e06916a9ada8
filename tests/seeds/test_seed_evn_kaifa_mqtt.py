"""EVN Kaifa to MQTT (ESP8266, Netz NÖ Kaifa MA309M): its document replayed on a real mosquitto.

Seed: ``shared/seeds/001_8567b9a078e8f455.txt`` (Tobias0110/EVN_Kaifa_ESP_MQTT README).
What it shows and where it is checked here:

* "MQTT message mode": 0 raw, 1 topics, 2 json (default 2), as ``mqtt.mode`` numbers;
* JSON (``<basepath>/json``): its field table and its example for the Netz NÖ
  documentation frame (``tests/data/seeds/evn_kaifa_mqtt_example.json``),
  field by field; ``ip`` and ``rssi`` as this host has them;
* individual topics (``<basepath>/w_p`` ...): exactly the table's topics;
* raw (``<basepath>/raw``): the decrypted data as binary;
* "MQTT broker path" empty by default: topics at the top level;
* "MQTT broker certificate fingerprint": SHA-1 of the broker's certificate, or
  ``[insecure]`` for plain MQTT; a wrong one never connects and says why.

The webpage passkey: ``tests/test_settings_page.py``,
``test_without_a_password_the_page_takes_a_generated_passkey``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mbuspico
from conftest import DATA, by_id, serve
from mbuspico.serve.config import ConfigError, load
from mbuspico.serve.sinks.mqtt import MqttSink
from mbuspico.simulate.dlms import Simulator
from test_mqtt import broker, brokers, pki, subscribe

__all__ = ["broker", "brokers", "pki", "subscribe"]  # fixtures used by name below

EXAMPLE = json.loads((DATA / "seeds" / "evn_kaifa_mqtt_example.json").read_text())
# The seed's "Individual topics" table, in its order.
TOPICS = ["meternumber", "timestamp", "w_p", "w_n", "p_p", "p_n"]
TOPICS += ["u1", "u2", "u3", "i1", "i2", "i3", "phi"]


@pytest.fixture(scope="module")
def doc_frame() -> dict[str, Any]:
    """The Netz NÖ documentation frame the seed's example JSON shows, decoded with its APDU."""
    vector = by_id("netznoe_doc_example_kaifa_ma309m")
    frame = bytes.fromhex(vector["hex"])
    decoder = mbuspico.Decoder(vector["key"])
    return {**decoder.decode(frame), "apdu": decoder.apdu(frame)}


def sink_for(port: int, **options: Any) -> MqttSink:
    sink = MqttSink("127.0.0.1", port, client_id=f"evn-{time.monotonic_ns()}", **options)
    sink.start()
    assert sink.wait_connected(10)
    return sink


def test_mode_numbers_are_the_seeds() -> None:
    base = {"MBUSPICO_DEVICE_KEY": mbuspico.simulate.DEMO_KEY, "MBUSPICO_SERIAL_PORT": "/dev/x"}
    modes = {n: load({**base, "MBUSPICO_MQTT_MODE": n}).mqtt_mode for n in ("0", "1", "2")}
    assert modes == {"0": "evn-raw", "1": "evn-topics", "2": "evn-json"}
    with pytest.raises(ConfigError, match=r"invalid environment variable MBUSPICO_MQTT_MODE"):
        load({**base, "MBUSPICO_MQTT_MODE": "3"})


def test_json_equals_the_seeds_example_field_by_field(broker, subscribe, doc_frame) -> None:
    sub = subscribe(broker.port, "#")
    sink = sink_for(broker.port, mode="evn-json", topic_prefix="")
    try:
        sink.publish(doc_frame)
        got = json.loads(sub.wait("json"))  # the seed's default: no base path
    finally:
        sink.close()
    assert list(got) == list(EXAMPLE)  # the names, in the seed's order
    for name, theirs in EXAMPLE.items():
        if name == "ip":
            assert got[name] == "127.0.0.1"  # this host's address towards the broker
        elif name == "rssi":
            assert got[name] is None  # loopback: no Wi-Fi signal (the seed's "-52dBm" form)
        else:
            assert got[name] == theirs, name
    # The table's meaning: w_ total energy (Wh), p_ momentary power (W).
    assert got["w_p"] == doc_frame["activeEnergyPlus"] == 12937
    assert got["p_p"] == doc_frame["activePowerPlus"] == 0


def test_individual_topics_are_the_seeds_table(broker, subscribe, doc_frame) -> None:
    sub = subscribe(broker.port, "evn/#")
    sink = sink_for(broker.port, mode="evn-topics", topic_prefix="evn")
    try:
        sink.publish(doc_frame)
        sub.wait("evn/phi")
    finally:
        sink.close()
    got = {t.removeprefix("evn/"): p for t, (p, _) in sub.latest().items() if t != "evn/status"}
    assert sorted(got) == sorted(TOPICS)
    assert got == {
        "meternumber": "181220000009",
        "timestamp": "2021-09-27T09:47:15+02:00",
        "w_p": "12937",
        "w_n": "0",
        "p_p": "0",
        "p_n": "0",
        "u1": "233.7",
        "u2": "0.0",
        "u3": "0.0",
        "i1": "0.0",
        "i2": "0.0",
        "i3": "0.0",
        "phi": "1.0",
    }
    for name in TOPICS[2:]:  # every number is the example's number
        assert float(got[name]) == EXAMPLE[name]


def test_raw_is_the_decrypted_data_as_binary(broker, subscribe, doc_frame) -> None:
    sub = subscribe(broker.port, "raw", binary=True)
    sink = sink_for(broker.port, mode="evn-raw", topic_prefix="")
    try:
        sink.publish(doc_frame)
        raw = sub.wait("raw")
    finally:
        sink.close()
    vector = by_id("netznoe_doc_example_kaifa_ma309m")
    assert raw == bytes.fromhex(vector["plaintext_hex"])


def test_the_service_with_the_seeds_defaults(broker, subscribe) -> None:
    """Mode 2 and an empty base path, as the seed's defaults, from a running service."""
    sub = subscribe(broker.port, "#")
    key = mbuspico.simulate.DEMO_KEY
    with Simulator("kaifa-ma309m", key=key, interval=0.2, seed=3) as sim:
        sim.start()
        service = serve(
            sim,
            http_enabled=False,
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=broker.port,
            mqtt_prefix=load({"MBUSPICO_MQTT_TOPIC_PREFIX": ""}, None, {}, demo=True).mqtt_prefix,
            mqtt_mode=load({"MBUSPICO_MQTT_MODE": "2"}, None, {}, demo=True).mqtt_mode,
        )
        try:
            got = json.loads(sub.wait("json"))
        finally:
            service.stop()
    assert list(got) == list(EXAMPLE)
    sent = next(t.expected for t in sim.sent if t.expected["timestamp"] == got["timestamp"])
    assert got["meternumber"] == sent["meterNumber"]
    assert got["w_p"] == sent["activeEnergyPlus"]
    assert got["p_p"] == sent["activePowerPlus"]
    assert "status" in sub.latest()  # the availability topic sits at the top level too


def test_a_wildcard_base_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mbuspico", "serve", "--demo", "--mqtt", "--mqtt-prefix", "a/#"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "mbuspico: invalid --mqtt-prefix ('a/#'): must be a topic without the MQTT "
        "wildcards + and # (or empty: topics at the top)"
    ]


def fingerprint(cert: Path, digest: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.new(digest, der).hexdigest()


def test_broker_pinned_by_its_certificate_fingerprint(
    brokers, subscribe, pki, doc_frame, caplog: pytest.LogCaptureFixture
) -> None:
    tls = brokers(
        "allow_anonymous true",
        f"certfile {pki / 'server.crt'}",
        f"keyfile {pki / 'server.key'}",
    )
    sha1 = fingerprint(pki / "server.crt", "sha1")
    sha256 = fingerprint(pki / "server.crt", "sha256")
    # SHA-1 as the seed writes it (hex, here with colons as browsers show it), and SHA-256;
    # no CA file: the pinned certificate is the trust.
    colons = ":".join(sha1[i : i + 2] for i in range(0, 40, 2)).upper()
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    sub = subscribe(tls.port, "#", tls=context)
    for pin in (colons, sha256):
        sink = MqttSink("127.0.0.1", tls.port, mode="evn-json", topic_prefix="pin", fingerprint=pin)
        sink.start()
        try:
            assert sink.wait_connected(10)
            sink.publish(doc_frame)
            assert json.loads(sub.wait("pin/json"))["w_p"] == 12937
        finally:
            sink.close()
    # A wrong fingerprint: never connected, the reason logged once.
    wrong = "00" * 20
    with caplog.at_level(logging.INFO, logger="mbuspico"):
        sink = MqttSink("127.0.0.1", tls.port, fingerprint=wrong, client_id="wrong-pin")
        sink.start()
        try:
            time.sleep(3.5)  # at least two attempts (reconnect after 1 s, then 2 s)
            assert not sink.connected
        finally:
            sink.close()
    failures = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert failures == [
        f"mqtt: TLS handshake with 127.0.0.1:{tls.port} failed: fingerprint mismatch: the "
        f"broker's certificate has SHA-1 {sha1} (not logged again until it works)"
    ]
    # "[insecure]": no pinning, and no TLS unless asked for.
    plain = load(
        {"MBUSPICO_MQTT_FINGERPRINT": "[insecure]", "MBUSPICO_SERIAL_PORT": "/dev/x"},
        None,
        {},
        demo=True,
    )
    assert (plain.mqtt_fingerprint, plain.mqtt_tls) == (None, False)
    pinned = load({"MBUSPICO_MQTT_FINGERPRINT": colons}, None, {}, demo=True)
    assert pinned.mqtt_fingerprint == sha1
    with pytest.raises(ConfigError, match=r"SHA-1 \(40 hex digits\) or SHA-256 \(64\)"):
        load({"MBUSPICO_MQTT_FINGERPRINT": sha1[:-2]}, None, {}, demo=True)
