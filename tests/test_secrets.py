"""The meter's keys never leave the process: not in any output, log, error or repr.

The end-to-end part runs the service as users do, as subprocesses: ``mbuspico
simulate`` plays a Burgenland E450 (encrypted and tagged telegrams) on a
pseudo-terminal and ``mbuspico serve`` reads it with HTTP, UDP, MQTT (a real
mosquitto), CSV and debug logging on; once with the right keys, once with
``--demo`` and explicit keys, once with wrong keys (every telegram a
DecryptionError). Everything that comes out is collected -- standard output and
error of every process, every HTTP response (including 401/403/404), the UDP
datagrams, every MQTT message (``#``), the CSV files -- and searched for the
keys in every spelling: hex in either case, with separators, raw bytes, base64,
halves. The fast part checks the reprs, exceptions and configuration errors in
this process.

``serve`` has no log-level option: the subprocesses are started through a
one-line wrapper that configures the root logger at DEBUG before calling the
command line (whose own ``logging.basicConfig`` then leaves it alone), so every
library (mbuspico, paho-mqtt, asyncio) logs at DEBUG.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import mbuspico
from conftest import by_id
from mbuspico import cli
from mbuspico.serve import Service
from mbuspico.serve.config import ConfigError, load
from mbuspico.simulate.dlms import Simulator

# Keys of the simulated meter, and the wrong ones a misconfigured service has.
KEY = "5A0E3C9B71D24F86A1C7E09B3D5F2864"
AUTH_KEY = "C93B1E7F02A6D85E4F1B7C3A9E60D2B8"
WRONG_KEY = "7D2E91A4C05B38F6E1D04A9C7B2E5F13"
WRONG_AUTH_KEY = "E4A17C0B93D25F68A0C3E7B19D4F2A56"
SECRETS = (KEY, AUTH_KEY, WRONG_KEY, WRONG_AUTH_KEY)
HTTP_USER, HTTP_PASSWORD = "admin", "Pw-4f1b7c3a9e60"
MOSQUITTO = Path("/usr/sbin/mosquitto")
LOG_DEBUG = (
    "import logging, sys; "
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, "
    "format='%(asctime)s %(levelname)s %(name)s: %(message)s'); "
    "from mbuspico.cli import main; sys.exit(main(sys.argv[1:]))"
)


def spellings(hex_key: str) -> list[bytes]:
    """Every form in which a key could show: compared against lower-cased text
    (hex forms) or the raw output (bytes, base64)."""
    raw = bytes.fromhex(hex_key)
    low = hex_key.lower()
    pairs = [low[i : i + 2] for i in range(0, 32, 2)]
    hex_forms = [
        low,
        " ".join(pairs),
        ":".join(pairs),
        "-".join(pairs),
        ", ".join(f"0x{p}" for p in pairs),
        "".join(f"\\x{p}" for p in pairs),
        low[:16],  # a truncated key is a leaked half
        low[16:],
    ]
    exact = [
        raw,
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        base64.b32encode(raw).rstrip(b"="),
        repr(raw)[2:-1].encode(),
        str(list(raw))[1:-1].encode(),
    ]
    return [f.encode() for f in hex_forms] + exact


def assert_no_secret(outputs: dict[str, bytes], secrets: tuple[str, ...] = SECRETS) -> None:
    """Neither key, in any spelling, in any output; the message names the output."""
    assert outputs
    for name, data in outputs.items():
        lowered = data.lower()
        for secret in secrets:
            for i, form in enumerate(spellings(secret)):
                haystack = lowered if i < 8 else data
                assert form not in haystack, f"key {secret[:4]}... ({form!r}) in {name}"


# -- fast part: in this process ------------------------------------------------------------------


def test_spellings_catch_a_leak() -> None:
    raw = bytes.fromhex(KEY)
    for leak in (
        KEY.encode(),
        KEY.lower().encode(),
        " ".join(KEY[i : i + 2] for i in range(0, 32, 2)).encode(),
        raw,
        base64.b64encode(raw),
        repr(raw).encode(),
        f"key={KEY[:20]}".encode(),
    ):
        with pytest.raises(AssertionError):
            assert_no_secret({"leak": b"x " + leak + b" y"})
    assert_no_secret({"clean": b"Decoder(key=<redacted>)"})


def test_reprs_and_errors_in_process(tmp_path: Path) -> None:
    out: dict[str, bytes] = {}

    def keep(name: str, value: object) -> None:
        out[name] = f"{value!s}\n{value!r}".encode()

    decoder = mbuspico.Decoder(KEY, auth_key=AUTH_KEY, profile="burgenland-e450")
    keep("Decoder", decoder)
    keep("Decoder(bytes)", mbuspico.Decoder(bytes.fromhex(KEY), auth_key=bytearray.fromhex(KEY)))
    # A pickle carries the keys (documented), but no repr along the way shows them.
    keep("Decoder __reduce__", decoder.__reduce__())
    keep("Decoder unpickled", pickle.loads(pickle.dumps(decoder)))  # noqa: S301 - our own pickle
    keep("Decoder deepcopy", __import__("copy").deepcopy(decoder))
    # Malformed keys: a wrong digit, one digit too many or too few, wrong lengths
    # of bytes, spaces; the message never repeats the value.
    bad = [KEY[:-1] + "G", KEY + "0", KEY[:-1], KEY + AUTH_KEY, bytes.fromhex(KEY)[:15]]
    bad += [bytes.fromhex(KEY) + b"\0", f" {KEY}x "]
    for i, value in enumerate(bad):
        for kwargs in ({"key": value}, {"key": KEY, "auth_key": value}):
            with pytest.raises(ValueError, match="not shown") as e:
                mbuspico.Decoder(**kwargs)
            keep(f"Decoder bad key {i} {list(kwargs)}", e.value)
            with pytest.raises(ValueError, match="not shown") as e:
                Simulator("burgenland-e450", **{"auth_key": AUTH_KEY, **kwargs})
            keep(f"Simulator bad key {i} {list(kwargs)}", e.value)
            with pytest.raises(ValueError, match="not shown") as e:
                mbuspico.SerialReader("/dev/null", **kwargs)
            keep(f"SerialReader bad key {i} {list(kwargs)}", e.value)
            env = {"MBUSPICO_DEVICE_KEY": KEY, "MBUSPICO_SERIAL_PORT": "/dev/null"}
            env["MBUSPICO_DEVICE_AUTH_KEY" if "auth_key" in kwargs else "MBUSPICO_DEVICE_KEY"] = (
                value.hex() + "Z" if isinstance(value, bytes) else value
            )
            with pytest.raises(ConfigError) as ce:
                load(env)
            keep(f"ConfigError env {i} {list(kwargs)}", ce.value)
    # Secrets of the wrong type in a config file, and in flags.
    for name in ("key", "auth_key"):
        toml = tmp_path / f"{name}.toml"
        toml.write_text(f"{name} = [{', '.join(str(b) for b in bytes.fromhex(KEY))}]\n")
        with pytest.raises(ConfigError) as ce:
            load({"MBUSPICO_SERIAL_PORT": "/dev/null"}, toml)
        keep(f"ConfigError toml {name}", ce.value)
        with pytest.raises(ConfigError) as ce:
            load({"MBUSPICO_SERIAL_PORT": "/dev/null"}, None, {name: KEY + "00"})
        keep(f"ConfigError flag {name}", ce.value)
    toml = tmp_path / "bad.toml"
    toml.write_text(f'key = "{KEY}"\nauth_key = "{AUTH_KEY}\n')  # unterminated string
    with pytest.raises(ConfigError) as ce:
        load({}, toml)
    keep("ConfigError bad TOML", ce.value)
    # Decryption errors of real frames with the wrong keys.
    vector = by_id("amsreader_gh501_1_lg_e450_burgenland")
    frame = bytes.fromhex(vector["hex"])
    for name, keys in (
        ("wrong key", {"key": WRONG_KEY, "auth_key": vector["auth_key"]}),
        ("wrong auth key", {"key": vector["key"], "auth_key": WRONG_AUTH_KEY}),
        ("both wrong", {"key": KEY, "auth_key": AUTH_KEY}),
    ):
        with pytest.raises(mbuspico.DecryptionError) as de:
            mbuspico.Decoder(**keys).decode(frame)
        keep(f"DecryptionError {name}", de.value)
        keep(f"DecryptionError args {name}", de.value.args)
    kaifa = by_id("fkw9_kaifa_ma309m_real")
    with pytest.raises(mbuspico.DecodeError) as e:
        mbuspico.Decoder(KEY).decode(bytes.fromhex(kaifa["hex"]))
    keep("Kaifa wrong key", e.value)
    # The command line: decode with a wrong key, serve with a malformed one.
    stdout, stderr = io.StringIO(), io.StringIO()
    cli.main(
        ["decode", "--key", KEY, "--auth-key", AUTH_KEY, "--hex", vector["hex"]],
        out=stdout,
        log=stderr,
    )
    cli.main(["decode", "--key", KEY + "0", "--hex", kaifa["hex"]], out=stdout, log=stderr)
    out["cli decode"] = (stdout.getvalue() + stderr.getvalue()).encode()
    assert "authentication tag mismatch" in stderr.getvalue()
    assert "not shown" in stderr.getvalue()
    # Configuration, service and simulator objects.
    config_file = tmp_path / "mbuspico.toml"
    config_file.write_text(f'key = "{KEY}"\nauth_key = "{AUTH_KEY}"\n[http]\nport = 0\n')
    config = load(
        {"MBUSPICO_DEVICE": "burgenland-e450", "MBUSPICO_HTTP_AUTH_PWD": HTTP_PASSWORD},
        config_file,
        {"serial_port": "/dev/null"},
    )
    assert (config.key, config.auth_key) == (KEY, AUTH_KEY)
    keep("Config", config)
    keep("Config warnings", config.warnings)
    keep("Service", Service(config))
    keep(
        "Service vars",
        {k: v for k, v in vars(Service(config)).items() if k not in ("key", "auth_key", "config")},
    )
    sim = Simulator("burgenland-e450", key=KEY, auth_key=AUTH_KEY)
    keep("Simulator", sim)
    with sim:
        keep("Simulator open", sim)
        keep("SerialReader", mbuspico.SerialReader(sim.port, key=KEY, auth_key=AUTH_KEY))
        keep("SerialReader(bytes)", mbuspico.SerialReader(sim.port, key=bytes.fromhex(KEY)))
    from mbuspico.simulate.p1 import P1Simulator

    keep("P1Simulator", P1Simulator("luxembourg-smarty", key=KEY, auth_key=AUTH_KEY))
    assert_no_secret(out, (*SECRETS, HTTP_PASSWORD.encode().hex()))
    assert all(HTTP_PASSWORD.encode() not in v for v in out.values())


def test_config_file_readable_by_others_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = {"MBUSPICO_SERIAL_PORT": "/dev/null"}
    private = tmp_path / "private.toml"
    private.write_text(f'key = "{KEY}"\n')
    private.chmod(0o600)
    assert load(base, private).warnings == ()
    plain = tmp_path / "plain.toml"  # no secret in it: nothing to warn about
    plain.write_text('device = "auto"\n')
    plain.chmod(0o644)
    assert load({**base, "MBUSPICO_DEVICE_KEY": KEY}, plain).warnings == ()
    for mode, content in (
        (0o644, f'key = "{KEY}"\n'),
        (0o640, f'auth_key = "{AUTH_KEY}"\nkey = "{KEY}"\n'),
        (0o604, f'key = "{KEY}"\n'),
        (0o620, f'key = "{KEY}"\n'),
    ):
        path = tmp_path / f"open-{mode:o}.toml"
        path.write_text(content)
        path.chmod(mode)
        (warning,) = load(base, path).warnings
        assert str(path) in warning
        assert f"chmod 600 {path}" in warning
        assert f"{mode:04o}" in warning
        assert "key" in warning
        assert_no_secret({warning: warning.encode()})
    # The service logs it once, at start-up.
    path = tmp_path / "open-644.toml"
    config = load(
        {"MBUSPICO_HTTP_ENABLED": "0", "MBUSPICO_CSV_DIRECTORY": str(tmp_path / "csv")},
        path,
        demo=True,
    )
    service = Service(config)
    with caplog.at_level(logging.DEBUG, logger="mbuspico"):
        service.start()
        try:
            time.sleep(0.3)
        finally:
            service.stop()
    warned = [r for r in caplog.records if "chmod 600" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].levelno == logging.WARNING
    assert str(path) in warned[0].getMessage()
    assert_no_secret({"log": caplog.text.encode()})


def test_basic_auth_accepts_only_the_exact_credentials() -> None:
    """``Service._authorised`` compares the whole header with hmac.compare_digest
    (constant time for equal lengths); only behaviour is tested here."""
    config = load(
        {"MBUSPICO_HTTP_AUTH_USER": HTTP_USER, "MBUSPICO_HTTP_AUTH_PWD": HTTP_PASSWORD},
        None,
        {"http_host": "127.0.0.1", "http_port": "0"},
        demo=True,
    )
    service = Service(config)
    token = base64.b64encode(f"{HTTP_USER}:{HTTP_PASSWORD}".encode()).decode()
    assert service._authorised(f"Basic {token}") == 200
    assert service._authorised(None) == 401
    for header in (
        "",
        "Basic",
        f"Basic {token}x",
        f"Basic {token[:-1]}",
        f"Bearer {token}",
        f"Basic  {token}",
        "Basic " + base64.b64encode(f"{HTTP_USER}:{HTTP_PASSWORD[:-1]}".encode()).decode(),
        "Basic " + base64.b64encode(f"{HTTP_USER}x:{HTTP_PASSWORD}".encode()).decode(),
        "Basic " + base64.b64encode(f":{HTTP_USER}:{HTTP_PASSWORD}".encode()).decode(),
        f"Basic {token}\u00e9",
        "\udcff",  # a header that is not UTF-8 at all
    ):
        assert service._authorised(header) == 403, header
    open_service = Service(load({}, None, {"http_port": "0"}, demo=True))
    assert open_service._authorised(None) == 200
    # Over the wire, also with bytes that are not UTF-8.
    service.start()
    try:
        assert service.http_port
        url = f"http://127.0.0.1:{service.http_port}"
        assert request(url + "/api/status").startswith(b"401\n")
        assert request(url + "/api/status", f"Basic {token}").startswith(b"200\n")
        assert request(url + "/api/status", f"basic {token}").startswith(b"403\n")
        with socket.create_connection(("127.0.0.1", service.http_port), 5) as sock:
            sock.sendall(b"GET /api/status HTTP/1.0\r\nAuthorization: Basic \xff\xfe\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 403), answer[:100]
        assert request(url + "/api/status", f"Basic {token}").startswith(b"200\n")  # still up
    finally:
        service.stop()


# -- end to end: subprocesses --------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def request(url: str, auth: str | None = None) -> bytes:
    """The whole response (status, headers, body) as bytes, errors included."""
    req = urllib.request.Request(url)  # noqa: S310 - a local test server
    if auth is not None:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
            status, headers, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    return f"{status}\n{headers}\n".encode() + body


class Processes:
    """Started subprocesses, their output in files; all stopped at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Path:
        out = (self.directory / f"{name}.out").open("wb")
        err = (self.directory / f"{name}.err").open("wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        out.close()
        err.close()
        self.procs.append((name, proc))
        return self.directory / f"{name}.err"

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if "serve" in name else signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            codes[name] = proc.returncode
        return codes

    def outputs(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in sorted(self.directory.glob("*.out")) + sorted(self.directory.glob("*.err"))
        }


class Collector:
    """Every UDP datagram and MQTT message, as they arrive."""

    def __init__(self, mqtt_port: int) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.udp_port = self.udp.getsockname()[1]
        self.datagrams: list[bytes] = []
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="secrets-test")
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            m.topic.encode() + b" " + m.payload
        )
        self.client.connect("127.0.0.1", mqtt_port)
        self.client.subscribe("#")
        self.client.loop_start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, socket.timeout):
                self.datagrams.append(self.udp.recv(65536))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.udp.close()
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing: run scripts/system-deps to install mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    lines += ["log_type all", f"log_dest file {tmp_path / 'mosquitto.log'}"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stderr=subprocess.DEVNULL)

    def accepting() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    try:
        wait_for(accepting, 10, "mosquitto accepting")
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_no_key_in_any_output_of_the_running_service(tmp_path: Path, mosquitto: int) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    collector = Collector(mosquitto)
    exe = str(Path(sys.executable).with_name("mbuspico"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
    env["PYTHONASYNCIODEBUG"] = "1"
    env["MBUSPICO_LOG_LEVEL"] = "LOG_DEBUG"  # MBusPico's setting: every telegram's handling
    # A meter for each service reading one (a port has one reader), on a
    # pseudo-terminal behind a symlink.
    meters = {name: tmp_path / f"meter-{name}" for name in ("good", "wrong", "wrong-auth")}
    for name, port in meters.items():
        procs.start(
            f"simulate-{name}",
            [
                exe,
                "simulate",
                "--meter",
                "burgenland-e450",
                "--key",
                KEY,
                "--auth-key",
                AUTH_KEY,
                "--link",
                str(port),
                "--interval",
                "0.2",
            ],
            env,
        )
    for port in meters.values():
        wait_for(port.exists, 15, "the simulated meter")
    # The keys from a config file (readable by others: the warning), the
    # environment and flags, in turn.
    config_file = tmp_path / "mbuspico.toml"
    config_file.write_text(f'key = "{KEY}"\n\n[mqtt]\ndiscovery_prefix = "ha"\n')
    config_file.chmod(0o644)
    common = {
        **env,
        "MBUSPICO_DEVICE": "burgenland-e450",
        "MBUSPICO_HTTP_HOST": "127.0.0.1",
        "MBUSPICO_HTTP_SERVER_PORT": "0",
        "MBUSPICO_HTTP_AUTH_USER": HTTP_USER,
        "MBUSPICO_HTTP_AUTH_PWD": HTTP_PASSWORD,
        "MBUSPICO_UDP_ENABLED": "1",
        "MBUSPICO_UDP_RECEIVER_PORT": str(collector.udp_port),
        "MBUSPICO_UDP_INTERVAL_S": "0.2",
        "MBUSPICO_MQTT_ENABLED": "1",
        "MBUSPICO_MQTT_BROKER_PORT": str(mosquitto),
        "MBUSPICO_MQTT_BROKER_ADDRESS": "127.0.0.1",
    }
    serve = [sys.executable, "-c", LOG_DEBUG, "serve"]
    runs: dict[str, tuple[list[str], dict[str, str], bool]] = {
        "serve-good": (
            [*serve, "--config", str(config_file), "--mqtt-discovery"],
            {
                **common,
                "MBUSPICO_SERIAL_PORT": str(meters["good"]),
                "MBUSPICO_DEVICE_AUTH_KEY": AUTH_KEY,
                "MBUSPICO_MQTT_CLIENT_ID": "good",
                "MBUSPICO_MQTT_TOPIC_PREFIX": "good",
            },
            True,
        ),
        "serve-demo": (
            [
                *serve,
                "--demo",
                "--key",
                KEY.lower(),
                "--auth-key",
                AUTH_KEY,
                "--mqtt-mode",
                "evn-raw",
            ],
            {**common, "MBUSPICO_MQTT_CLIENT_ID": "demo", "MBUSPICO_MQTT_TOPIC_PREFIX": "demo"},
            True,
        ),
        "serve-wrong": (
            [*serve, "--mqtt-mode", "obis", "--mqtt-telegram-json", "--key", WRONG_KEY],
            {
                **common,
                "MBUSPICO_SERIAL_PORT": str(meters["wrong"]),
                "MBUSPICO_DEVICE_AUTH_KEY": WRONG_AUTH_KEY,
                "MBUSPICO_MQTT_CLIENT_ID": "wrong",
                "MBUSPICO_MQTT_TOPIC_PREFIX": "wrong",
            },
            False,
        ),
        "serve-wrong-auth": (
            [*serve, "--key", " ".join(KEY[i : i + 4] for i in range(0, 32, 4))],
            {
                **common,
                "MBUSPICO_SERIAL_PORT": str(meters["wrong-auth"]),
                "MBUSPICO_DEVICE_AUTH_KEY": WRONG_AUTH_KEY.lower(),
                "MBUSPICO_MQTT_CLIENT_ID": "wrongauth",
                "MBUSPICO_MQTT_TOPIC_PREFIX": "wrongauth",
            },
            False,
        ),
    }
    outputs: dict[str, bytes] = {}
    try:
        for name, (argv, run_env, _) in runs.items():
            csv_dir = tmp_path / f"csv-{name}"
            procs.start(name, argv, {**run_env, "MBUSPICO_CSV_DIRECTORY": str(csv_dir)})

        def bound(name: str) -> str | None:
            text = (logs / f"{name}.err").read_text(errors="replace")
            m = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", text)
            return f"http://127.0.0.1:{m.group(1)}" if m else None

        urls: dict[str, str] = {}
        for name in runs:
            urls[name] = wait_for(lambda n=name: bound(n), 20, f"{name} serving")
        good = "Basic " + base64.b64encode(f"{HTTP_USER}:{HTTP_PASSWORD}".encode()).decode()
        auths = {
            "none": None,
            "wrong": "Basic " + base64.b64encode(f"{HTTP_USER}:wrong".encode()).decode(),
            "good": good,
        }

        def counters(name: str) -> dict[str, int]:
            status = json.loads(request(urls[name] + "/api/status", good).split(b"\n\n", 1)[1])
            return status["counters"]

        for name, (_, _, decodes) in runs.items():
            counter = "readings" if decodes else "decryption_errors"
            wait_for(lambda n=name, c=counter: counters(n).get(c, 0) >= 3, 30, f"{name} {counter}")
        for name, (_, _, decodes) in runs.items():
            got = counters(name)
            assert (got["readings"] > 0) == decodes, (name, got)
        wait_for(lambda: len(collector.datagrams) >= 4, 10, "UDP datagrams")
        wait_for(lambda: any(m.startswith(b"demo_demo/") for m in collector.messages), 10, "MQTT")
        # A symlink in the CSV directory to the config file (which holds the
        # key): must not be served.
        (tmp_path / "csv-serve-good" / "2020-01.csv").symlink_to(config_file)
        # Every route, with no, wrong and right credentials.
        paths = ["/", "/api/reading", "/api/status", "/status.html", "/dashboard", "/reboot"]
        paths += ["/update"]
        paths += ["/settings", "/api/settings"]  # secrets shown only as set / not set
        paths += ["/nothing", "/files", "/files/../mbuspico.toml", "/files/%2e%2e%2fmbuspico.toml"]
        paths += ["/files/..%2F..%2Fmbuspico.toml", "/files/%2Fetc%2Fpasswd", "/api/reading?key=1"]
        for name, url in urls.items():
            csv_dir = tmp_path / f"csv-{name}"
            if csv_dir.exists():
                paths += [f"/files/{p.name}" for p in csv_dir.iterdir()]
            for path in paths:
                for how, auth in auths.items():
                    outputs[f"HTTP {name} {path} {how}"] = request(url + path, auth)
            assert outputs[f"HTTP {name} /api/status none"].startswith(b"401\n")
            assert outputs[f"HTTP {name} /api/status wrong"].startswith(b"403\n")
            assert outputs[f"HTTP {name} /api/status good"].startswith(b"200\n")
            assert outputs[f"HTTP {name} /files/../mbuspico.toml good"][:3] == b"404"
            for path in paths:
                if path.startswith("/files/") and "20" not in path:
                    assert outputs[f"HTTP {name} {path} good"][:3] == b"404", path
        assert outputs["HTTP serve-good /files/2020-01.csv good"][:3] == b"404"
        assert outputs["HTTP serve-good /api/settings good"].startswith(b"200\n")
        settings = outputs["HTTP serve-good /api/settings good"].split(b"\n\n", 1)[1]
        assert json.loads(settings)["settings"]["key"]["set"] is True
        assert b"<form" in outputs["HTTP serve-good /settings good"]
        assert b'"meterNumber"' in outputs["HTTP serve-good / good"]
        assert b'"meterNumber"' in outputs["HTTP serve-demo / good"]
        assert outputs["HTTP serve-wrong / good"].startswith(b"204\n")
    finally:
        codes = procs.stop()
        collector.close()
    assert all(code == 0 for name, code in codes.items() if name.startswith("serve")), codes
    outputs.update(procs.outputs())
    for i, datagram in enumerate(collector.datagrams):
        outputs[f"UDP {i}"] = datagram
    for i, message in enumerate(collector.messages):
        outputs[f"MQTT {i}"] = message
    for csv_file in tmp_path.glob("csv-*/*"):
        if csv_file.is_symlink():
            continue  # the test's own link to the config file
        outputs[f"CSV {csv_file}"] = csv_file.read_bytes()
    outputs["mosquitto log"] = (tmp_path / "mosquitto.log").read_bytes()
    # What was collected is what the service does: readings, errors, debug logs.
    errors = outputs["serve-wrong.err"] + outputs["serve-wrong-auth.err"]
    assert b"dropped a telegram" in errors
    assert b"DEBUG" in outputs["serve-good.err"]
    assert b"chmod 600" in outputs["serve-good.err"]
    assert outputs["serve-good.err"].count(b"chmod 600") == 1
    assert any(m.startswith(b"good/") for m in collector.messages)
    assert any(m.startswith(b"ha/") for m in collector.messages)
    wrong = [m for m in collector.messages if m.startswith(b"wrong") and b"/status " not in m]
    assert not wrong, wrong[:5]
    assert any(f.parent.name == "csv-serve-good" for f in tmp_path.glob("csv-*/*.csv"))
    assert len(outputs) > 100
    assert_no_secret(outputs)
    assert all(HTTP_PASSWORD.encode() not in v for v in outputs.values())
