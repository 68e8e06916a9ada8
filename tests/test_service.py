"""``mbuspico serve`` end to end: simulated meter on a pty -> service -> HTTP and UDP clients."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import serve
from mbuspico.serve import BurstFilter, Service
from mbuspico.serve.config import Config, ConfigError, load
from mbuspico.serve.http import NO_CACHE
from mbuspico.simulate.dlms import SimulatedTelegram, Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except urllib.error.URLError:
        return 0, {}, b""  # not listening (yet): callers wait or assert on the status


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def mbuspico_view(sent: SimulatedTelegram) -> dict[str, Any]:
    """What MBusPico prints for a telegram with these values (its quirks included)."""
    e = sent.expected
    assert e is not None
    numbers = [
        "activePowerPlus",
        "activePowerMinus",
        "activeEnergyPlus",
        "activeEnergyMinus",
        "voltageL1",
        "voltageL2",
        "voltageL3",
        "currentL1",
        "currentL2",
        "currentL3",
    ]
    view = {name: float(e[name]) for name in numbers}
    view["powerFactor"] = round(e["powerFactor"] * 1000, 2)
    view["timestamp"] = e["timestamp"][:19] + "Z"
    view["meterNumber"] = e["meterNumber"]
    return view


@pytest.fixture
def meter() -> Iterator[Simulator]:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=11) as sim:
        yield sim


def test_http_204_then_the_mbuspico_json_of_what_the_meter_sent(meter: Simulator) -> None:
    service = serve(meter)
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        status, headers, body = get(url + "/")
        assert (status, body) == (204, b"")
        assert headers["Content-Type"] == "application/json"
        meter.start()
        status, headers, body = wait_for(lambda: (r := get(url + "/"))[0] == 200 and r)
        for name, value in NO_CACHE.items():
            assert headers[name] == value
        assert headers["Content-Type"] == "application/json"
        text = body.decode()
        served = json.loads(text)
        sent = next(
            t
            for t in meter.sent
            if t.expected and t.expected["timestamp"][:19] + "Z" == served["timestamp"]
        )
        view = mbuspico_view(sent)
        for name, value in view.items():
            assert served[name] == value, name
        assert re.fullmatch(
            r'\{\n("[A-Za-z0-9]+": [^\n]+,\n){13}"powerFactor": \d+\.\d\d\n\}', text
        )
        # The full reading, keyed by frame counter.
        status, _, body = get(url + "/api/reading")
        reading = json.loads(body)
        sent = next(t for t in meter.sent if t.frame_counter == reading["frameCounter"])
        assert sent.expected is not None
        for name, value in sent.expected.items():
            assert reading[name] == value, name
        assert reading["obis"]["1-0:1.8.0"]["unit"] == "Wh"
        status, _, body = get(url + "/api/status")
        info = json.loads(body)
        assert info["serialPort"] == {"path": meter.port, "connected": True}
        assert info["counters"]["readings"] >= 1
        assert info["lastReadingAt"].endswith("+00:00")
        status, headers, body = get(url + "/status.html")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert b"181220002177" in body
        for path in ("/reboot", "/update", "/nothing"):
            status, headers, _ = get(url + path)
            assert status == 404
            assert headers["Cache-Control"] == NO_CACHE["Cache-Control"]
    finally:
        service.stop()


def test_basic_auth_401_403_200(meter: Simulator) -> None:
    service = serve(meter, http_user="loxone", http_password="s3cret")  # noqa: S106 - test
    try:
        url = f"http://127.0.0.1:{service.http_port}/"
        status, headers, _ = get(url)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="MBusPico"'
        assert headers["Pragma"] == "no-cache"
        assert get(url, ("loxone", "wrong"))[0] == 403
        assert get(url, ("other", "s3cret"))[0] == 403
        assert get(url, ("loxone", "s3cret"))[0] == 204
        meter.start()
        assert wait_for(lambda: get(url, ("loxone", "s3cret"))[0] == 200)
        assert get(url + "api/status")[0] == 401
    finally:
        service.stop()


def test_udp_sends_the_json_at_the_interval_and_nothing_before(meter: Simulator) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.8)
        port = rx.getsockname()[1]
        service = serve(
            meter, http_enabled=False, udp_enabled=True, udp_port=port, udp_interval=0.3
        )
        try:
            with pytest.raises(socket.timeout):
                rx.recv(4096)  # no reading yet: nothing sent
            meter.start()
            rx.settimeout(5)
            arrivals, packets = [], []
            for _ in range(4):
                packets.append(json.loads(rx.recv(4096)))
                arrivals.append(time.monotonic())
        finally:
            service.stop()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(0.15 < g < 1.5 for g in gaps), gaps
    assert {p["meterNumber"] for p in packets} == {"181220002177"}
    assert all(p["lxTimestamp"] > 500_000_000 for p in packets)


def test_keeps_serving_through_reconnects_and_corruption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mbuspico")
    link = tmp_path / "meter"
    first = Simulator("ksm-west", key=KEY, interval=0.1, link=link, seed=1, flip_bit=0.002)
    first.open()
    service = Service(Config(key=KEY, serial_port=str(link), http_host="127.0.0.1", http_port=0))
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        first.start()
        fc1 = wait_for(
            lambda: (r := get(url + "/api/reading"))[0] == 200 and json.loads(r[2])["frameCounter"]
        )
        first.close()  # the adapter is unplugged
        wait_for(lambda: not json.loads(get(url + "/api/status")[2])["serialPort"]["connected"])
        assert get(url + "/")[0] == 200, "the last reading is still served"
        second = Simulator("ksm-west", key=KEY, interval=0.1, link=link, seed=2)
        second.open()
        second.start()
        try:
            sent_by_second = lambda: {t.frame_counter for t in second.sent}  # noqa: E731
            wait_for(
                lambda: (
                    json.loads(get(url + "/api/reading")[2])["frameCounter"] in sent_by_second()
                ),
                15,
            )
        finally:
            second.close()
        status = json.loads(get(url + "/api/status")[2])
        assert status["counters"]["reconnects"] >= 1
        assert status["counters"]["bad_checksums"] >= 1
        assert fc1
    finally:
        service.stop()
    assert any("reconnecting" in m for m in caplog.messages)


def test_configuration_layers(tmp_path: Path) -> None:
    toml = tmp_path / "mbuspico.toml"
    toml.write_text(
        'key = "00112233445566778899AABBCCDDEEFF"\n[udp]\nenabled = true\nport = 7000\n'
        '[http]\nport = 8081\n[serial]\nport = "/dev/ttyAMA0"\n'
    )
    env = {
        "MBUSPICO_DEVICE": "sagemcom_t210d",
        "MBUSPICO_DEVICE_KEY": KEY,
        "MBUSPICO_HTTP_SERVER_PORT": "8080",
        "MBUSPICO_UDP_RECEIVER_HOST": "192.0.2.7",
        "MBUSPICO_UDP_INTERVAL_S": "10",
        "MBUSPICO_SERIAL_PORT": "/dev/ttyUSB0",
    }
    c = load(env, toml, {"http_port": "9000", "udp_enabled": None})
    assert c.device == "SAGEMCOM_T210D"  # environment
    assert c.key == "00112233445566778899AABBCCDDEEFF"  # file over environment
    assert c.serial_port == "/dev/ttyAMA0"
    assert c.http_port == 9000  # flag over file over environment
    assert (c.udp_enabled, c.udp_host, c.udp_port, c.udp_interval) == (
        True,
        "192.0.2.7",
        7000,
        10.0,
    )
    assert KEY not in repr(c)
    assert "00112233" not in repr(c)
    defaults = load({"MBUSPICO_DEVICE_KEY": KEY, "MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0"})
    assert (defaults.http_port, defaults.udp_enabled, defaults.udp_interval) == (80, False, 30.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MBUSPICO_DEVICE_KEY": "36C6"}, "MBUSPICO_DEVICE_KEY: must be 32 hexadecimal digits"),
        ({"MBUSPICO_HTTP_SERVER_PORT": "70000"}, r"MBUSPICO_HTTP_SERVER_PORT \('70000'\): must be"),
        ({"MBUSPICO_DEVICE": "LANDIS_E350"}, "unknown device 'LANDIS_E350'"),
        ({"MBUSPICO_UDP_ENABLED": "true"}, "UDP is enabled but the receiver port is 0"),
        ({"MBUSPICO_UDP_ENABLED": "perhaps"}, r"MBUSPICO_UDP_ENABLED.*true or false"),
        ({"MBUSPICO_UDP_INTERVAL_S": "0"}, r"MBUSPICO_UDP_INTERVAL_S.*above 0"),
        ({"MBUSPICO_SERIAL_PARITY": "mark"}, "MBUSPICO_SERIAL_PARITY"),
    ],
)
def test_invalid_settings_name_themselves(env: dict[str, str], message: str) -> None:
    base = {"MBUSPICO_DEVICE_KEY": KEY, "MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0"}
    with pytest.raises(ConfigError, match=message) as info:
        load({**base, **env})
    assert "\n" not in str(info.value)
    assert "36C6" not in str(info.value) or "MBUSPICO_DEVICE_KEY" not in env


def test_missing_and_unknown_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing key"):
        load({"MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0"})
    with pytest.raises(ConfigError, match="missing serial port"):
        load({"MBUSPICO_DEVICE_KEY": KEY})
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nprot = 80\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'http\.prot'"):
        load({}, bad, demo=True)
    broken = tmp_path / "broken.toml"
    broken.write_text("key = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load({}, broken, demo=True)
    assert load({}, demo=True).key is None


def test_burst_filter_collapses_bad_telegram_warnings() -> None:
    f = BurstFilter(window=60)
    records = [
        logging.LogRecord("mbuspico", logging.WARNING, "", 0, "dropped a telegram: x", None, None)
        for _ in range(5)
    ]
    assert [f.filter(r) for r in records] == [True, False, False, False, False]
    f._since -= 61  # a minute later
    later = logging.LogRecord(
        "mbuspico", logging.WARNING, "", 0, "dropped a telegram: y", None, None
    )
    assert f.filter(later)
    assert "4 more bad telegrams" in later.getMessage()
    other = logging.LogRecord("mbuspico", logging.INFO, "", 0, "serial port reopened", None, None)
    assert f.filter(other)


def test_serve_demo_command() -> None:
    exe = str(Path(sys.executable).with_name("mbuspico"))
    proc = subprocess.Popen(
        [exe, "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")},
    )
    try:
        assert proc.stderr is not None
        port = None
        for _ in range(20):
            line = proc.stderr.readline()
            if m := re.search(r"HTTP on 127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "no start line"
        _, _, body = wait_for(lambda: (r := get(f"http://127.0.0.1:{port}/"))[0] == 200 and r)
        assert json.loads(body)["meterNumber"] == "181220002177"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert KEY.lower() not in proc.stderr.read().lower()
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


def test_device_profile_sets_protocol_and_interface() -> None:
    base = {"MBUSPICO_DEVICE_KEY": KEY, "MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0"}
    c = load({**base, "MBUSPICO_DEVICE": "wienernetze-im350"})
    assert (c.device, c.protocol, c.baudrate, c.parity, c.tz) == (
        "wienernetze-im350",
        "dlms",
        9600,
        "none",
        "Europe/Vienna",
    )
    assert c.profile is not None
    assert c.profile.framing == "hdlc"
    # A setting given wins over the profile's.
    c = load({**base, "MBUSPICO_DEVICE": "wienernetze-im350", "MBUSPICO_SERIAL_BAUDRATE": "2400"})
    assert (c.baudrate, c.parity) == (2400, "none")
    c = load({**base, "MBUSPICO_DEVICE": "dsmr22"})
    assert (c.protocol, c.baudrate, c.parity) == ("dsmr", 9600, "even")
    assert load({**base, "MBUSPICO_DEVICE": "KAIFA_MA309M_NETZNOE"}).profile.name == (  # type: ignore[union-attr]
        "kaifa-ma309m-netznoe"
    )
    # No device: decode whatever comes, M-Bus interface defaults.
    c = load(base)
    assert (c.device, c.profile, c.baudrate, c.parity) == ("auto", None, 2400, "even")
    with pytest.raises(ConfigError, match="is a dlms meter, not dsmr"):
        load({**base, "MBUSPICO_DEVICE": "KSM_WEST", "MBUSPICO_PROTOCOL": "dsmr"})


@pytest.mark.parametrize(
    ("device", "title", "meter_number"),
    [
        ("burgenland-e450", "4c475a67", r"\d{8}"),
        ("steiermark-e450", "4c475a67", r"\d{8}"),
        ("wienernetze-im350", "534d5367", r"SMS\d{13}"),
        ("steiermark-t210d", "", r".*"),
    ],
)
def test_serve_demo_plays_the_device(device: str, title: str, meter_number: str) -> None:
    """``MBUSPICO_DEVICE=<profile> mbuspico serve --demo``: the simulated meter of
    that profile (HDLC, tags, general block transfer) through the service."""
    exe = str(Path(sys.executable).with_name("mbuspico"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
    proc = subprocess.Popen(
        [exe, "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "MBUSPICO_DEVICE": device},
    )
    try:
        assert proc.stderr is not None
        port = None
        for _ in range(20):
            line = proc.stderr.readline()
            if m := re.search(r"HTTP on 127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "no start line"
        _, _, body = wait_for(
            lambda: (r := get(f"http://127.0.0.1:{port}/api/reading"))[0] == 200 and r
        )
        reading = json.loads(body)
        assert reading["systemTitle"].startswith(title)
        assert re.fullmatch(meter_number, reading["meterNumber"] or "")
        assert reading["activeEnergyPlus"] > 0
        _, _, body = get(f"http://127.0.0.1:{port}/")
        assert json.loads(body)["meterNumber"] == reading["meterNumber"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


def test_serve_rejects_bad_configuration_in_one_line() -> None:
    exe = str(Path(sys.executable).with_name("mbuspico"))
    env = {**os.environ, "MBUSPICO_DEVICE_KEY": "not-a-key", "MBUSPICO_SERIAL_PORT": "/dev/null"}
    out = subprocess.run([exe, "serve"], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "MBUSPICO_DEVICE_KEY" in out.stderr
    assert "not-a-key" not in out.stderr


@pytest.mark.parametrize("script", ["http_udp_microdot.py", "http_udp_stdlib.py"])
def test_example_services_run_against_the_demo_meter(script: str) -> None:
    path = Path(__file__).parent.parent / "examples" / script
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        udp = f"127.0.0.1:{rx.getsockname()[1]}"
        proc = subprocess.Popen(
            [
                sys.executable,
                str(path),
                "--demo",
                "--http-port",
                str(port),
                "--udp",
                udp,
                "--interval",
                "0.5",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert "serving on" in proc.stdout.readline()
            _, headers, body = wait_for(
                lambda: (r := get(f"http://127.0.0.1:{port}/"))[0] == 200 and r
            )
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body)["meterNumber"] == "181220002177"
            assert json.loads(rx.recv(4096))["meterNumber"] == "181220002177"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()


def test_readme_lists_every_setting() -> None:
    from mbuspico.serve.config import SETTINGS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for s in SETTINGS:
        assert f"| `{s.env}` | `{s.toml}` | `{s.flag}` |" in readme, s.name
