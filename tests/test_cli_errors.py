"""The command line's errors as a matrix (issue 20).

Every subcommand (``decode``, ``read``, ``serve``, ``simulate``, ``mbus``) meets
every fault that applies to it: a missing, empty, binary-garbage or text-garbage
file; a wrong, malformed (by flag and by environment variable) or missing key;
a serial port that does not exist, that another reader holds, that sends
garbage, text or nothing; an HTTP port in use; an unknown profile or device;
options that do not go together. Each run (``python -m mbuspico ...``) must end
with status 2 (usage) or 1 (runtime) and exactly one line on standard error,
``mbuspico...``, naming the thing at fault and the way out, never a
traceback.

The runs go in parallel (a thread pool over subprocesses; the serial ports
are pseudo-terminals, each run its own: a port is opened exclusively), so the
whole matrix takes about as long as its slowest runs. ``serve``'s bad
settings are tested in test_config_errors.py and not repeated here.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mbuspico import SerialReader
from mbuspico.simulate.dlms import Simulator
from mbuspico.simulate.p1 import P1Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"  # the Netz NÖ documentation's key
OTHER = "000102030405060708090A0B0C0D0E0F"
BAD_KEY = "0123456789ABCDEF0123"  # 20 digits: never printed
DATA = Path(__file__).parent / "data"
DOC = DATA / "dlms" / "netznoe_kaifa_ma309m_doc.hex"
WIRED = DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"
NO_SUCH_PORT = "/dev/ttyNoSuchPort9"


@dataclass(frozen=True)
class Case:
    """One command with one fault."""

    command: str
    fault: str
    args: tuple[str, ...]
    """After the command; ``{dir}`` (the files), ``{port}`` (the case's own
    port, made as ``port`` says) and ``{http}`` (a TCP port in use) are filled in."""
    code: int
    says: tuple[str, ...]
    """Pieces of the line: the thing at fault and the way out."""
    port: str | None = None
    """The port the case reads: dlms, p1, binary, text, text7, silent, wired,
    busy, bus, noisy-bus."""
    env: tuple[tuple[str, str], ...] = ()
    hidden: str | None = None
    """Text never to be printed (a key)."""

    @property
    def id(self) -> str:
        return f"{self.command}-{self.fault}"


def _c(command: str, fault: str, args: str, code: int, *says: str, **kw: Any) -> Case:
    return Case(command, fault, tuple(args.split()), code, says, **kw)


ENV_KEY = (("MBUSPICO_DEVICE_KEY", BAD_KEY),)
ENV_AUTH = (("MBUSPICO_DEVICE_AUTH_KEY", "abc"),)
ENV_PROFILE = (("MBUSPICO_DEVICE", "no-such-meter"),)

CASES: tuple[Case, ...] = (
    # -- decode ----------------------------------------------------------------
    _c("decode", "missing-file", "{dir}/missing.bin", 1, "missing.bin", "No such file"),
    _c("decode", "directory", "{dir}", 1, "{dir}", "directory"),
    _c("decode", "empty-file", "{dir}/empty.bin", 1, "empty.bin", "empty", "capture"),
    _c("decode", "empty-stdin", "-", 1, "<stdin>", "empty"),
    _c(
        "decode",
        "garbage-binary",
        "{dir}/garbage.bin",
        1,
        "garbage.bin",
        "no telegram found in 300 bytes",
        "capture of the meter",
    ),
    _c(
        "decode",
        "garbage-text",
        "{dir}/garbage.txt",
        1,
        "garbage.txt",
        "not hex",
        "no P1 telegram",
        "hex dump",
    ),
    _c("decode", "garbage-hex-flag", "--hex zz", 1, "--hex #1", "not hexadecimal"),
    _c("decode", "wrong-key", f"--key {OTHER} {DOC}", 1, "wrong key", "--key"),
    _c(
        "decode",
        "wrong-key-env",
        str(DOC),
        1,
        "wrong key",
        "$MBUSPICO_DEVICE_KEY",
        env=(("MBUSPICO_DEVICE_KEY", OTHER),),
    ),
    _c(
        "decode",
        "malformed-key-flag",
        f"--key {BAD_KEY} {DOC}",
        2,
        "--key",
        "32 hexadecimal digits",
        hidden=BAD_KEY,
    ),
    _c(
        "decode",
        "malformed-key-env",
        str(DOC),
        2,
        "MBUSPICO_DEVICE_KEY",
        "32 hexadecimal digits",
        env=ENV_KEY,
        hidden=BAD_KEY,
    ),
    _c("decode", "malformed-auth-key-flag", f"--key {KEY} --auth-key abc {DOC}", 2, "--auth-key"),
    _c(
        "decode",
        "malformed-auth-key-env",
        f"--key {KEY} {DOC}",
        2,
        "MBUSPICO_DEVICE_AUTH_KEY",
        env=ENV_AUTH,
    ),
    _c("decode", "no-key", str(DOC), 1, "encrypted", "--key"),
    _c(
        "decode",
        "unknown-profile-flag",
        f"--profile nosuch {DOC}",
        2,
        "--profile",
        "nosuch",
        "one of",
    ),
    _c("decode", "unknown-profile-env", str(DOC), 2, "MBUSPICO_DEVICE", "one of", env=ENV_PROFILE),
    _c("decode", "unknown-protocol", f"--protocol modbus {DOC}", 2, "--protocol", "--help"),
    _c(
        "decode",
        "protocol-contradicts-profile",
        f"--protocol dsmr --profile kaifa-ma309m-netznoe {DOC}",
        2,
        "contradicts",
        "kaifa-ma309m-netznoe",
    ),
    _c(
        "decode",
        "xml-of-dlms-protocol",
        f"--protocol dlms --format xml {DOC}",
        2,
        "--format xml",
        "json",
    ),
    _c(
        "decode",
        "xml-of-a-dlms-telegram",
        f"--key {KEY} --format xml {DOC}",
        1,
        "xml",
        "--format json",
    ),
    _c(
        "decode",
        "mbuspico-of-mbus-protocol",
        f"--protocol mbus --format mbuspico {WIRED}",
        2,
        "--format mbuspico",
        "--format json",
    ),
    _c(
        "decode",
        "mbuspico-of-a-wired-telegram",
        f"--format mbuspico {WIRED}",
        1,
        "--format mbuspico",
        "wired M-Bus",
        "--format json",
    ),
    # -- read ------------------------------------------------------------------
    _c(
        "read",
        "no-such-port",
        f"{NO_SUCH_PORT} --timeout 1",
        1,
        NO_SUCH_PORT,
        "No such file",
        "device name",
    ),
    _c(
        "read",
        "busy-port",
        "{port} --timeout 1",
        1,
        "{port}",
        "busy",
        "stop that one first",
        port="busy",
    ),
    _c(
        "read",
        "garbage-binary",
        "{port} --timeout 1.5",
        1,
        "{port}",
        "binary bytes",
        "--baudrate",
        port="binary",
    ),
    _c(
        "read", "garbage-text", "{port} --timeout 1.5", 1, "{port}", "ASCII text", "P1", port="text"
    ),
    _c(
        "read",
        "seven-bit-text",
        "{port} --timeout 1.5",
        1,
        "7-bit text",
        "--bytesize 7",
        port="text7",
    ),
    _c(
        "read",
        "silent-port",
        "{port} --timeout 1",
        1,
        "{port}",
        "no bytes",
        "connected",
        port="silent",
    ),
    _c(
        "read",
        "p1-port-as-mbus",
        "{port} --protocol mbus --timeout 1.5",
        1,
        "looks like a P1 port",
        "--protocol dsmr",
        port="p1",
    ),
    _c(
        "read",
        "wrong-key",
        f"{{port}} --key {OTHER} --timeout 2",
        1,
        "{port}",
        "wrong key",
        "--key",
        port="dlms",
    ),
    _c(
        "read",
        "wrong-key-env",
        "{port} --timeout 2",
        1,
        "wrong key",
        "$MBUSPICO_DEVICE_KEY",
        port="dlms",
        env=(("MBUSPICO_DEVICE_KEY", OTHER),),
    ),
    _c("read", "no-key", "{port} --timeout 2", 1, "{port}", "encrypted", "--key", port="dlms"),
    _c(
        "read",
        "malformed-key-flag",
        f"{{port}} --key {BAD_KEY}",
        2,
        "--key",
        "32 hexadecimal",
        port="silent",
        hidden=BAD_KEY,
    ),
    _c(
        "read",
        "malformed-key-env",
        "{port}",
        2,
        "MBUSPICO_DEVICE_KEY",
        "32 hexadecimal",
        port="silent",
        env=ENV_KEY,
        hidden=BAD_KEY,
    ),
    _c(
        "read",
        "malformed-auth-key-env",
        f"{{port}} --key {KEY}",
        2,
        "MBUSPICO_DEVICE_AUTH_KEY",
        port="silent",
        env=ENV_AUTH,
    ),
    _c(
        "read",
        "unknown-profile-flag",
        "{port} --profile nosuch",
        2,
        "--profile",
        "one of",
        port="silent",
    ),
    _c(
        "read",
        "unknown-profile-env",
        "{port}",
        2,
        "MBUSPICO_DEVICE",
        "one of",
        port="silent",
        env=ENV_PROFILE,
    ),
    _c(
        "read",
        "protocol-contradicts-profile",
        "{port} --protocol dsmr --profile kaifa-ma309m-netznoe",
        2,
        "contradicts",
        port="silent",
    ),
    _c(
        "read",
        "mbuspico-of-mbus-protocol",
        "{port} --protocol mbus --format mbuspico",
        2,
        "--format mbuspico",
        "--format json",
        port="silent",
    ),
    _c(
        "read",
        "mbuspico-of-a-wired-telegram",
        "{port} --format mbuspico --timeout 3",
        2,
        "--format mbuspico",
        "--format json",
        port="wired",
    ),
    _c("read", "xml-format", "{port} --format xml", 2, "--format", "--help", port="silent"),
    _c("read", "bad-bytesize", "{port} --bytesize 9", 2, "--bytesize", "--help", port="silent"),
    _c("read", "bad-timeout", "{port} --timeout -1", 2, "--timeout", port="silent"),
    _c(
        "read",
        "bad-time-zone",
        "{port} --tz Mars/Olympus",
        2,
        "Mars/Olympus",
        "IANA",
        port="silent",
    ),
    # -- serve (its bad settings: test_config_errors.py) ------------------------
    _c(
        "serve",
        "no-such-port",
        f"--port {NO_SUCH_PORT} --key {KEY} --http-host 127.0.0.1 --http-port 0",
        1,
        NO_SUCH_PORT,
        "device name",
    ),
    _c(
        "serve",
        "busy-port",
        f"--port {{port}} --key {KEY} --http-host 127.0.0.1 --http-port 0",
        1,
        "{port}",
        "busy",
        port="busy",
    ),
    _c(
        "serve",
        "http-port-in-use",
        "--demo --http-host 127.0.0.1 --http-port {http}",
        1,
        "{http}",
        "in use",
        "--http-port",
    ),
    _c(
        "serve",
        "no-key",
        "--port {port} --http-host 127.0.0.1 --http-port 0",
        2,
        "missing key",
        "--key",
        port="silent",
    ),
    _c(
        "serve",
        "demo-unplayable-device",
        "--demo --device lg-e570 --http-port 0",
        2,
        "lg-e570",
        "--device",
        "kaifa-ma309m-netznoe",
    ),
    _c(
        "serve",
        "demo-unplayable-honeywell",
        "--demo --device honeywell-dm515-vkw --http-port 0",
        2,
        "honeywell-dm515-vkw",
        "--device",
    ),
    _c(
        "serve",
        "demo-of-wired-mbus",
        "--demo --protocol mbus --http-port 0",
        2,
        "--demo",
        "protocol mbus",
    ),
    _c(
        "serve",
        "device-contradicts-protocol",
        f"--port {{port}} --key {KEY} --device kaifa-ma309m-netznoe --protocol dsmr",
        2,
        "--protocol",
        "kaifa-ma309m-netznoe",
        port="silent",
    ),
    _c("serve", "unknown-option", "--demo --htp-port 1", 2, "--htp-port", "--help"),
    # -- simulate --------------------------------------------------------------
    _c(
        "simulate",
        "missing-replay",
        f"--key {KEY} --replay {{dir}}/missing.bin --count 1",
        2,
        "--replay",
        "missing.bin",
        "No such file",
    ),
    _c(
        "simulate",
        "empty-replay",
        f"--key {KEY} --replay {{dir}}/empty.bin --count 1",
        2,
        "--replay",
        "empty.bin",
        "capture",
    ),
    _c(
        "simulate",
        "garbage-binary-replay",
        f"--key {KEY} --replay {{dir}}/garbage.bin --count 1",
        2,
        "--replay",
        "garbage.bin",
        "no telegram",
    ),
    _c(
        "simulate",
        "garbage-text-replay",
        f"--key {KEY} --replay {{dir}}/garbage.txt --count 1",
        2,
        "--replay",
        "garbage.txt",
        "no telegram",
    ),
    _c(
        "simulate",
        "garbage-p1-replay",
        "--meter dsmr5 --replay {dir}/garbage.bin --count 1",
        2,
        "--replay",
        "P1 telegram",
        "capture",
    ),
    _c(
        "simulate",
        "missing-frames",
        "--meter mbus-slave --frames {dir}/missing.hex",
        2,
        "--frames",
        "missing.hex",
        "No such file",
    ),
    _c(
        "simulate",
        "garbage-frames",
        "--meter mbus-slave --frames {dir}/garbage.bin",
        2,
        "--frames",
        "garbage.bin",
        "RSP_UD",
    ),
    _c("simulate", "no-frames", "--meter mbus-slave", 2, "--frames"),
    _c("simulate", "no-key", "--meter kaifa-ma309m", 2, "--key"),
    _c(
        "simulate",
        "no-key-encrypted-p1",
        "--meter luxembourg-smarty",
        2,
        "--key",
        "luxembourg-smarty",
    ),
    _c(
        "simulate",
        "malformed-key-flag",
        f"--key {BAD_KEY}",
        2,
        "--key",
        "32 hexadecimal",
        hidden=BAD_KEY,
    ),
    _c(
        "simulate",
        "malformed-key-env",
        "--count 1",
        2,
        "MBUSPICO_DEVICE_KEY",
        "32 hexadecimal",
        env=ENV_KEY,
        hidden=BAD_KEY,
    ),
    _c(
        "simulate",
        "malformed-auth-key",
        f"--meter burgenland-e450 --key {KEY} --auth-key abc",
        2,
        "--auth-key",
        "32 hexadecimal",
    ),
    _c("simulate", "unknown-meter", "--meter nosuch", 2, "--meter", "nosuch", "--help"),
    _c(
        "simulate",
        "link-over-a-file",
        f"--key {KEY} --link {{dir}}/empty.bin --count 1",
        2,
        "--link",
        "empty.bin",
        "symlink",
    ),
    _c(
        "simulate", "bad-probability", f"--key {KEY} --garbage 2", 2, "--garbage", "between 0 and 1"
    ),
    # -- mbus ------------------------------------------------------------------
    _c(
        "mbus",
        "no-such-port",
        f"ping --port {NO_SUCH_PORT} --address 1",
        1,
        NO_SUCH_PORT,
        "device name",
    ),
    _c("mbus", "busy-port", "ping --port {port} --address 1", 1, "{port}", "busy", port="busy"),
    _c(
        "mbus",
        "no-answer",
        "request --port {port} --address 5 --timeout 0.05 --retries 0",
        1,
        "no answer",
        "--address",
        "--baudrate",
        port="bus",
    ),
    _c(
        "mbus",
        "empty-bus-scan",
        "scan --port {port} --baudrate 38400 --timeout 0.01",
        1,
        "no slave answered",
        "{port}",
        "--baudrate",
        port="bus",
    ),
    _c(
        "mbus",
        "garbage-answer",
        "request --port {port} --address 5 --timeout 0.2 --retries 0",
        1,
        "{port}",
        port="noisy-bus",
    ),
    _c("mbus", "no-target", "ping --port {port}", 2, "--address", "--secondary", port="bus"),
    _c(
        "mbus",
        "address-and-secondary",
        "ping --port {port} --address 1 --secondary 12345678",
        2,
        "--secondary",
        "--address",
        "--help",
        port="bus",
    ),
    _c("mbus", "address-out-of-range", "ping --port {port} --address 300", 2, "300", port="bus"),
    _c(
        "mbus",
        "bad-retries",
        "ping --port {port} --address 1 --retries -1",
        2,
        "--retries",
        port="bus",
    ),
    _c(
        "mbus",
        "bad-parity",
        "ping --port {port} --address 1 --parity mark",
        2,
        "--parity",
        "--help",
        port="bus",
    ),
)


# -- the ports ------------------------------------------------------------------


class _Pty:
    """A pseudo-terminal pair; ``job`` runs on the master end until closed."""

    def __init__(self, job: Callable[[int, threading.Event], None] | None = None) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self.stop = threading.Event()
        self.thread = None
        if job is not None:
            self.thread = threading.Thread(target=job, args=(self.master, self.stop), daemon=True)
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)


def _writes(
    data: Callable[[], bytes], every: float = 0.05
) -> Callable[[int, threading.Event], None]:
    """A job that writes ``data()`` every ``every`` seconds (dropped while nobody reads)."""

    def job(fd: int, stop: threading.Event) -> None:
        while not stop.wait(every):
            with contextlib.suppress(OSError):  # the buffer is full: nobody reads
                os.write(fd, data())

    return job


def _answers(answer: Callable[[bytes], bytes]) -> Callable[[int, threading.Event], None]:
    """A job that reads what the master sends and answers it (an M-Bus bus)."""

    def job(fd: int, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                request = os.read(fd, 4096)
                if request and (reply := answer(request)):
                    os.write(fd, reply)
            except OSError:
                pass

    return job


def _parity(text: bytes) -> bytes:
    """7-bit characters with an even parity bit in bit 7 (7E1 read as 8N1)."""
    return bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in text)


class _Ports:
    """Makes each case's port and closes them all at the end."""

    def __init__(self) -> None:
        self.closers: list[Callable[[], None]] = []
        rng = random.Random(20)  # noqa: S311 - reproducible garbage
        self.garbage = bytes(rng.randrange(256) for _ in range(200))

    def make(self, kind: str) -> str:
        if kind in ("dlms", "p1"):
            sim: Any = (
                Simulator("kaifa-ma309m", key=KEY, interval=0.2, seed=1)
                if kind == "dlms"
                else P1Simulator("dsmr5", interval=0.2, seed=1)
            )
            port: str = sim.open()
            sim.start()
            self.closers.append(sim.close)
            return port
        if kind == "busy":  # another reader holds it (opened exclusively)
            p = _Pty()
            reader = SerialReader(p.port, key=None)
            self.closers += [p.close, reader.close]
            return p.port
        wired = WIRED.read_text().split()[0]
        job = {
            "binary": _writes(lambda: self.garbage),
            "text": _writes(lambda: b"hello, this is just some text\r\n"),
            "text7": _writes(lambda: _parity(b"/ISK5 7-bit text with parity\r\n")),
            "wired": _writes(lambda: bytes.fromhex(wired), 0.2),
            "silent": None,
            "bus": _answers(lambda _: b""),
            "noisy-bus": _answers(lambda _: self.garbage[:40]),
        }[kind]
        p = _Pty(job)
        self.closers.append(p.close)
        return p.port

    def close(self) -> None:
        # At once: a simulator nobody reads any more waits a while to stop.
        with ThreadPoolExecutor(max_workers=len(self.closers) or 1) as pool:
            for done in [pool.submit(close) for close in reversed(self.closers)]:
                done.result()


