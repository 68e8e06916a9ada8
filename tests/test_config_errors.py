"""``mbuspico serve`` with a bad setting: one line naming it and its source, exit status 2.

Every bad configuration of :data:`BAD` is given three ways (a flag, an
environment variable, a ``--config`` file) and run as ``python -m mbuspico
serve --demo``: the process must exit at once with status 2 and exactly one
line on standard error, ``mbuspico: ...``, naming the setting as its source
has it (``--http-host``, ``MBUSPICO_HTTP_HOST``, ``http.host in <file>``),
without a traceback and without any secret given. The runs go in parallel
(each exits at once), so the whole table takes a few seconds.

Also ``--demo``'s defaults (issue 19): port 8080, 127.0.0.1 and no mDNS only
where no source sets them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from mbuspico.serve.config import SETTINGS, ConfigError, _bool, load

BY_TOML = {s.toml: s for s in SETTINGS}
SOURCES = ("flag", "env", "file")
KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
ANY = "0.0.0.0"  # noqa: S104 - what a user may ask for


@dataclass(frozen=True)
class Bad:
    """A bad value of one setting."""

    toml: str
    """The setting, by its TOML key."""
    value: Any
    """As the file holds it; flags and environment variables get its text."""
    says: str
    """A piece of the message: what is allowed, or what is wrong."""
    hidden: str | None = None
    """Text that must never be printed (a password, a key)."""
    extra: tuple[str, ...] = ()
    """Other flags that make the setting matter (``--mqtt --mqtt-tls``)."""

    @property
    def id(self) -> str:
        return f"{self.toml}={str(self.value)[:24]}"


NOT_PEM = Path(__file__)  # a readable file that is no certificate

BAD: tuple[Bad, ...] = (
    Bad("http.host", "no-such-host.invalid", "resolves"),
    Bad("http.host", "bad host name!", "IP address or a host name"),
    Bad("http.port", 70000, "from 0 to 65535"),
    Bad("http.port", "eighty", "whole number"),
    Bad(
        "influx.url",
        "http://admin:hunter2@influx.local:8086",
        "influx.user",
        hidden="hunter2",
    ),
    Bad("influx.url", "https://me:s3cr3t-pw@influx.local", "influx.token", hidden="s3cr3t-pw"),
    Bad("influx.url", "ftp://influx.local:8086", "http:// or https://"),
    Bad("influx.url", "influx.local:8086", "http:// or https://"),
    Bad("influx.url", "http://", "must name a host"),
    Bad("influx.url", "http://influx.local:99999", "http://host:8086"),
    Bad("mqtt.ca_file", "/nonexistent/ca.pem", "/nonexistent/ca.pem: No such file"),
    Bad("mqtt.cert_file", "/nonexistent/client.crt", "/nonexistent/client.crt: No such file"),
    Bad("mqtt.key_file", "/nonexistent/client.key", "/nonexistent/client.key: No such file"),
    Bad("mqtt.ca_file", "/", "/ is not a file"),
    Bad("mqtt.ca_file", str(NOT_PEM), "no usable PEM", extra=("--mqtt", "--mqtt-tls")),
    Bad("mqtt.cert_file", str(NOT_PEM), "client certificate", extra=("--mqtt", "--mqtt-tls")),
    Bad("key", "36C66639E48A8CA4D6BC8B282A793BB", "32 hexadecimal digits", hidden="36C66639E4"),
    Bad("auth_key", "XYZ66639E48A8CA4D6BC8B282A793BBB", "32 hexadecimal", hidden="XYZ66639E"),
    Bad("device", "no-such-meter", "unknown device"),
    Bad("protocol", "modbus", '"dlms"'),
    Bad("serial.baudrate", 10, "from 50 to 4000000"),
    Bad("serial.parity", "mark", '"even", "none" or "odd"'),
    Bad("http.enabled", "perhaps", "true or false"),
    Bad("http.max_connections", 0, "from 1 to 4096"),
    Bad("http.header_timeout", -1, "seconds above 0"),
    Bad("http.max_header_bytes", 100, "from 1024"),
    Bad("http.max_headers", 2, "from 4 to 1000"),
    Bad("http.max_body", -5, "whole number"),
    Bad("http.serve_stale", "sometimes", "true or false"),
    Bad("stale_after", -1, "0 (off) or more"),
    Bad("mdns.enabled", "loud", "true or false"),
    Bad("mdns.name", "x" * 64, "63 bytes"),
    Bad("udp.port", 65536, "from 0 to 65535"),
    Bad("udp.interval", 0, "seconds above 0"),
    Bad("dsmr.tz", "Mars/Olympus", "IANA time zone"),
    Bad("dsmr.names", "/nonexistent/names.toml", "cannot read the code table"),
    Bad("mbus.address", "251", "primary address 0..250"),
    Bad("mbus.interval", 0, "seconds above 0"),
    Bad("mqtt.port", 0, "from 1 to 65535"),
    Bad("mqtt.topic_prefix", "meter/#", "wildcards"),
    Bad("mqtt.mode", "7", "evn-json"),
    Bad("mqtt.qos", 3, "from 0 to 2"),
    Bad("mqtt.fingerprint", "ab:cd", "fingerprint"),
    Bad("mqtt.status_interval", -1, "0 (off) or more"),
    Bad("mqtt.buffer", 0, "from 1 to 1000000"),
    Bad("graphite.port", 0, "from 1 to 65535"),
    Bad("influx.version", 3, "from 1 to 2"),
    Bad("influx.buffer", 0, "from 1 to 10000000"),
    Bad("log.level", "LOG_LOUD", "LOG_DEBUG"),
)

FILE_ONLY: tuple[tuple[str, str, str], ...] = (
    # (the file, what the line must say, the key the line suggests or "")
    ('serial = "/dev/ttyUSB0"\n', "invalid serial in", "[serial] with port"),
    ('serial_port = "/dev/ttyUSB0"\n', "unknown setting 'serial_port'", "'serial.port'"),
    ('[mqtt]\nhots = "broker"\n', "unknown setting 'mqtt.hots'", "'mqtt.host'"),
    ("[htpp]\nport = 8081\n", "unknown setting 'htpp.port'", "'http.port'"),
    ("keys = 1\n", "unknown setting 'keys'", "'key'"),
    ("[nonsense]\nwhatever = 1\n", "unknown setting 'nonsense.whatever'", ""),
    ("[nonsense]\n", "unknown setting 'nonsense'", ""),
    ('"http.port" = 8081\n', "unknown setting 'http.port'", "without the quotes"),
    ("http = 5\n", "invalid http in", "[http] with enabled, host, port"),
    ("[http]\nport = \n", "not valid TOML", ""),
)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file(directory: Path, name: str, toml: str, value: Any) -> Path:
    table, _, leaf = toml.rpartition(".")
    doc: dict[str, Any] = {table: {leaf: value}} if table else {toml: value}
    path = directory / name
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}


def _serve(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mbuspico", "serve", *args],
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _run(
    bad: Bad, source: str, directory: Path, n: int
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run ``serve --demo`` with ``bad`` from ``source``; returns its source name and the run."""
    s = BY_TOML[bad.toml]
    # Loopback and a free port, unless that is the setting under test (a flag would win).
    base = {"http_host": ["--http-host", "127.0.0.1"], "http_port": ["--http-port", "0"]}
    args = ["--demo", *bad.extra]
    for name, flag in base.items():
        if name != s.name:
            args += flag
    env: dict[str, str] = {}
    if source == "flag":
        args += [f"{s.flag}={_text(bad.value)}"]
        where = s.flag
    elif source == "env":
        assert s.env is not None
        env[s.env] = _text(bad.value)
        where = s.env
    else:
        path = _file(directory, f"bad{n}.toml", bad.toml, bad.value)
        args += ["--config", str(path)]
        where = f"{bad.toml} in {path}"
    return where, _serve(args, env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    """Every (bad configuration, source) run, all at once."""
    directory = tmp_path_factory.mktemp("bad-config")
    jobs = JOBS
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 2))) as pool:
        futures = {
            (b.id, src): pool.submit(_run, b, src, directory, n) for n, (b, src) in enumerate(jobs)
        }
        return {key: f.result() for key, f in futures.items()}


