"""``mbuspico serve`` for P1 meters (DSMR) and wired M-Bus polling, over ptys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import mbuspico
from mbuspico.serve import Service
from mbuspico.serve.config import Config, ConfigError, load
from mbuspico.simulate.mbus_slave import MBusSlave, SlaveMeter, load_frames
from mbuspico.simulate.p1 import P1Simulator
from test_service import get, wait_for

CF_ECHO = Path(__file__).parent / "data" / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"


def test_serve_a_p1_meter() -> None:
    with P1Simulator("dsmr5", interval=0.1, seed=3) as sim:
        service = Service(
            Config(protocol="dsmr", serial_port=sim.port, http_host="127.0.0.1", http_port=0)
        )
        service.start()
        try:
            sim.start()
            url = f"http://127.0.0.1:{service.http_port}"
            _, _, body = wait_for(lambda: (r := get(url + "/"))[0] == 200 and r)
            reading = json.loads(body)
            assert reading["protocol"] == "dsmr"
            sent = next(t for t in sim.sent if t.expected["timestamp"] == reading["timestamp"])
            for code, want in sent.expected["obis"].items():
                assert reading["obis"][code]["value"] == want["value"], code
            status, _, body = get(url + "/api/status")
            info = json.loads(body)
            assert info["protocol"] == "dsmr"
            assert info["counters"]["readings"] >= 1
            status, _, body = get(url + "/status.html")
            assert status == 200
            assert b"1-0:1.8.1" in body
        finally:
            service.stop()


@pytest.fixture
def cf_echo_bus() -> Iterator[MBusSlave]:
    meter = SlaveMeter(load_frames(CF_ECHO), address=5)
    with MBusSlave(meter) as bus:
        bus.start()
        yield bus


def test_serve_polls_a_wired_mbus_meter(cf_echo_bus: MBusSlave) -> None:
    service = Service(
        Config(
            protocol="mbus",
            serial_port=cf_echo_bus.port,
            mbus_address="5",
            mbus_interval=0.3,
            http_host="127.0.0.1",
            http_port=0,
        )
    )
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        _, _, body = wait_for(lambda: (r := get(url + "/"))[0] == 200 and r)
        reading = json.loads(body)
        expected = mbuspico.Decoder().decode(cf_echo_bus.meters[0].frames[0])
        assert reading["records"] == json.loads(json.dumps(expected["records"]))
        energy = next(r for r in reading["records"] if r["quantity"] == "Energy")
        assert (energy["value"], energy["unit"]) == (9730000, "Wh")
        # It keeps polling.
        wait_for(lambda: json.loads(get(url + "/api/status")[2])["counters"]["readings"] >= 2)
    finally:
        service.stop()


def test_serve_survives_a_silent_mbus_meter(cf_echo_bus: MBusSlave) -> None:
    service = Service(
        Config(
            protocol="mbus",
            serial_port=cf_echo_bus.port,
            mbus_address="9",  # nobody answers
            mbus_interval=0.1,
            http_host="127.0.0.1",
            http_port=0,
        )
    )
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        info = wait_for(
            lambda: (
                (s := json.loads(get(url + "/api/status")[2]))["counters"].get("no_response") and s
            )
        )
        assert info["counters"]["readings"] == 0
        assert get(url + "/")[0] == 204
    finally:
        service.stop()


def test_protocol_settings() -> None:
    config = load({"MBUSPICO_PROTOCOL": "dsmr", "MBUSPICO_SERIAL_PORT": "/dev/ttyUSB0"})
    assert config.protocol == "dsmr"
    assert config.key is None  # P1 meters are mostly unencrypted: no key required
    with pytest.raises(ConfigError, match="MBUSPICO_PROTOCOL"):
        load({"MBUSPICO_PROTOCOL": "modbus"}, demo=True)
    with pytest.raises(ConfigError, match="key"):
        load({"MBUSPICO_SERIAL_PORT": "/dev/ttyUSB0"})  # DLMS push needs its key
    with pytest.raises(ConfigError, match="wired M-Bus"):
        load({"MBUSPICO_PROTOCOL": "mbus"}, demo=True)
    with pytest.raises(ConfigError, match="MBUSPICO_MBUS_ADDRESS"):
        load({"MBUSPICO_MBUS_ADDRESS": "251"}, demo=True)
    assert load({"MBUSPICO_MBUS_ADDRESS": "00112233b5150104"}, demo=True).mbus_address == (
        "00112233B5150104"
    )
    with pytest.raises(ConfigError, match=r"influx\.database"):
        load({"MBUSPICO_INFLUX_URL": "http://127.0.0.1:8086"}, demo=True)
    secret = load({"MBUSPICO_MQTT_AUTH_PWD": "hunter2", "MBUSPICO_INFLUX_TOKEN": "t0k"}, demo=True)
    assert "hunter2" not in repr(secret)
    assert "t0k" not in repr(secret)


# -- serve with the CSV log and Graphite, end to end -----------------------------


def test_serve_logs_csv_serves_files_and_pushes_graphite(tmp_path: Path) -> None:
    import csv

    from mbuspico.simulate.dlms import Simulator
    from test_metrics import Carbon
    from test_service import KEY

    carbon = Carbon()
    logs = tmp_path / "logs"
    try:
        with Simulator("kaifa-ma309m", key=KEY, interval=0.1, seed=5) as sim:
            service = Service(
                Config(
                    key=KEY,
                    serial_port=sim.port,
                    http_host="127.0.0.1",
                    http_port=0,
                    http_user="admin",
                    http_password="s3cret",  # noqa: S106 - a test credential
                    csv_directory=str(logs),
                    graphite_host="127.0.0.1",
                    graphite_port=carbon.port,
                )
            )
            service.start()
            try:
                sim.start(count=5)
                sim.wait()
                auth = ("admin", "s3cret")
                url = f"http://127.0.0.1:{service.http_port}"
                wait_for(
                    lambda: (
                        json.loads(get(url + "/api/status", auth)[2])["sinks"]["csv"]["published"]
                        == 5
                    )
                )
                info = json.loads(get(url + "/api/status", auth)[2])
                assert info["sinks"]["graphite"]["failed"] == 0
                status, _, body = get(url + "/api/files", auth)
                assert status == 200
                files = json.loads(body)
                assert [f["name"] for f in files] == [p.name for p in sorted(logs.iterdir())]
                assert get(url + "/files")[0] == 401
                status, _, body = get(url + "/files/" + files[0]["name"], auth)
                assert status == 200
                assert body == (logs / files[0]["name"]).read_bytes()
                assert get(url + "/files/..%2Fetc%2Fpasswd", auth)[0] == 404
            finally:
                service.stop()
        rows = [
            row
            for path in sorted(logs.iterdir())
            for row in csv.DictReader(path.read_text().splitlines())
        ]
        assert len(rows) == 5
        sent = [t.expected for t in sim.sent if t.expected]
        for row, want in zip(rows, sent):
            assert row["meterNumber"] == want["meterNumber"]
            assert float(row["activeEnergyPlus"]) == want["activeEnergyPlus"]
            assert float(row["voltageL1"]) == want["voltageL1"]
        wait_for(lambda: sum(len(carbon.lines(i)) for i in range(len(carbon.connections))) >= 55)
        lines = [line for i in range(len(carbon.connections)) for line in carbon.lines(i)]
        for want in sent:
            assert f"mbuspico.activePowerPlus {float(want['activePowerPlus'])} " in "".join(lines)
    finally:
        carbon.stop()


def test_serve_a_p1_meter_with_a_code_table(tmp_path: Path) -> None:
    table = tmp_path / "codes.toml"
    table.write_text('[names]\n"1-0:1.8.1" = "total/import_t1"\n"0-1:24.2.1" = "total/gas"\n')
    with P1Simulator("dsmr5", interval=0.1, seed=4) as sim:
        config = load(
            {"MBUSPICO_PROTOCOL": "dsmr", "MBUSPICO_SERIAL_PORT": str(sim.port)},
            flags={"names_file": str(table), "http_host": "127.0.0.1", "http_port": "0"},
        )
        service = Service(config)
        service.start()
        try:
            sim.start()
            url = f"http://127.0.0.1:{service.http_port}"
            _, _, body = wait_for(lambda: (r := get(url + "/"))[0] == 200 and r)
            reading = json.loads(body)
            assert reading["obis"]["1-0:1.8.1"]["name"] == "total/import_t1"
            sent = next(t for t in sim.sent if t.expected["timestamp"] == reading["timestamp"])
            want = sent.expected["obis"]["1-0:1.8.1"]["value"]
            assert reading["obis"]["1-0:1.8.1"]["value"] == want
            # Codes the table leaves out keep their default names.
            assert reading["obis"]["1-0:1.8.2"]["name"] == "electricity_used_tariff_2"
        finally:
            service.stop()
    bad = tmp_path / "bad.toml"
    bad.write_text('"1-0:1.8" = "x"\n')
    with pytest.raises(ConfigError, match=r"MBUSPICO_DSMR_NAMES.*code table"):
        load({"MBUSPICO_DSMR_NAMES": str(bad)}, demo=True)
    with pytest.raises(ConfigError, match="time zone"):
        load({"MBUSPICO_TZ": "Mars/Olympus"}, demo=True)


@pytest.mark.parametrize("meter", ["p1", "dlms"])
def test_serve_auto_recognises_dlms_and_p1(meter: str) -> None:
    """``protocol = "auto"``: the service serves whichever the first telegram is."""
    from mbuspico.simulate.dlms import Simulator

    key = "36C66639E48A8CA4D6BC8B282A793BBB"
    sim = P1Simulator("dsmr5", interval=0.2, seed=6) if meter == "p1" else None
    sim = sim or Simulator("kaifa-ma309m", key=key, interval=0.2, seed=6)
    with sim:
        sim.start()
        service = Service(
            load(
                {},
                None,
                {
                    "protocol": "auto",
                    "serial_port": sim.port,
                    "key": key,
                    "http_host": "127.0.0.1",
                    "http_port": "0",
                    "mdns_enabled": "false",
                },
            )
        )
        service.start()
        try:
            url = f"http://127.0.0.1:{service.http_port}"
            _, _, body = wait_for(lambda: (r := get(url + "/api/reading"))[0] == 200 and r)
            reading = json.loads(body)
            assert reading["protocol"] == ("dsmr" if meter == "p1" else "dlms")
            sent = {t.expected["timestamp"]: t.expected for t in sim.sent}
            expected = sent[reading["timestamp"]]  # a telegram the meter sent
            if meter == "p1":
                code = "1-0:1.8.1"
                assert reading["obis"][code]["value"] == expected["obis"][code]["value"]
            else:
                assert reading["meterNumber"] == expected["meterNumber"]
            assert json.loads(get(url + "/api/status")[2])["protocol"] == "auto"
        finally:
            service.stop()


def test_serve_says_what_it_saw_when_nothing_is_recognised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A P1 port served as DLMS: the silence is logged once, with what the port sent."""
    import logging

    with P1Simulator("dsmr5", interval=0.2, seed=7) as sim:
        sim.start()
        config = load(
            {},
            None,
            {
                "protocol": "dlms",
                "serial_port": sim.port,
                "key": "36C66639E48A8CA4D6BC8B282A793BBB",
                "http_host": "127.0.0.1",
                "http_port": "0",
                "mdns_enabled": "false",
                "stale_after": "1",
            },
        )
        with caplog.at_level(logging.INFO, logger="mbuspico"):
            service = Service(config)
            service.start()
            try:
                wait_for(lambda: "no reading yet" in caplog.text)
            finally:
                service.stop()
    (line,) = [r.getMessage() for r in caplog.records if "no reading yet" in r.getMessage()]
    assert "% ASCII text: looks like a P1 port, try protocol dsmr (115200 8N1) or auto" in line