# -- the runs -----------------------------------------------------------------------


def _env(extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
    return {**env, **dict(extra)}


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _run(case: Case, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [_fill(a, values) for a in case.args]
    return subprocess.run(
        [sys.executable, "-m", "mbuspico", case.command, *args],
        env=_env(case.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _read_without_timeout(port: str) -> tuple[float, str, int]:
    """``read`` with no --timeout on a port sending text: the line it prints
    after a while, when, and its exit status after Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbuspico", "read", port],
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        when = time.monotonic() - start
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        return when, line + proc.stderr.read(), code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli-errors")
    rng = random.Random(19)  # noqa: S311 - reproducible garbage
    (directory / "empty.bin").write_bytes(b"")
    (directory / "garbage.bin").write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    (directory / "garbage.txt").write_text("hello world\nthis is no capture at all\n")
    return directory


@pytest.fixture(scope="module")
def runs(files: Path) -> Iterator[dict[str, Any]]:
    """Every case's run, all at once; also ``read`` without --timeout."""
    ports = _Ports()
    http = socket.socket()
    http.bind(("127.0.0.1", 0))
    http.listen()
    try:
        values = {"dir": str(files), "http": str(http.getsockname()[1])}
        per_case = {
            c.id: {**values, "port": ports.make(c.port)} if c.port else values for c in CASES
        }
        hint_port = ports.make("text")
        with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 2))) as pool:
            hint = pool.submit(_read_without_timeout, hint_port)
            futures = {c.id: pool.submit(_run, c, per_case[c.id]) for c in CASES}
            results: dict[str, Any] = {k: (f.result(), per_case[k]) for k, f in futures.items()}
            results["hint"] = (hint.result(), {"port": hint_port})
        yield results
    finally:
        http.close()
        ports.close()


def test_the_matrix_is_big_enough() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.command for c in CASES}
    assert commands == {"decode", "read", "serve", "simulate", "mbus"}
    assert len(CASES) >= 70


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_error_is_one_line_naming_it_and_the_way_out(case: Case, runs: dict[str, Any]) -> None:
    proc, values = runs[case.id]
    err = proc.stderr
    lines = err.splitlines()
    assert proc.returncode == case.code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("mbuspico"), line
    for piece in case.says:
        assert _fill(piece, values) in line, line
    if case.hidden is not None:
        assert case.hidden.lower() not in (err + proc.stdout).lower()


