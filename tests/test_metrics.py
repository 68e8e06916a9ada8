"""Graphite and InfluxDB sinks against local listeners (and a real influxd if installed)."""

from __future__ import annotations

import base64
import json
import logging
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA, by_id
from mbuspico import Decoder
from mbuspico.serve.sinks.metrics import GraphiteSink, InfluxSink, InfluxWriteError

KAIFA_EPOCH = 1643989400  # 2022-02-04T16:43:20+01:00
DSMR_EPOCH = 1483381202  # 2017-01-02T19:20:02+01:00
PASSWORD = "pw-Secret-4711"  # noqa: S105 - a test credential
TOKEN = "tok-Secret-0815"  # noqa: S105 - a test credential


def kaifa_reading() -> dict[str, Any]:
    v = by_id("fkw9_kaifa_ma309m_real")
    return dict(Decoder(bytes.fromhex(v["key"])).decode(bytes.fromhex(v["hex"])))


def dsmr_reading() -> dict[str, Any]:
    doc = json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))
    v = next(v for v in doc["vectors"] if v["id"] == "dsmr_parser/TELEGRAM_V5")
    reading = Decoder(protocol="dsmr", tz="Europe/Amsterdam", verify_crc=False).decode(
        v["text"].encode("utf-8")
    )
    return dict(reading)


