"""Check an installed mbuspico as a user gets it from a wheel or the sdist.

Usage: <venv>/bin/python scripts/package-smoke.py <checkout>

Run by scripts/check-package with the interpreter of a fresh virtual
environment that has only mbuspico and its dependencies installed (so it runs
on the oldest supported Python, 3.9, too): decodes the Netz NÖ documentation
frame, checks the version against Cargo.toml, that the typing files ship, and
that the command line answers. Exits non-zero with the reason on any mismatch.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path


def main() -> None:
    """Run the checks; raise SystemExit with the failed one."""
    checkout = Path(sys.argv[1])
    import mbuspico

    package = Path(mbuspico.__file__).parent
    if checkout in package.parents:
        sys.exit(f"mbuspico imported from the checkout ({package}), not the installed package")
    cargo = (checkout / "Cargo.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', cargo, re.MULTILINE)
    if match is None:
        sys.exit("no version in Cargo.toml")
    if mbuspico.__version__ != match.group(1):
        sys.exit(f"__version__ {mbuspico.__version__} != Cargo.toml {match.group(1)}")
    for name in ("py.typed", "_core.pyi"):
        if not (package / name).is_file():
            sys.exit(f"{name} is missing from the installed package")

    # The Netz NÖ documentation example (tests/data/SOURCES.md) and its key.
    frame = bytes.fromhex((checkout / "tests/data/dlms/netznoe_kaifa_ma309m_doc.hex").read_text())
    reading = mbuspico.Decoder("36C66639E48A8CA4D6BC8B282A793BBB").decode(frame)
    expected = {"meterNumber": "181220000009", "activeEnergyPlus": 12937, "voltageL1": 233.7}
    got = {k: reading[k] for k in expected}  # type: ignore[literal-required]
    if got != expected:
        sys.exit(f"decoded {got}, expected {expected}")
    try:
        mbuspico.Decoder("00" * 16).decode(frame)
    except mbuspico.DecryptionError:
        pass
    else:
        sys.exit("a wrong key decoded")

    cli = Path(sys.executable).with_name("mbuspico")
    out = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    if out.stdout.strip() != f"mbuspico {mbuspico.__version__}":
        sys.exit(f"mbuspico --version printed {out.stdout!r}")
    hex_file = checkout / "tests/data/dlms/netznoe_kaifa_ma309m_doc.hex"
    out = subprocess.run(  # noqa: S603
        [str(cli), "decode", "--key", "36C66639E48A8CA4D6BC8B282A793BBB", str(hex_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    if json.loads(out.stdout.splitlines()[0])["activeEnergyPlus"] != 12937:
        sys.exit(f"mbuspico decode printed {out.stdout!r}")
    # The service's modules import on this Python (their dependencies installed).
    for module in (
        "mbuspico.serve",
        "mbuspico.serve.config",
        "mbuspico.simulate.dlms",
        "mbuspico.simulate.p1",
        "mbuspico.simulate.mbus_slave",
        "mbuspico.types",
    ):
        importlib.import_module(module)
    # The dashboard's page, style and script ship in the package (serve/static).
    from mbuspico.serve.pages import dashboard_html

    page = dashboard_html("smoke", None, None, {})
    if "/*SCRIPT*/" in page or "new EventSource" not in page or "prefers-color-scheme" not in page:
        sys.exit("the dashboard's static files (mbuspico/serve/static) are missing")
    print(
        f"ok: mbuspico {mbuspico.__version__} on Python {sys.version.split()[0]} "
        f"from {package}: decoded meter {got['meterNumber']}"
    )


if __name__ == "__main__":
    main()