def test_read_without_timeout_says_what_it_sees_and_listens_on(runs: dict[str, Any]) -> None:
    (when, err, code), values = runs["hint"]
    lines = err.splitlines()
    assert 9 < when < 20, err
    assert lines[0].startswith(f"mbuspico: {values['port']}: "), err
    assert "ASCII text" in lines[0]
    assert "still listening" in lines[0]
    assert code == 130, err
    assert "Traceback" not in err
    assert len(lines) == 1, err


# -- the fixed failures of the issue, each on its own ---------------------------------


def test_help_describes_every_protocol() -> None:
    for command in ("decode", "read"):
        proc = subprocess.run(
            [sys.executable, "-m", "mbuspico", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env=_env(),
        )
        text = " ".join(proc.stdout.split())
        for protocol in ("DLMS push", "wired M-Bus", "DSMR P1", "HDLC"):
            assert protocol in text, (command, protocol)


def test_read_p1_as_mbuspico_json() -> None:
    """``read <P1 port> --profile dsmr5 --format mbuspico`` (a traceback once)."""
    with P1Simulator("dsmr5", interval=0.2, seed=3) as sim:
        assert sim.port is not None
        sim.start()
        args = ["read", sim.port, "--profile", "dsmr5", "--format", "mbuspico"]
        proc = subprocess.run(
            [sys.executable, "-m", "mbuspico", *args, "--count", "2", "--timeout", "10"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=_env(),
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    readings = proc.stdout.replace("}\n{", "}\x00{").split("\x00")
    assert len(readings) == 2
    for text in readings:
        reading = json.loads(text)
        assert reading["activeEnergyPlus"] > 0
        assert text.startswith('{\n"timestamp": ')


def _scan_on_a_terminal(*options: str) -> tuple[int, bytes, list[str]]:
    """``mbus scan`` on an empty bus with a terminal as stderr: exit code, stdout, and the
    terminal's text split at carriage returns (the progress line's rewrites)."""
    bus = _Pty(_answers(lambda _: b""))
    main, terminal = pty.openpty()
    try:
        args = ["mbus", "scan", *options, "--port", bus.port, "--baudrate", "38400"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "mbuspico", *args, "--timeout", "0.01"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=_env(),
        )
        os.close(terminal)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            seen += chunk
        code = proc.wait(timeout=60)
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
    finally:
        os.close(main)
        bus.close()
    text = seen.decode().replace("\r\n", "\n")  # the terminal's line ends
    return code, out, text.split("\r")


def test_mbus_scan_shows_progress_on_a_terminal_only() -> None:
    code, out, updates = _scan_on_a_terminal()
    assert code == 1
    assert out == b"[]\n"
    # One line rewritten in place: every address, then erased, then the verdict.
    assert "mbuspico: scanning primary address 0/250" in updates
    assert "mbuspico: scanning primary address 17/250" in updates
    assert "mbuspico: scanning primary address 250/250" in updates
    assert "\n" not in "".join(updates[:-1])
    erased = updates[-2]
    assert erased.strip() == ""
    assert updates[-1].startswith("mbuspico: no slave answered on")
    assert "\r".join(updates).count("\n") == 1


def test_mbus_secondary_scan_shows_progress_on_a_terminal() -> None:
    _, out, updates = _scan_on_a_terminal("--secondary")
    assert out == b"[]\n"
    # An empty bus: the one all-wildcard selection gets no answer.
    assert updates[1].rstrip() == "mbuspico: scanning secondary address FFFFFFFFFFFFFFFF"
    assert updates[-2].strip() == ""  # erased before the verdict


def _start_line(args: list[str]) -> str:
    """Start ``serve``, return its log up to the start line, stop it with SIGTERM."""
    from test_config_errors import _start_line as start_line

    return start_line([*args, "--http-host", "127.0.0.1", "--http-port", "0"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--protocol", "dsmr"], "serving DSMR P1 meter (simulated dsmr5)"),
        (["--device", "luxembourg-smarty"], "serving DSMR P1 meter (simulated luxembourg-smarty)"),
        ([], "serving DLMS push meter (simulated kaifa-ma309m)"),
        (
            ["--device", "wienernetze-im350"],
            "serving DLMS push meter (simulated wienernetze-im350)",
        ),
    ],
)
def test_serve_demo_names_the_protocol_and_meter_served(args: list[str], says: str) -> None:
    log = _start_line(["--demo", *args])
    assert says in log, log
    assert "M-Bus meter 0" not in log
