"""The settings page of ``mbuspico serve`` end to end: a simulated meter, the service with a
TOML file in the background, HTTP clients on loopback (and a mosquitto for the sink rebuild)."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import serve
from mbuspico.serve import Service
from mbuspico.serve.config import Config, ConfigError, load, update
from mbuspico.serve.settings_page import (
    plan_change,
    remove_leftover_temp_files,
    same_origin,
    write_settings,
)
from mbuspico.simulate.dlms import Simulator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - depends on the interpreter
    import tomli as tomllib

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
NEW_KEY = "00112233445566778899AABBCCDDEEFF"
USER, PASSWORD = "admin", "Old-Pa55-word"
NEW_PASSWORD = "N3w-Pa55-word"  # noqa: S105
MOSQUITTO = Path("/usr/sbin/mosquitto")
METER_NUMBER = "181220002177"  # the simulated Kaifa MA309M's


def request(
    url: str,
    *,
    auth: tuple[str, str] | None = (USER, PASSWORD),
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 - loopback
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def post_json(url: str, doc: Any, **kw: Any) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    status, _, body = request(url, data=json.dumps(doc).encode(), headers=headers, **kw)
    return status, json.loads(body)


def form_token(page: str) -> str:
    found = re.search(r'<input type=hidden name=csrf value="([^"]+)">', page)
    assert found is not None, page
    return found[1]


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_file(path: Path, sim: Simulator, extra: str = "", auth: bool = True) -> Path:
    credentials = f'user = "{USER}"\npassword = "{PASSWORD}"\n' if auth else ""
    path.write_text(
        f'key = "{KEY}"\n[serial]\nport = "{sim.port}"\n'
        f'[http]\nhost = "127.0.0.1"\nport = 0\n{credentials}{extra}',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def meter() -> Iterator[Simulator]:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=5) as sim:
        yield sim


@pytest.fixture
def udp_rx() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        yield rx


@pytest.fixture
def running() -> Iterator[Any]:
    """``running(config_file)`` starts the service from the file; stopped at the end."""
    services: list[Service] = []

    def start(path: Path | None, **config: Any) -> tuple[Service, str]:
        c = load({}, path) if path is not None else Config(**config)
        service = Service(c)
        service.start()
        services.append(service)
        return service, f"http://127.0.0.1:{service.http_port}"

    yield start
    for service in services:
        service.stop()


def test_udp_interval_changes_at_once_and_the_file_is_replaced_atomically(
    tmp_path: Path, meter: Simulator, udp_rx: socket.socket, running: Any
) -> None:
    path = toml_file(
        tmp_path / "mbuspico.toml",
        meter,
        f"[udp]\nenabled = true\nport = {udp_rx.getsockname()[1]}\ninterval = 60.0\n"
        '# a comment\n[mqtt]\ntopic_prefix = "home/meter"\n',
    )
    before = tomllib.loads(path.read_text(encoding="utf-8"))
    inode = path.stat().st_ino
    service, url = running(path)
    meter.start()
    wait_for(lambda: request(url + "/")[0] == 200)
    udp_rx.settimeout(1.0)
    with pytest.raises(socket.timeout):
        udp_rx.recv(4096)  # a reading is there, but the next send is a minute away
    sink_count = len(service.sinks)

    status, result = post_json(url + "/api/settings", {"udp.interval": 0.25})
    assert status == 200, result
    assert result == {
        "changed": ["udp.interval"],
        "applied": ["udp.interval"],
        "restart": [],
        "file": str(path),
    }
    # In effect: the sender restarted with the new interval sends several datagrams a second.
    udp_rx.settimeout(5)
    packets = [json.loads(udp_rx.recv(4096)) for _ in range(4)]
    assert {p["meterNumber"] for p in packets} == {METER_NUMBER}
    assert service.config.udp_interval == 0.25
    assert len(service.sinks) == sink_count  # no sink setting changed: none rebuilt

    # The file: replaced (new inode), same permissions, no temporary file left, every other
    # setting kept, and it loads as the service would at the next start.
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["mbuspico.toml"]
    after = tomllib.loads(path.read_text(encoding="utf-8"))
    assert after["udp"]["interval"] == 0.25
    after["udp"]["interval"] = before["udp"]["interval"]
    assert after == before
    assert load({}, path).udp_interval == 0.25

    # GET shows the new value in effect.
    status, _, body = request(url + "/api/settings")
    assert json.loads(body)["settings"]["udp.interval"]["value"] == 0.25


def test_concurrent_changes_are_serialised_and_readers_always_see_a_whole_file(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    path = toml_file(tmp_path / "m.toml", meter, '[graphite]\nprefix = "home"\n')
    service, url = running(path)
    seen: list[dict[str, Any]] = []
    errors: list[Exception] = []
    done = threading.Event()

    def read_file() -> None:  # what a second process reading the file meanwhile gets
        while not done.is_set():
            try:
                seen.append(tomllib.loads(path.read_text(encoding="utf-8")))
            except Exception as e:  # collected for the assertion below
                errors.append(e)

    statuses: list[int] = []

    def change(n: int) -> None:
        status, _ = post_json(url + "/api/settings", {"udp.interval": 1 + n, "udp.port": 7000 + n})
        statuses.append(status)

    reader = threading.Thread(target=read_file)
    reader.start()
    writers = [threading.Thread(target=change, args=(n,)) for n in range(12)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(30)
    done.set()
    reader.join(10)
    assert statuses == [200] * 12
    assert errors == []
    assert len(seen) > 12
    for doc in seen:  # never a torn or half-updated file
        assert (doc["key"], doc["graphite"]["prefix"]) == (KEY, "home")
        if "udp" in doc:
            assert doc["udp"]["port"] - 7000 == doc["udp"]["interval"] - 1
    final = tomllib.loads(path.read_text(encoding="utf-8"))["udp"]
    assert (service.config.udp_interval, service.config.udp_port) == (
        final["interval"],
        final["port"],
    )
    assert [p.name for p in tmp_path.iterdir()] == ["m.toml"]


def test_get_masks_every_secret_and_needs_authentication(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    token = "influx-T0ken-value"  # noqa: S105
    path = toml_file(
        tmp_path / "m.toml",
        meter,
        f'[influx]\nurl = "http://127.0.0.1:9"\nversion = 2\norg = "o"\nbucket = "b"\n'
        f'token = "{token}"\n',
    )
    _, url = running(path)
    for page in ("/settings", "/api/settings"):
        status, headers, _ = request(url + page, auth=None)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="MBusPico"'
        assert request(url + page, auth=(USER, "wrong"))[0] == 403
        assert request(url + page, auth=None, data=b"{}")[0] == 401  # POST too
    bodies = []
    status, headers, page = request(url + "/settings")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'name="udp.interval" value="30.0"' in page
    assert re.search(r'<input type=password name="key"[^>]*placeholder="set;', page)
    assert re.search(r'<input type=password name="mqtt.password"[^>]*placeholder="not set"', page)
    bodies.append(page)
    for target, headers_ in (("/api/settings", {}), ("/settings", {"Accept": "application/json"})):
        status, headers, body = request(url + target, headers=headers_)
        assert (status, headers["Content-Type"]) == (200, "application/json")
        doc = json.loads(body)
        settings = doc["settings"]
        assert doc["file"] == str(path)
        assert settings["key"] == {
            "label": "Decryption key",
            "section": "Meter",
            "help": "encryption key (32 hex)",
            "secret": True,
            "set": True,
            "source": "file",
            "from": str(path),
            "applies": "restart",
            "editable": True,
            "live": False,
        }
        assert settings["http.password"]["set"] is True
        assert settings["influx.token"]["set"] is True
        assert settings["mqtt.password"]["set"] is False
        assert settings["auth_key"]["set"] is False
        assert all("value" not in e for e in settings.values() if e.get("secret"))
        assert settings["serial.port"]["value"] == meter.port
        assert settings["influx.version"]["value"] == 2
        assert settings["http.enabled"]["editable"] is False
        bodies.append(body)
    for body in bodies:
        for secret in (KEY, PASSWORD, token):
            assert secret not in body
            assert secret.lower() not in body.lower()


def test_without_a_password_the_page_takes_a_generated_passkey(
    tmp_path: Path, meter: Simulator, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """As EVN Kaifa to MQTT's web page: a passkey made on the first start, kept (0600) after."""
    path = toml_file(tmp_path / "m.toml", meter, auth=False)
    content = path.read_bytes()
    with caplog.at_level(logging.INFO, logger="mbuspico"):
        service, url = running(path)
    keyfile = tmp_path / "settings-passkey"
    passkey = keyfile.read_text().strip()
    assert len(passkey) == 22
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    told = [r.getMessage() for r in caplog.records if "passkey" in r.getMessage()]
    assert told == [
        f"settings page: no http.password set, so it takes the passkey made now in {keyfile} "
        f"(any user name; read it with: sudo cat {keyfile})"
    ]
    assert passkey not in caplog.text  # the log says where, never what
    assert request(url + "/", auth=None)[0] == 204  # the rest of the service stays open
    status, headers, body = request(url + "/settings", auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mbuspico settings"'
    assert KEY not in body
    assert request(url + "/settings", auth=("admin", "wrong"))[0] == 401
    assert request(url + "/settings", auth=("anyone", passkey))[0] == 200
    status, _, body = request(
        url + "/api/settings",
        auth=None,
        data=b'{"udp.interval": 5}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 401
    assert path.read_bytes() == content
    # Kept: the next start reads the same passkey and makes none.
    service.stop()
    running(path)
    assert keyfile.read_text().strip() == passkey


def test_without_a_password_or_config_file_the_page_is_refused(meter: Simulator) -> None:
    service = serve(meter)
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        status, _, body = request(url + "/settings", auth=None)
        assert status == 403
        assert "needs HTTP authentication" in body
        status, _, body = request(
            url + "/api/settings",
            auth=None,
            data=b'{"udp.interval": 5}',
            headers={"Content-Type": "application/json"},
        )
        assert status == 403
        assert "set http.user and http.password" in json.loads(body)["error"]
    finally:
        service.stop()


def test_cross_origin_and_tokenless_posts_are_refused(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    path = toml_file(tmp_path / "m.toml", meter)
    content = path.read_bytes()
    service, url = running(path)
    host = urllib.parse.urlsplit(url).netloc
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _, _, page = request(url + "/settings")
    good = urllib.parse.urlencode({"csrf": form_token(page), "udp.host": "127.0.0.2"}).encode()
    refused = [
        # Another site's page posting the form, with and without the right token.
        ({**form, "Origin": "http://evil.example"}, good, 403),
        ({**form, "Origin": "null"}, good, 403),
        ({**form, "Referer": f"http://evil.example/{host}"}, good, 403),
        ({**form, "Origin": f"http://{host}.evil.example"}, good, 403),
        # A form without the page's token, or an old one.
        (form, b"udp.host=127.0.0.2", 403),
        (form, b"csrf=AAAA&udp.host=127.0.0.2", 403),
        # A "simple" cross-site request (no preflight) is neither JSON nor the form.
        ({"Content-Type": "text/plain"}, b'{"udp.host": "127.0.0.2"}', 415),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, b"{}", 403),
    ]
    for headers, data, expected in refused:
        status, _, body = request(url + "/settings", data=data, headers=headers)
        assert status == expected, (headers, data, body)
        assert "refused" in body or "send the settings" in body
    assert path.read_bytes() == content
    assert service.saved_config.udp_host == "127.0.0.1"
    # The page itself, from the same origin, may.
    headers = {**form, "Origin": url, "Referer": url + "/settings"}
    status, _, body = request(url + "/settings", data=good, headers=headers)
    assert status == 200, body
    assert "Saved udp.host. In effect now: udp.host." in body
    assert tomllib.loads(path.read_text(encoding="utf-8"))["udp"]["host"] == "127.0.0.2"
    assert service.config.udp_host == "127.0.0.2"


def test_the_whole_form_posted_back_changes_only_what_was_edited(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    path = toml_file(tmp_path / "m.toml", meter, "[mbus]\ninterval = 45\n")
    before = tomllib.loads(path.read_text(encoding="utf-8"))
    service, url = running(path)
    _, _, page = request(url + "/settings")
    # What a browser submits: every named input and select, as shown (passwords empty).
    fields = [
        (m[1], m[2] or "")
        for m in re.finditer(r'<input (?:type=\w+ )?name="([^"]+)"(?: value="([^"]*)")?', page)
    ]
    fields += [
        (m[1], re.findall(r"<option selected>([^<]*)", m[2])[0])
        for m in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page)
    ]
    fields.append(("csrf", form_token(page)))
    names = dict(fields)
    assert {"udp.interval", "mqtt.qos", "mqtt.retain", "key", "serial.port"} <= names.keys()
    assert "http.enabled" not in names  # off the allow-list: shown, not a field
    edited = [(k, "/dev/ttyUSB7" if k == "serial.port" else v) for k, v in fields]
    status, _, body = request(
        url + "/settings",
        data=urllib.parse.urlencode(edited).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    assert "Saved serial.port. Applies at the next start: serial.port." in body
    assert "saved, applies at restart" in body
    after = tomllib.loads(path.read_text(encoding="utf-8"))
    assert after["serial"]["port"] == "/dev/ttyUSB7"
    after["serial"]["port"] = before["serial"]["port"]
    assert after == before  # the submitted unchanged fields (and empty secrets) wrote nothing
    # Saved, not applied: the reader keeps its port until the service restarts.
    assert service.config.serial_port == meter.port
    assert service.saved_config.serial_port == "/dev/ttyUSB7"
    meter.start()
    wait_for(lambda: request(url + "/")[0] == 200)
    entry = json.loads(request(url + "/api/settings")[2])["settings"]["serial.port"]
    assert entry == {
        "label": "Serial port",
        "section": "Meter",
        "help": "the serial device the meter is on (/dev/ttyAMA0, /dev/ttyUSB0, ...)",
        "value": meter.port,
        "source": "file",  # the value in effect is still the file's of the start
        "from": str(path),
        "applies": "restart",
        "editable": True,
        "live": False,
        "atRestart": "/dev/ttyUSB7",
    }
    # The same form again: nothing changed.
    status, _, body = request(
        url + "/settings",
        data=urllib.parse.urlencode(edited).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, "Nothing changed." in body) == (200, True)
    # Values are escaped on the page.
    status, _ = post_json(url + "/api/settings", {"mqtt.topic_prefix": '"><b>x'})
    assert status == 200
    page = request(url + "/settings")[2]
    assert 'name="mqtt.topic_prefix" value="&quot;&gt;&lt;b&gt;x"' in page
    assert "<b>x" not in page


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"udp.interval": "0"}, "invalid udp.interval ('0'): must be a number of seconds above 0"),
        ({"udp.port": 70000}, "invalid udp.port ('70000'): must be a whole number from 0 to 65535"),
        ({"udp.enabled": True}, "invalid udp.port: UDP is enabled but the receiver port is 0"),
        ({"mqtt.mode": "xml"}, "invalid mqtt.mode ('xml'): must be one of"),
        ({"mqtt.enabled": True, "mqtt.topic_prefix": "a/#"}, "mqtt.topic_prefix ('a/#'): must be"),
        ({"influx.url": "http://127.0.0.1:9"}, "missing influx.database"),
        ({"device": "dsmr5", "protocol": "mbus"}, "device dsmr5 is a dsmr meter, not mbus"),
        ({"key": "0011zz"}, "invalid key: must be 32 hexadecimal digits"),
        ({"http.enabled": False}, "http.enabled cannot be changed on the settings page"),
        ({"http.nonsense": 1}, "unknown setting 'http.nonsense'"),
        (
            {"csv.directory": "../../etc"},
            "invalid csv.directory ('../../etc'): must be an absolute",
        ),
    ],
)
def test_invalid_values_are_rejected_naming_the_setting_and_nothing_is_written(
    tmp_path: Path, meter: Simulator, running: Any, change: dict[str, Any], reason: str
) -> None:
    path = toml_file(tmp_path / "m.toml", meter)
    content = path.read_bytes()
    service, url = running(path)
    config = service.config
    # A valid change besides the bad one must not be saved either.
    status, doc = post_json(url + "/api/settings", {"udp.host": "127.0.0.9", **change})
    assert status == 400
    assert reason in doc["error"]
    assert "0011zz" not in doc["error"]
    assert path.read_bytes() == content
    assert (service.config, service.saved_config) == (config, config)
    # The page's form gets the reason on the page.
    _, _, page = request(url + "/settings")
    token = form_token(page)
    status, _, page = request(
        url + "/settings",
        data=urllib.parse.urlencode({"csrf": token, **change}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400
    assert reason.replace("'", "&#x27;") in page
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    ("ctype", "body", "reason"),
    [
        ("application/json", b"\xff\xfe{}", "not UTF-8 (byte 0)"),
        ("application/json", b'{"udp.interval": ', "not valid JSON"),
        ("application/json", b"[" * 15000, "not valid JSON"),
        ("application/json", b'["udp.interval", 5]', "must be a JSON object"),
        ("application/json", b'{"udp.interval": 1' + b"0" * 400 + b"}", "invalid udp.interval"),
        ("application/json", b'{"udp.port": [1]}', "invalid udp.port ('[1]')"),
        ("application/json", b'{"mbus.address": {"a": 1}}', "invalid mbus.address"),
        ("application/json", b'{"udp.enabled": "maybe"}', "must be true or false"),
        ("application/x-www-form-urlencoded", b"csrf=x&&&=", "not a valid form"),
    ],
)
def test_malformed_bodies_answer_400_and_the_service_keeps_serving(
    tmp_path: Path, meter: Simulator, running: Any, ctype: str, body: bytes, reason: str
) -> None:
    path = toml_file(tmp_path / "m.toml", meter)
    content = path.read_bytes()
    _, url = running(path)
    status, headers, text = request(
        url + "/api/settings", data=body, headers={"Content-Type": ctype}
    )
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert reason in json.loads(text)["error"]
    assert path.read_bytes() == content
    meter.start()
    served = json.loads(wait_for(lambda: (r := request(url + "/"))[0] == 200 and r)[2])
    assert served["meterNumber"] == METER_NUMBER


def test_a_replaced_password_is_required_afterwards_and_never_echoed(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    path = toml_file(tmp_path / "m.toml", meter)
    service, url = running(path)
    status, _, body = request(
        url + "/api/settings",
        data=json.dumps(
            {"http.password": NEW_PASSWORD, "key": NEW_KEY, "mqtt.password": ""}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    assert json.loads(body) == {
        "changed": ["key", "http.password"],
        "applied": ["http.password"],
        "restart": ["key"],
        "file": str(path),
    }
    assert request(url + "/", auth=(USER, PASSWORD))[0] == 403
    assert request(url + "/", auth=(USER, NEW_PASSWORD))[0] == 204
    new = (USER, NEW_PASSWORD)
    responses = [body, request(url + "/settings", auth=new)[2]]
    responses.append(request(url + "/api/settings", auth=new)[2])
    settings = json.loads(responses[-1])["settings"]
    assert settings["key"]["atRestart"] is True  # saved; the running decoder keeps the old key
    assert "atRestart" not in settings["http.password"]
    for text in responses:
        for secret in (NEW_PASSWORD, NEW_KEY, KEY, PASSWORD):
            assert secret not in text
    assert service.key == KEY
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert (doc["http"]["password"], doc["key"]) == (NEW_PASSWORD, NEW_KEY)
    assert "mqtt" not in doc  # an empty secret keeps it (here: unset)
    assert "N3w" not in repr(service.config) + repr(service.saved_config)
    # The running meter still decodes with the old key.
    meter.start()
    served = json.loads(wait_for(lambda: (r := request(url + "/", auth=new))[0] == 200 and r)[2])
    assert served["meterNumber"] == METER_NUMBER


def test_without_a_config_file_nothing_can_be_saved(meter: Simulator, running: Any) -> None:
    service, url = running(
        None,
        key=KEY,
        serial_port=meter.port,
        http_host="127.0.0.1",
        http_port=0,
        http_user=USER,
        http_password=PASSWORD,
    )
    assert "started without <code>--config FILE</code>" in request(url + "/settings")[2]
    status, doc = post_json(url + "/api/settings", {"udp.interval": 5})
    assert status == 409
    assert "--config" in doc["error"]
    assert service.config.udp_interval == 30.0


def test_a_file_that_cannot_be_written_answers_500_and_nothing_is_applied(
    tmp_path: Path, meter: Simulator, running: Any
) -> None:
    directory = tmp_path / "etc"
    directory.mkdir()
    path = toml_file(directory / "m.toml", meter)
    service, url = running(path)
    path.unlink()
    directory.rmdir()  # the directory went away: no temporary file can be made there
    status, doc = post_json(url + "/api/settings", {"udp.interval": 5})
    assert status == 500
    assert doc["error"] == f"cannot write {path}: No such file or directory"
    assert (service.config.udp_interval, service.saved_config.udp_interval) == (30.0, 30.0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing: run scripts/system-deps to install mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    try:
        wait_for(accepting)
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_an_mqtt_prefix_change_rebuilds_the_sink(
    tmp_path: Path, meter: Simulator, running: Any, broker: int
) -> None:
    got: dict[str, str] = {}
    lock = threading.Lock()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        with lock:
            got[message.topic] = message.payload.decode()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="settings-test")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker)
    sub.subscribe("#")
    sub.loop_start()
    try:
        path = toml_file(
            tmp_path / "m.toml",
            meter,
            f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker}\n'
            'topic_prefix = "before"\n',
        )
        service, url = running(path)
        meter.start()
        wait_for(lambda: got.get("before/meterNumber") == METER_NUMBER)
        (old,) = service.sinks
        status, result = post_json(url + "/api/settings", {"mqtt.topic_prefix": "after"})
        assert status == 200, result
        assert result["applied"] == ["mqtt.topic_prefix"]
        wait_for(lambda: got.get("after/meterNumber") == METER_NUMBER)
        (new,) = service.sinks
        assert new is not old
        assert json.loads(got["before/status"])["state"] == "offline"  # the old one closed
        assert json.loads(got["after/status"])["state"] == "online"
        assert json.loads(request(url + "/api/status")[2])["sinks"]["mqtt"]["published"] >= 1
        with lock:
            got.clear()
        time.sleep(0.6)  # three telegrams: all on the new prefix
        with lock:
            assert got
            assert all(topic.startswith("after/") for topic in got), sorted(got)
        assert tomllib.loads(path.read_text(encoding="utf-8"))["mqtt"]["topic_prefix"] == "after"
        # evn-raw needs the APDUs, which the running reader was not built to keep.
        status, result = post_json(url + "/api/settings", {"mqtt.mode": "evn-raw"})
        assert (result["applied"], result["restart"]) == (["mqtt.mode"], ["mqtt.mode"])
        assert service.sinks[0].mode == "evn-raw"
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_write_settings_keeps_the_rest_follows_symlinks_and_removes_emptied_keys(
    tmp_path: Path,
) -> None:
    real = tmp_path / "etc" / "mbuspico.toml"
    real.parent.mkdir()
    real.write_text('device = "ksm-west"\n[mqtt]\nuser = "u"\n[udp]\nport = 7000\n')
    real.chmod(0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    write_settings(link, {"mqtt.user": None, "udp.interval": 2.5, "graphite.host": "g.lan"})
    assert link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert tomllib.loads(real.read_text()) == {
        "device": "ksm-west",
        "udp": {"port": 7000, "interval": 2.5},
        "graphite": {"host": "g.lan"},
    }
    assert sorted(p.name for p in real.parent.iterdir()) == ["mbuspico.toml"]


def test_csv_directory_from_the_page_must_be_an_absolute_writable_directory(
    tmp_path: Path,
) -> None:
    config = Config(demo=True, config_file=str(tmp_path / "m.toml"))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for bad, reason in [
        ("../../etc", "must be an absolute path"),
        ("logs", "must be an absolute path"),
        (str(a_file), "is not a directory"),
        (str(a_file / "below"), "is not a directory"),
    ]:
        with pytest.raises(ConfigError, match=r"invalid csv\.directory") as info:
            plan_change(config, config, config, {"csv_directory": bad})
        assert reason in str(info.value)
    made = tmp_path / "new" / "logs"  # can be made: accepted, not made yet
    assert update(config, {"csv_directory": str(made)}).csv_directory == str(made)
    assert not made.exists()
    assert update(config, {"csv_directory": str(tmp_path)}).csv_directory == str(tmp_path)
    assert update(config, {"csv_directory": ""}).csv_directory is None  # off
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="cannot write in"):
            update(config, {"csv_directory": str(locked / "logs")})
    # From the command line a relative directory stays allowed.
    assert load({}, None, {"csv_directory": "logs"}, demo=True).csv_directory == "logs"


def test_a_temp_file_a_save_left_behind_is_removed_at_the_next_start(tmp_path: Path) -> None:
    real = tmp_path / "etc" / "mbuspico.toml"
    real.parent.mkdir()
    real.write_text("[udp]\nport = 7000\n")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    leftover = real.parent / ".mbuspico.toml.k2x_9qaz.tmp"  # as tempfile.mkstemp names it
    leftover.write_text(f'key = "{KEY}"\n')
    leftover.chmod(0o600)
    keep = [
        real.parent / ".mbuspico.toml.tmp",  # not the pattern
        real.parent / ".other.toml.abcd1234.tmp",  # another file's
        real.parent / "mbuspico.toml.abcd1234.tmp",  # no leading dot
        tmp_path / ".link.toml.abcd1234.tmp",  # beside the link, not the file
    ]
    for path in keep:
        path.write_text("x")
    (real.parent / ".mbuspico.toml.dir12345.tmp").mkdir()  # not a file
    (real.parent / ".mbuspico.toml.lnk12345.tmp").symlink_to(real)  # not a file
    config = load({}, link, demo=True)
    assert not leftover.exists()
    assert all(path.exists() for path in keep)
    assert (real.parent / ".mbuspico.toml.dir12345.tmp").is_dir()
    assert (real.parent / ".mbuspico.toml.lnk12345.tmp").is_symlink()
    assert [w for w in config.warnings if "cut short" in w] == [
        f"removed {leftover}, left behind by a settings save that was cut short"
    ]
    assert remove_leftover_temp_files(link) == []


@pytest.mark.parametrize("fail", ["replace", "fsync", "chmod"])
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str, error: BaseException
) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[udp]\nport = 7000\n")
    path.chmod(0o600)
    before = path.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(os, fail, broken)
    with pytest.raises(type(error)):
        write_settings(path, {"udp.interval": 5})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.toml"]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Host": "pi:8080"}, True),
        ({"Host": "pi:8080", "Origin": "http://pi:8080"}, True),
        ({"Host": "pi:8080", "Origin": "http://pi:8081"}, False),
        ({"Host": "pi:8080", "Origin": "null"}, False),
        ({"Host": "pi:8080", "Referer": "http://pi:8080/settings"}, True),
        ({"Host": "pi:8080", "Referer": "http://evil/pi:8080"}, False),
        ({"Origin": "http://pi:8080"}, False),
    ],
)
def test_same_origin(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin(headers) is allowed


# -- the page a person reads: sections, labels, the value in effect and its source (issue 21) --


def settings_row(page: str, key: str) -> str:
    """The page's block of one setting (label, value in effect, field, help)."""
    found = re.search(rf'<div class=set id="s-{re.escape(key)}">(.*?)</p></div>', page, re.S)
    assert found is not None, key
    return found[1]


def in_effect(row: str) -> str:
    found = re.search(r"in effect: <span class=v>([^<]*)</span> <span class=\"src (\w+)\">", row)
    assert found is not None, row
    return html.unescape(found[1])


def test_the_page_shows_each_value_in_effect_and_where_it_came_from(
    tmp_path: Path, meter: Simulator
) -> None:
    path = toml_file(
        tmp_path / "m.toml",
        meter,
        '[udp]\nhost = "127.0.0.5"\ninterval = 12.5\n[mqtt]\nhost = "broker.lan"\n',
    )
    secret = "env-Secr3t-pw"  # noqa: S105
    env = {
        "MBUSPICO_DEVICE": "KAIFA_MA309M_NETZNOE",  # a profile: protocol and serial settings
        "MBUSPICO_UDP_RECEIVER_HOST": "127.0.0.4",  # the file's overrides it
        "MBUSPICO_GRAPHITE_PREFIX": "house",
        "MBUSPICO_MQTT_AUTH_PWD": secret,
    }
    flags = {"udp_interval": "7", "mqtt_qos": "2"}  # the flag's interval overrides the file's
    config = load(env, path, flags)
    profile = config.profile
    assert profile is not None
    service = Service(config)
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        status, _, body = request(url + "/api/settings")
        assert status == 200
        settings = json.loads(body)["settings"]
        status, _, page = request(url + "/settings")
        assert status == 200
        assert service.history is not None
        history_file = str(service.history.path)
    finally:
        service.stop()
    expected: dict[str, tuple[Any, str, str | None]] = {
        "history.path": (history_file, "default", None),  # the default file, worked out
        "udp.host": ("127.0.0.5", "file", str(path)),
        "udp.interval": (7.0, "flag", "--udp-interval"),
        "mqtt.qos": (2, "flag", "--mqtt-qos"),
        "mqtt.host": ("broker.lan", "file", str(path)),
        "graphite.prefix": ("house", "environment", "MBUSPICO_GRAPHITE_PREFIX"),
        "device": ("KAIFA_MA309M_NETZNOE", "environment", "MBUSPICO_DEVICE"),
        "protocol": ("dlms", "profile", profile.name),
        "serial.baudrate": (profile.baudrate, "profile", profile.name),
        "serial.parity": (profile.parity, "profile", profile.name),
        "serial.port": (meter.port, "file", str(path)),
        "http.port": (0, "file", str(path)),
        "mdns.enabled": (True, "default", None),
        "udp.port": (0, "default", None),
    }
    shown = {"udp.interval": "7.0", "mdns.enabled": "on", "mqtt.qos": "2"}
    for key, (value, source, origin) in expected.items():
        entry = settings[key]
        assert (entry["value"], entry["source"], entry["from"]) == (value, source, origin), key
        row = settings_row(page, key)
        assert in_effect(row) == shown.get(key, str(value)), key
        assert f'<span class="src {source}">' in row, key
        if source in ("environment", "flag", "profile"):
            assert f"{source} {origin}" in row, key
    # A flag beats the file at every start: the row says so.
    assert "set by the flag --udp-interval, which overrides the file" in settings_row(
        page, "udp.interval"
    )
    assert "set by the flag" not in settings_row(page, "udp.host")
    # A secret from the environment: where it came from, whether it is set, never its value.
    password = settings["mqtt.password"]
    assert password == {
        "label": "Password",
        "section": "MQTT",
        "help": "MQTT password",
        "secret": True,
        "set": True,
        "source": "environment",
        "from": "MBUSPICO_MQTT_AUTH_PWD",
        "applies": "now",
        "editable": True,
        "live": True,
    }
    row = settings_row(page, "mqtt.password")
    assert "in effect: <span class=v>set</span>" in row
    assert 'placeholder="set; type to replace"' in row
    for text in (body, page):
        assert secret not in text
        assert PASSWORD not in text
        assert KEY not in text
    assert str(len(secret)) not in row  # nor its length


def test_under_demo_the_page_shows_what_the_demo_runs_with(tmp_path: Path) -> None:
    """The issue's defect: ``serve --demo`` showed the file's ``serial.port /dev/ttyAMA0``."""
    path = tmp_path / "m.toml"
    path.write_text(
        '[serial]\nport = "/dev/ttyAMA0"\n'
        f'[http]\nport = 0\nuser = "{USER}"\npassword = "{PASSWORD}"\n'
        '[mqtt]\ntopic_prefix = "home"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    service = Service(load({}, path, demo=True))
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        settings = json.loads(request(url + "/api/settings")[2])["settings"]
        page = request(url + "/settings")[2]
        pty = service.port
        demo_key = service.key
        assert service.history is not None
        history_file = str(service.history.path)
    finally:
        service.stop()
    assert pty is not None
    assert pty != "/dev/ttyAMA0"
    assert history_file.endswith("history-demo.sqlite3")  # never the real meter's history
    demo = {
        "history.path": history_file,
        "serial.port": pty,
        "http.host": "127.0.0.1",
        "mdns.enabled": False,
        "mqtt.topic_prefix": "home_demo",
    }
    for key, value in demo.items():
        assert (settings[key]["value"], settings[key]["source"]) == (value, "demo"), key
        assert settings[key]["from"] == "--demo"
        assert '<span class="src demo">demo</span>' in settings_row(page, key), key
    assert (settings["key"]["set"], settings["key"]["source"]) == (True, "demo")
    assert demo_key is not None
    assert demo_key not in page
    assert (settings["http.port"]["value"], settings["http.port"]["source"]) == (0, "file")
    row = settings_row(page, "serial.port")
    assert in_effect(row) == pty
    # The field keeps the saved value (what the real meter gets), said as such.
    assert 'name="serial.port" value="/dev/ttyAMA0"' in row
    assert "the field holds the saved value; the demo runs with its own" in row
    assert "<b>Demo</b>: reading a simulated meter on <code>" + pty in page
    assert "in effect: <span class=v>/dev/ttyAMA0" not in page


def test_every_setting_has_a_section_a_label_and_a_place_on_the_page() -> None:
    from mbuspico.serve.config import SECTIONS, SETTINGS, Setting
    from mbuspico.serve.settings_page import EDITABLE, LIVE, label_of, render, section_of

    for s in SETTINGS:
        assert section_of(s) in SECTIONS, s.name
        assert label_of(s), s.name
        assert s.applies in ("now", "restart", "file"), s.name
        assert (s.name in LIVE, s.name in EDITABLE) == (s.applies == "now", s.applies != "file")
    used = {section_of(s) for s in SETTINGS}
    issue = {"Meter", "HTTP", "UDP", "MQTT", "CSV", "Graphite", "InfluxDB", "mDNS"}
    assert issue <= used
    assert all(section_of(s) == "History" for s in SETTINGS if s.toml.startswith("history."))
    # A setting without a section or label of its own: its table's section, its key's name.
    bare = Setting("history_raw_days", None, "history.raw_days", "--x", int, "help")
    assert (section_of(bare), label_of(bare)) == ("History", "Raw days")

    page = render(Config(), Config(), "token")
    order = re.findall(r'<details id="([^"]+)"', page)
    assert order == [n.lower() for n in SECTIONS if n in used]
    rows = re.findall(r'<div class=set id="s-([^"]+)">', page)
    assert rows == [s.toml for n in SECTIONS for s in SETTINGS if section_of(s) == n]
    assert '<details id="meter" open>' in page
    assert '<details id="mqtt"><summary>MQTT <small>off</small>' in page  # off: folded
    assert '<meta name=viewport content="width=device-width, initial-scale=1">' in page
    assert "@media (prefers-color-scheme:dark)" in page
    assert 'href="/dashboard"' in page
    assert 'href="/status.html"' in page
    # Nothing from elsewhere (a Pi may have no internet): links within the service only.
    assert all(link[0] in "/#" for link in re.findall(r'(?:href|src|action)="([^"]*)"', page))
    assert not re.search(r"<(script|link|img|iframe)\b|@import|url\(", page)
    # Every label names its field; a setting only the file can change has no field.
    for s in SETTINGS:
        row = settings_row(page, s.toml)
        assert html.escape(label_of(s)) in row
        if s.name in EDITABLE:
            assert f'<label for="{s.toml}">' in row
            assert f'id="{s.toml}"' in row
        else:
            assert f'name="{s.toml}"' not in row
            assert "change it in the file, then restart" in row


def test_a_change_on_the_page_says_when_it_applies_and_becomes_the_file_s(
    tmp_path: Path, meter: Simulator
) -> None:
    path = toml_file(tmp_path / "m.toml", meter, "[udp]\ninterval = 12.5\n")
    service = Service(load({}, path, {"graphite_prefix": "flagged"}))
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}"
        page = request(url + "/settings")[2]
        assert in_effect(settings_row(page, "udp.interval")) == "12.5"
        assert "applies now" in settings_row(page, "udp.interval")
        assert "at restart" in settings_row(page, "http.port")
        fields = {"csrf": form_token(page), "udp.interval": "3", "http.port": "8123"}
        fields["graphite.prefix"] = "typed"
        status, _, page = request(
            url + "/settings",
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": url},
        )
        assert status == 200, page
        assert (
            "Saved http.port, udp.interval, graphite.prefix. In effect now: udp.interval, "
            "graphite.prefix. Applies at the next start: http.port. Set by a flag at start, "
            "which overrides the file at the next start: graphite.prefix."
        ) in page
        saved = tomllib.loads(path.read_text(encoding="utf-8"))
        assert (saved["udp"]["interval"], saved["http"]["port"]) == (3.0, 8123)
        assert saved["graphite"]["prefix"] == "typed"
        # Live: in effect now, and its source is the file it was saved to.
        row = settings_row(page, "udp.interval")
        assert (in_effect(row), '<span class="src file">file</span>' in row) == ("3.0", True)
        assert "saved, applies at restart" not in row
        # At restart: the old value stays in effect, the saved one is shown as pending.
        row = settings_row(page, "http.port")
        assert in_effect(row) == "0"
        assert "<b>saved, applies at restart</b>: <span class=v>8123</span>" in row
        assert 'name="http.port" value="8123"' in row
        settings = json.loads(request(url + "/api/settings")[2])["settings"]
        assert (settings["udp.interval"]["value"], settings["udp.interval"]["source"]) == (
            3.0,
            "file",
        )
        assert (settings["http.port"]["value"], settings["http.port"]["atRestart"]) == (0, 8123)
        assert service.config.udp_interval == 3.0
        # JSON says the same about a flag-set setting.
        status, result = post_json(url + "/api/settings", {"graphite.prefix": "again"})
        assert (status, result["overridden"]) == (200, ["graphite.prefix"])
        status, result = post_json(url + "/api/settings", {"udp.interval": 4})
        assert "overridden" not in result
    finally:
        service.stop()


def test_load_records_where_each_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('protocol = "dsmr"\n[udp]\nport = 7000\n[http]\nport = 9000\n')
    env = {"MBUSPICO_UDP_RECEIVER_PORT": "6000", "MBUSPICO_MQTT_BROKER_PORT": "1884"}
    config = load(env, path, {"http_port": "9001"}, demo=True)
    assert (config.udp_port, config.source("udp_port")) == (7000, "file")  # file > environment
    assert (config.mqtt_port, config.source("mqtt_port")) == (1884, "environment")
    assert (config.http_port, config.source("http_port")) == (9001, "flag")  # flag > file
    assert (config.http_host, config.source("http_host")) == ("127.0.0.1", "demo")
    assert (config.baudrate, config.source("baudrate")) == (115200, "default")  # P1's
    assert config.source("udp_interval") == "default"
    p1 = load({}, None, {"device": "dsmr5"}, demo=True)
    assert (p1.source("protocol"), p1.source("baudrate"), p1.source("tz")) == ("profile",) * 3
    # A change saved by the page is the file's from then on; what it does not change keeps its own.
    changed = update(config, {"udp_port": 7001, "mqtt_port": "1884"})
    assert changed.source("udp_port") == "file"
    assert changed.source("mqtt_port") == "environment"  # the same value: not changed
    assert changed.source("http_port") == "flag"
    assert config.source("udp_port") == "file"
    assert config.udp_port == 7000