def test_the_table_is_big_enough() -> None:
    assert len(BAD) >= 30
    assert len({b.id for b in BAD}) == len(BAD)
    assert all(BY_TOML[b.toml].env for b in BAD)  # each has all three sources


def _sources(bad: Bad) -> tuple[str, ...]:
    """A true/false setting's flag takes no value (``--http`` / ``--no-http``)."""
    return SOURCES[1:] if BY_TOML[bad.toml].parse is _bool else SOURCES


JOBS = [(b, src) for b in BAD for src in _sources(b)]


@pytest.mark.parametrize(("bad", "source"), JOBS, ids=[f"{b.id}-{src}" for b, src in JOBS])
def test_a_bad_setting_is_one_line_naming_it(
    bad: Bad, source: str, runs: dict[tuple[str, str], Any]
) -> None:
    where, proc = runs[bad.id, source]
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("mbuspico: "), line
    assert "Traceback" not in proc.stderr
    assert where in line, line
    assert bad.says in line, line
    if bad.hidden is not None:
        assert bad.hidden not in proc.stderr + proc.stdout
        assert bad.hidden.lower() not in line.lower()


@pytest.mark.parametrize(("text", "says", "hint"), FILE_ONLY)
def test_a_bad_file_is_one_line_naming_the_key(
    tmp_path: Path, text: str, says: str, hint: str
) -> None:
    path = tmp_path / "mbuspico.toml"
    path.write_text(text, encoding="utf-8")
    proc = _serve(["--demo", "--http-host", "127.0.0.1", "--http-port", "0", "--config", str(path)])
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert says in lines[0]
    assert str(path) in lines[0]
    assert hint in lines[0]


