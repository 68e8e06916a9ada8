"""Check an installed mbuspico where scripts/test-pi runs it: in an emulated Arm root.

Usage: <venv>/bin/python scripts/pi-check.py <checkout>

Run with the interpreter of a fresh virtual environment holding a wheel of
scripts/build-wheels (or the compiled sdist) and its dependencies: imports the
package, decodes the Netz NÖ documentation frame to its known values (and times
the decode), asks ``mbuspico serve --demo`` for ``GET /`` and checks MBusPico's
14 fields, reads ``mbuspico simulate`` on its pseudo-terminal with ``mbuspico
read``, and checks ``mbuspico --version``. Prints one ``ok:`` line per check and
a last line ``figures: {...}`` (JSON); exits non-zero with the failed check.
Standard library only, for Python 3.9 and later.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"  # the Netz NÖ documentation's example key
EXPECTED = {  # tests/test_dlms.py test_documentation_example_exactly
    "timestamp": "2021-09-27T09:47:15+02:00",
    "lxTimestamp": 401968035,
    "meterNumber": "181220000009",
    "activeEnergyPlus": 12937,
    "voltageL1": 233.7,
    "powerFactor": 1.0,
    "frameCounter": 0x23,
    "reactiveEnergyPlus": None,
}
MBUSPICO_JSON = (  # MBusPico's JSON of that frame, byte for byte
    '{\n"timestamp": "2021-09-27T09:47:15Z",\n"lxTimestamp": 401968035,\n'
    '"meterNumber": "181220000009",\n"activePowerPlus": 0.00,\n"activePowerMinus": 0.00,\n'
    '"activeEnergyPlus": 12937.00,\n"activeEnergyMinus": 0.00,\n"voltageL1": 233.70,\n'
    '"voltageL2": 0.00,\n"voltageL3": 0.00,\n"currentL1": 0.00,\n"currentL2": 0.00,\n'
    '"currentL3": 0.00,\n"powerFactor": 1000.00\n}'
)
FIELDS = (
    "timestamp",
    "lxTimestamp",
    "meterNumber",
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
    "powerFactor",
)
"""MBusPico's 14 fields, in its order."""


def fail(message: str) -> NoReturn:
    """Exit with the failed check."""
    sys.exit(f"FAILED: {message}")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def check_decode(checkout: Path, figures: dict[str, object]) -> None:
    """The documentation frame decodes to its known values; time the decode."""
    t0 = time.perf_counter()
    import mbuspico

    figures["import_s"] = round(time.perf_counter() - t0, 3)
    frame = bytes.fromhex((checkout / "tests/data/dlms/netznoe_kaifa_ma309m_doc.hex").read_text())
    decoder = mbuspico.Decoder(KEY)
    reading = decoder.decode(frame)
    got = {k: reading[k] for k in EXPECTED}  # type: ignore[literal-required]
    if got != EXPECTED:
        fail(f"decoded {got}, expected {EXPECTED}")
    text = mbuspico.to_mbuspico_json(reading)  # type: ignore[arg-type]  # a DLMS reading
    if text != MBUSPICO_JSON:
        fail(f"MBusPico JSON differs: {text!r}")
    try:
        mbuspico.Decoder("00" * 16).decode(frame)
    except mbuspico.DecryptionError:
        pass
    else:
        fail("a wrong key decoded")
    runs = 200
    t0 = time.perf_counter()
    for _ in range(runs):
        decoder.decode(frame)
    figures["decode_us"] = round((time.perf_counter() - t0) / runs * 1e6, 1)
    version = re.search(r'^version = "([^"]+)"', (checkout / "Cargo.toml").read_text(), re.M)
    if version is None or mbuspico.__version__ != version.group(1):
        fail(f"__version__ {mbuspico.__version__} is not Cargo.toml's")
    print(
        f"ok: import and decode: meter {got['meterNumber']}, {got['activeEnergyPlus']} Wh, "
        f"{got['voltageL1']} V, MBusPico JSON byte for byte; {figures['decode_us']} µs a decode"
    )


def check_version(cli: str) -> None:
    """``mbuspico --version`` names the installed version."""
    import mbuspico

    out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    if out.stdout.strip() != f"mbuspico {mbuspico.__version__}":
        fail(f"mbuspico --version printed {out.stdout!r}")
    print(f"ok: {out.stdout.strip()}")


def check_serve(cli: str, figures: dict[str, object]) -> None:
    """``serve --demo`` answers ``GET /`` with MBusPico's 14 fields of a reading."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [cli, "serve", "--demo", "--http-host", "127.0.0.1", "--http-port", str(port), "--no-mdns"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    t0 = time.monotonic()
    try:
        body: dict[str, Any] = {}
        while time.monotonic() - t0 < 180:
            if server.poll() is not None:
                fail(f"serve --demo exited {server.returncode}: {server.communicate()[0]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = json.loads(r.read())
                if body.get("meterNumber"):
                    break
            except (OSError, ValueError):  # not listening yet; no reading yet (empty body)
                pass
            time.sleep(0.5)
        if not body.get("meterNumber"):
            fail(f"GET / gave no reading in 180 s: {body!r}")
        if tuple(body) != FIELDS:
            fail(f"GET / fields {tuple(body)} are not MBusPico's 14")
        figures["serve_first_reading_s"] = round(time.monotonic() - t0, 1)
        print(
            f"ok: serve --demo: GET / has the 14 fields (meter {body['meterNumber']}, "
            f"{body['activePowerPlus']} W) after {figures['serve_first_reading_s']} s"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def check_simulate_read(cli: str) -> None:
    """``mbuspico read`` decodes what ``mbuspico simulate`` writes to its pseudo-terminal."""
    sim = subprocess.Popen(  # noqa: S603
        [cli, "simulate", "--key", KEY, "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None  # noqa: S101 - PIPE
        line = sim.stdout.readline()
        match = re.search(r" on (/\S+)", line)
        if match is None:
            fail(f"simulate printed {line!r}")
        port = match.group(1)
        out = subprocess.run(  # noqa: S603
            [cli, "read", port, "--key", KEY, "--count", "2", "--timeout", "60"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        readings = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or len(readings) != 2:
            fail(f"read {port} exited {out.returncode}: {out.stdout!r} {out.stderr!r}")
        if not all(r.get("meterNumber") and r.get("voltageL1") for r in readings):
            fail(f"read {port} gave readings without meter number or voltage: {readings}")
        print(
            f"ok: simulate on {port}, read: 2 readings, meter {readings[0]['meterNumber']}, "
            f"{readings[-1]['voltageL1']} V"
        )
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()


def main() -> None:
    """Run every check; the figures last."""
    checkout = Path(sys.argv[1])
    cli = str(Path(sys.executable).with_name("mbuspico"))
    figures: dict[str, object] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "glibc": " ".join(platform.libc_ver()),
    }
    os.chdir(tempfile.gettempdir())  # not the checkout: the installed package is imported
    check_decode(checkout, figures)
    check_version(cli)
    check_serve(cli, figures)
    check_simulate_read(cli)
    print("figures: " + json.dumps(figures))


if __name__ == "__main__":
    main()