def mbus_reading() -> dict[str, Any]:
    text = (DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text()
    return dict(Decoder().decode(bytes.fromhex("".join(text.split()))))


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# --- Graphite ---------------------------------------------------------------


class Carbon:
    """A TCP listener collecting what each accepted connection sends."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[bytearray] = []
        self.sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            buf = bytearray()
            self.connections.append(buf)
            self.sockets.append(conn)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, buf: bytearray) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf.extend(data)

    def lines(self, index: int) -> list[str]:
        return bytes(self.connections[index]).decode("ascii").splitlines(keepends=True)

    def drop(self, index: int) -> None:
        self.sockets[index].shutdown(socket.SHUT_RDWR)
        self.sockets[index].close()

    def stop(self) -> None:
        self.server.close()
        for conn in self.sockets:
            conn.close()


@pytest.fixture
def carbon():
    server = Carbon()
    yield server
    server.stop()


KAIFA_LINES = [
    f"mbuspico.{name} {value} {KAIFA_EPOCH}\n"
    for name, value in [
        ("activePowerPlus", "1055.0"),
        ("activePowerMinus", "0.0"),
        ("activeEnergyPlus", "1340436.0"),
        ("activeEnergyMinus", "0.0"),
        ("voltageL1", "234.5"),
        ("voltageL2", "233.4"),
        ("voltageL3", "233.7"),
        ("currentL1", "3.83"),
        ("currentL2", "1.69"),
        ("currentL3", "0.92"),
        ("powerFactor", "0.968"),
    ]
]


def test_kaifa_timestamp_is_the_expected_epoch():
    stamp = datetime.fromisoformat(kaifa_reading()["timestamp"])
    assert stamp.timestamp() == KAIFA_EPOCH


def test_graphite_lines_kaifa():
    sink = GraphiteSink("127.0.0.1")
    assert sink.lines(kaifa_reading()) == KAIFA_LINES


def test_graphite_lines_without_timestamp_use_now_and_sanitise_prefix():
    sink = GraphiteSink("127.0.0.1", prefix="home meter/1:")
    reading = mbus_reading()
    assert reading.get("timestamp") is None
    lines = sink.lines(reading, now=1700000000.9)
    assert "home_meter_1_.energy_0_0_0 9730000.0 1700000000\n" in lines
    assert "home_meter_1_.volume_0_0_0 1638.0 1700000000\n" in lines
    before = int(time.time())
    (line, *_) = sink.lines(reading)
    assert before <= int(line.split()[2]) <= int(time.time())
    for line in lines:
        path, value, stamp = line.split(" ")
        assert all(c.isalnum() or c in "_.-" for c in path)
        float(value)
        assert stamp == "1700000000\n"


def test_graphite_skips_non_finite_and_empty_prefix():
    sink = GraphiteSink("127.0.0.1", prefix="")
    reading = {"protocol": "dlms", "timestamp": None, "activePowerPlus": math.nan, "voltageL1": 1}
    assert sink.lines(reading, now=5) == ["voltageL1 1.0 5\n"]


def test_graphite_sends_exact_lines_in_one_write(carbon):
    sink = GraphiteSink("127.0.0.1", carbon.port, timeout=2.0)
    sink.start()
    sink.publish(kaifa_reading())
    wait_for(lambda: carbon.connections and len(carbon.lines(0)) == len(KAIFA_LINES))
    sink.close()
    assert carbon.lines(0) == KAIFA_LINES
    assert sink.status() == {"published": 1, "failed": 0, "dropped": 0}
    assert "127.0.0.1" in repr(sink)


def test_graphite_reconnects_after_the_server_drops_the_connection(carbon):
    sink = GraphiteSink("127.0.0.1", carbon.port, timeout=2.0)
    sink.start()
    sink.publish(kaifa_reading())
    wait_for(lambda: carbon.connections and len(carbon.lines(0)) == len(KAIFA_LINES))
    carbon.drop(0)
    time.sleep(0.05)
    sink.publish(kaifa_reading())
    wait_for(lambda: len(carbon.connections) == 2 and len(carbon.lines(1)) == len(KAIFA_LINES))
    sink.close()
    assert carbon.lines(1) == KAIFA_LINES
    assert sink.status()["published"] == 2
    assert sink.status()["failed"] == 0


def test_graphite_send_error_reconnects_once_and_retries(carbon):
    sink = GraphiteSink("127.0.0.1", carbon.port, timeout=2.0)
    sink.connect()
    wait_for(lambda: len(carbon.connections) == 1)
    assert sink._sock is not None
    sink._sock.shutdown(socket.SHUT_WR)  # our side can no longer send: EPIPE
    sink.deliver(kaifa_reading())
    wait_for(lambda: len(carbon.connections) == 2 and len(carbon.lines(1)) == len(KAIFA_LINES))
    sink.disconnect()


def test_graphite_unreachable_host_never_blocks_publish():
    # TEST-NET-1 (RFC 5737): connecting hangs or fails at once, depending on the network.
    sink = GraphiteSink("192.0.2.1", 2003, timeout=1.0)
    reading = kaifa_reading()
    sink.start()
    started = time.monotonic()
    for _ in range(300):
        sink.publish(reading)
    assert time.monotonic() - started < 0.5
    sink.close(timeout=0.2)
    status = sink.status()
    assert status["published"] == 0
    assert status["failed"] + status["dropped"] <= 300


def test_graphite_refused_connection_counts_failed_and_backs_off():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens
    sink = GraphiteSink("127.0.0.1", port, timeout=1.0)
    sink.start()
    for _ in range(3):
        sink.publish(kaifa_reading())
    wait_for(lambda: sink.status()["failed"] == 3)
    sink.close()
    assert sink.status()["published"] == 0
    # The later readings failed without a connection attempt: the backoff runs.
    assert sink._retry_at > time.monotonic()
    with pytest.raises(OSError, match="next attempt"):
        sink.deliver(kaifa_reading())


# --- InfluxDB line protocol -------------------------------------------------


def v1_sink(url: str = "http://127.0.0.1:1", **kwargs: Any) -> InfluxSink:
    kwargs.setdefault("database", "energy")
    return InfluxSink(url, **kwargs)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    head, fields, stamp = line.split(" ")
    measurement, *tags = head.split(",")
    return (
        measurement,
        dict(tag.split("=") for tag in tags),
        {k: float(v) for k, v in (f.split("=") for f in fields.split(","))},
        int(stamp),
    )


def test_influx_line_dlms():
    line = v1_sink().line(kaifa_reading())
    assert line == (
        "meter,meter=181220002177,protocol=dlms "
        "activePowerPlus=1055.0,activePowerMinus=0.0,activeEnergyPlus=1340436.0,"
        "activeEnergyMinus=0.0,voltageL1=234.5,voltageL2=233.4,voltageL3=233.7,"
        "currentL1=3.83,currentL2=1.69,currentL3=0.92,powerFactor=0.968 "
        f"{KAIFA_EPOCH}000000000"
    )


def test_influx_line_dsmr():
    # The equipment identifier 0-0:96.1.1, hex-decoded, tags the meter.
    assert line_of(dsmr_reading())[:2] == (
        "meter",
        {"meter": "K8EG004046395507", "protocol": "dsmr"},
    )
    _, _, fields, stamp = line_of(dsmr_reading())
    assert stamp == DSMR_EPOCH * 10**9
    assert fields["electricity_used_tariff_1"] == 4.426
    assert fields["current_electricity_usage"] == 0.244
    assert fields["instantaneous_voltage_l1"] == 230.0
    assert fields["mbus_1"] == 0.107


def line_of(reading: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, float], int]:
    text = v1_sink().line(reading)
    assert text is not None
    return parse_line(text)


def test_influx_line_mbus_without_timestamp_uses_now():
    before = time.time_ns()
    measurement, tags, fields, stamp = line_of(mbus_reading())
    assert before <= stamp <= time.time_ns()
    # The meter's identification number tags it, as the meter number does for DLMS.
    assert (measurement, tags) == ("meter", {"meter": "55555555", "protocol": "mbus"})
    assert fields["energy_0_0_0"] == 9730000.0
    # "Value during error state" records (power 999999 x 100 W, delta T) are no measurements.
    assert "power_0_0_0" not in fields
    assert not any(name.startswith("temperature_difference") for name in fields)
    assert fields["volume_0_0_0"] == 1638.0
    assert fields["flow_temperature_0_0_0"] == 22.0


def test_influx_escaping():
    sink = v1_sink(measurement="power meter,home", tags={"site name": "a=b, c", "x,y": "z"})
    reading = {
        "protocol": "dlms",
        "timestamp": "2022-02-04T16:43:20.5+01:00",
        "meterNumber": "AB 12,3=4\\",
        "activePowerPlus": 7,
        "voltageL1": math.inf,
    }
    assert sink.line(reading) == (
        "power\\ meter\\,home,meter=AB\\ 12\\,3\\=4\\\\,protocol=dlms,"
        "site\\ name=a\\=b\\,\\ c,x\\,y=z activePowerPlus=7.0 "
        f"{KAIFA_EPOCH}500000000"
    )
    assert sink.line({"protocol": "dlms", "activePowerPlus": math.nan}) is None


# --- InfluxDB over HTTP -----------------------------------------------------


class Recorder(ThreadingHTTPServer):
    """Records POSTs and answers with scripted statuses (then 204)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, str]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
        parts = urllib.parse.urlsplit(self.path)
        self.server.requests.append(
            {
                "path": parts.path,
                "query": urllib.parse.parse_qs(parts.query),
                "headers": dict(self.headers),
                "lines": body.splitlines(),
                "body": body,
                "time": time.monotonic(),
            }
        )
        status, message = self.server.answers.pop(0) if self.server.answers else (204, "")
        payload = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def influx():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