def test_an_unreadable_or_undecodable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'mdns.name = "Z\xe4hler"\n')
    for path, says in ((missing, "No such file"), (latin, "not UTF-8"), (tmp_path, "directory")):
        proc = _serve(["--demo", "--config", str(path)])
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"mbuspico: --config {path}: "), lines
        assert says in lines[0], lines


# -- the same checks through load() ---------------------------------------------


def test_load_names_the_suggestion_and_never_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'mqtt\.hots' in .* 'mqtt\.host'"):
        load({}, _file(tmp_path, "a.toml", "mqtt.hots", "x"), demo=True)
    with pytest.raises(ConfigError) as info:
        load({"MBUSPICO_INFLUX_URL": "http://u:pa55word@h:8086"}, demo=True)
    assert "pa55word" not in str(info.value)
    assert "influx.password" in str(info.value)
    # A good URL and readable files pass.
    good = load(
        {"MBUSPICO_INFLUX_URL": "https://h:8086", "MBUSPICO_INFLUX_DATABASE": "db"},
        flags={"mqtt_ca_file": str(NOT_PEM)},  # MQTT off: only readable is checked
        demo=True,
    )
    assert good.influx_url == "https://h:8086"
    assert load({"MBUSPICO_HTTP_HOST": "localhost"}, demo=True).http_host == "localhost"
    assert load({"MBUSPICO_HTTP_HOST": "::1"}, demo=True).http_host == "::1"


# -- --demo's defaults -------------------------------------------------------------


def test_demo_defaults_apply_only_where_no_source_sets_them(tmp_path: Path) -> None:
    plain = load({}, demo=True)
    assert (plain.http_host, plain.http_port, plain.mdns_enabled) == ("127.0.0.1", 8080, False)
    assert load({"MBUSPICO_HTTP_SERVER_PORT": "9123"}, demo=True).http_port == 9123
    path = tmp_path / "m.toml"
    path.write_text("[http]\nport = 9124\nhost = '0.0.0.0'\n[mdns]\nenabled = true\n")
    from_file = load({"MBUSPICO_HTTP_SERVER_PORT": "9123"}, path, demo=True)
    assert (from_file.http_host, from_file.http_port, from_file.mdns_enabled) == (
        ANY,
        9124,
        True,
    )
    flags = {"http_host": ANY, "mdns_enabled": True, "http_port": "9125"}
    explicit = load({}, None, flags, demo=True)
    assert (explicit.http_host, explicit.http_port, explicit.mdns_enabled) == (
        ANY,
        9125,
        True,
    )
    assert load({"MBUSPICO_MDNS_ENABLED": "true"}, demo=True).mdns_enabled is True
    # Without --demo, MBusPico's defaults.
    real = load({"MBUSPICO_DEVICE_KEY": KEY, "MBUSPICO_SERIAL_PORT": "/dev/ttyAMA0"})
    assert (real.http_host, real.http_port, real.mdns_enabled) == (ANY, 80, True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_line(args: list[str], env: dict[str, str] | None = None) -> str:
    """Start ``serve``, return its log up to the start line, stop it with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbuspico", "serve", *args],
        env={**_env(), **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if not line or "serving" in line:
                break
        time.sleep(0.3)  # an mDNS announcement would follow at once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, seen
        seen += proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    return seen


@pytest.mark.parametrize("source", ["env", "file"])
def test_serve_demo_listens_where_the_environment_or_file_says(tmp_path: Path, source: str) -> None:
    port = _free_port()
    if source == "env":
        log = _start_line(["--demo"], {"MBUSPICO_HTTP_SERVER_PORT": str(port)})
    else:
        path = tmp_path / "m.toml"
        path.write_text(f"[http]\nport = {port}\n")
        log = _start_line(["--demo", "--config", str(path)])
    assert re.search(rf"HTTP on 127\.0\.0\.1:{port}\b", log), log
    assert "mDNS" not in log, log


def test_serve_help_says_what_demo_defaults() -> None:
    proc = _serve(["--help"])
    text = " ".join(proc.stdout.split())
    assert "127.0.0.1 port 8080" in text
    assert "no mDNS" in text