def test_influx_v1_query_params_basic_auth_and_real_vectors(influx, caplog):
    caplog.set_level(logging.DEBUG)
    sink = InfluxSink(
        influx.url,
        database="energy db",
        username="meter",
        password=PASSWORD,
        batch_size=3,
        flush_interval=60,
    )
    sink.start()
    for reading in (kaifa_reading(), dsmr_reading(), mbus_reading()):
        sink.publish(reading)
    wait_for(lambda: len(influx.requests) == 1)
    sink.close()
    (request,) = influx.requests
    assert request["path"] == "/write"
    assert request["query"] == {"db": ["energy db"], "precision": ["ns"]}
    expected = base64.b64encode(f"meter:{PASSWORD}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert request["headers"]["Content-Type"].startswith("text/plain")
    assert request["body"].endswith("\n")
    lines = [parse_line(line) for line in request["lines"]]
    assert [(m, t["meter"], t["protocol"]) for m, t, _, _ in lines] == [
        ("meter", "181220002177", "dlms"),
        ("meter", "K8EG004046395507", "dsmr"),
        ("meter", "55555555", "mbus"),
    ]
    assert lines[0][2]["activePowerPlus"] == 1055.0
    assert lines[0][3] == KAIFA_EPOCH * 10**9
    assert lines[1][2]["electricity_used_tariff_2"] == 2.399
    assert lines[1][3] == DSMR_EPOCH * 10**9
    assert lines[2][2]["energy_0_0_0"] == 9730000.0
    assert sink.status() == {"published": 3, "failed": 0, "dropped": 0, "kept": 0}
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(sink)


def test_influx_v2_token_header_and_path(influx):
    sink = InfluxSink(
        influx.url + "/proxy/",
        version=2,
        org="my org",
        bucket="meters/raw",
        token=TOKEN,
        batch_size=1,
    )
    sink.start()
    sink.publish(kaifa_reading())
    wait_for(lambda: len(influx.requests) == 1)
    sink.close()
    (request,) = influx.requests
    assert request["path"] == "/proxy/api/v2/write"
    assert request["query"] == {"org": ["my org"], "bucket": ["meters/raw"], "precision": ["ns"]}
    assert request["headers"]["Authorization"] == f"Token {TOKEN}"
    assert request["lines"] == [v1_sink().line(kaifa_reading())]
    assert TOKEN not in repr(sink)
    assert "auth=True" in repr(sink)


def test_influx_batches_by_size_and_at_close(influx):
    sink = v1_sink(influx.url, batch_size=2, flush_interval=60)
    sink.start()
    for _ in range(5):
        sink.publish(kaifa_reading())
    wait_for(lambda: len(influx.requests) == 2)
    time.sleep(0.1)
    assert len(influx.requests) == 2  # the fifth waits for its batch
    sink.close()
    assert [len(r["lines"]) for r in influx.requests] == [2, 2, 1]
    assert sink.status()["published"] == 5


def test_influx_batches_by_interval(influx):
    sink = v1_sink(influx.url, batch_size=100, flush_interval=0.3)
    sink.start()
    started = time.monotonic()
    sink.publish(kaifa_reading())
    sink.publish(dsmr_reading())
    wait_for(lambda: len(influx.requests) == 1)
    assert influx.requests[0]["time"] - started >= 0.29
    assert len(influx.requests[0]["lines"]) == 2
    # The server records the request before the sink has read the answer.
    wait_for(lambda: sink.status()["published"] == 2)
    sink.publish(mbus_reading())  # a new batch with its own deadline
    wait_for(lambda: len(influx.requests) == 2)
    sink.close()
    assert len(influx.requests[1]["lines"]) == 1


def test_influx_retries_503_then_succeeds(influx, caplog):
    caplog.set_level(logging.DEBUG)
    influx.answers = [(503, '{"error":"overloaded"}'), (503, "")]
    sink = v1_sink(influx.url, username="u", password=PASSWORD, batch_size=1)
    sink.retry_delay = 0.05
    sink.start()
    sink.publish(kaifa_reading())
    wait_for(lambda: sink.status()["published"] == 1)
    sink.close()
    assert len(influx.requests) == 3
    assert len({r["body"] for r in influx.requests}) == 1
    assert sink.status()["failed"] == 0
    assert "overloaded" in caplog.text
    assert PASSWORD not in caplog.text


def test_influx_keeps_a_batch_past_its_retries_and_sends_it_first(influx, caplog):
    """Nothing lost while InfluxDB answers 5xx: the batch is kept and goes before newer ones."""
    caplog.set_level(logging.INFO, logger="mbuspico")
    influx.answers = [(500, '{"error":"a"}')] * 2  # then 204
    sink = v1_sink(influx.url, batch_size=1, retries=1)
    sink.retry_delay = 0.01
    sink.start()
    first = kaifa_reading()
    sink.publish(first)
    wait_for(lambda: len(influx.requests) == 2)  # the attempt and its one retry
    time.sleep(0.1)
    assert sink.status() == {"published": 0, "failed": 0, "dropped": 0, "kept": 1}
    second = {**kaifa_reading(), "activePowerPlus": 7}
    sink.publish(second)
    wait_for(lambda: sink.status()["published"] == 2)
    sink.close()
    assert sink.status() == {"published": 2, "failed": 0, "dropped": 0, "kept": 0}
    bodies = [r["body"] for r in influx.requests]
    assert bodies[2] == bodies[0]  # the kept batch first, as it was
    assert "activePowerPlus=7.0" in bodies[3]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # the start of the failures, once
    assert "writing works again" in caplog.text


def test_influx_buffer_drops_the_oldest_and_counts_them(influx):
    influx.answers = [(503, "")] * 100
    sink = v1_sink(influx.url, batch_size=1, retries=0, buffer=3)
    sink.start()
    for power in range(6):
        sink.publish({**kaifa_reading(), "activePowerPlus": power})
    wait_for(lambda: sink.status()["dropped"] == 3, 10)
    assert sink.status()["kept"] == 3
    sink.close()


def test_influx_400_is_not_retried_and_logged_with_the_server_message(influx, caplog):
    caplog.set_level(logging.DEBUG)
    influx.answers = [(400, '{"code":"invalid","message":"unable to parse \'x\': bad field"}')]
    sink = InfluxSink(influx.url, version=2, org="o", bucket="b", token=TOKEN, batch_size=2)
    sink.retry_delay = 0.01
    sink.start()
    sink.publish(kaifa_reading())
    sink.publish(kaifa_reading())
    wait_for(lambda: sink.status()["failed"] == 2)
    sink.close()
    assert len(influx.requests) == 1
    assert "unable to parse 'x': bad field" in caplog.text
    assert "HTTP 400" in caplog.text
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()


def test_influx_unreachable_never_blocks_publish_and_keeps_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    sink = InfluxSink(
        f"http://127.0.0.1:{port}", version=2, org="o", bucket="b", token=TOKEN, batch_size=1
    )
    sink.retry_delay = 0.01
    reading = kaifa_reading()
    sink.start()
    started = time.monotonic()
    for _ in range(200):
        sink.publish(reading)
    assert time.monotonic() - started < 0.5
    sink.close(timeout=2)
    assert sink.status()["published"] == 0
    assert TOKEN not in caplog.text
    with pytest.raises(InfluxWriteError) as error:
        sink.write(["m f=1.0"])
    assert error.value.status is None
    assert TOKEN not in str(error.value)


def test_influx_rejects_bad_settings_without_echoing_secrets():
    with pytest.raises(ValueError, match="credentials") as error:
        InfluxSink(f"http://u:{PASSWORD}@localhost:8086", database="d")
    assert PASSWORD not in str(error.value)
    with pytest.raises(ValueError, match="database"):
        InfluxSink("http://localhost:8086")
    with pytest.raises(ValueError, match="org"):
        InfluxSink("http://localhost:8086", version=2, token=TOKEN)
    with pytest.raises(ValueError, match="version"):
        InfluxSink("http://localhost:8086", version=3, database="d")
    with pytest.raises(ValueError, match="URL"):
        InfluxSink("udp://localhost:8089", database="d")


# --- A real influxd (optional) ----------------------------------------------


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.mark.skipif(shutil.which("influxd") is None, reason="influxd (InfluxDB 1.x) not installed")
def test_real_influxd_v1(tmp_path: Path):
    http_port, rpc_port = _free_port(), _free_port()
    config = tmp_path / "influxdb.conf"
    config.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{tmp_path / "meta"}"
[data]
  dir = "{tmp_path / "data"}"
  wal-dir = "{tmp_path / "wal"}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
"""
    )
    influxd = shutil.which("influxd")
    assert influxd is not None
    process = subprocess.Popen(
        [influxd, "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{http_port}"

    def query(q: str) -> Any:
        data = urllib.parse.urlencode({"db": "energy", "q": q, "epoch": "ns"}).encode()
        with urllib.request.urlopen(f"{base}/query", data=data, timeout=5) as answer:  # noqa: S310
            return json.loads(answer.read())

    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=1) as answer:  # noqa: S310
                    return bool(answer.status == 204)
            except OSError:
                return False

        wait_for(ready, timeout=10)
        query("CREATE DATABASE energy")
        sink = InfluxSink(base, database="energy", measurement="power meter", batch_size=10)
        sink.start()
        for reading in (kaifa_reading(), dsmr_reading(), mbus_reading()):
            sink.publish(reading)
        sink.close()
        assert sink.status() == {"published": 3, "failed": 0, "dropped": 0, "kept": 0}
        result = query(
            'SELECT "activePowerPlus" FROM "power meter" WHERE "meter" = \'181220002177\''
        )
        (series,) = result["results"][0]["series"]
        assert series["values"] == [[KAIFA_EPOCH * 10**9, 1055]]
        result = query(
            'SELECT "electricity_used_tariff_1" FROM "power meter" WHERE "protocol" = \'dsmr\''
        )
        (series,) = result["results"][0]["series"]
        assert series["values"] == [[DSMR_EPOCH * 10**9, 4.426]]
        result = query('SELECT "energy_0_0_0" FROM "power meter" WHERE "meter" = \'55555555\'')
        assert result["results"][0]["series"][0]["values"][0][1] == 9730000
        # A database that does not exist: 404, not retried, counted failed.
        missing = InfluxSink(base, database="nope", batch_size=1)
        missing.start()
        missing.publish(kaifa_reading())
        missing.close()
        assert missing.status()["failed"] == 1
    finally:
        process.terminate()
        process.wait(10)
