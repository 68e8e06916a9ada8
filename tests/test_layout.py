"""The package's layout as a user meets it: what ``import mbuspico`` loads, and what it reaches.

Each check runs in a fresh interpreter, so nothing another test imported counts.
The layers themselves (the library never imports ``serve``, ``simulate`` or
``cli``; no import cycle) are checked by ``lint-imports`` in ``scripts/lint``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
CF_ECHO = DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_loads_neither_the_service_nor_the_simulated_meters() -> None:
    loaded = json.loads(run("import sys, json, mbuspico\nprint(json.dumps(sorted(sys.modules)))"))
    ours = [m for m in loaded if m.startswith("mbuspico")]
    assert ours == ["mbuspico", "mbuspico._core", "mbuspico.errors"]
    for heavy in ("microdot", "paho", "zeroconf", "asyncio", "logging"):
        assert heavy not in loaded, heavy


def test_submodules_are_reachable_after_a_plain_import() -> None:
    """As the README types them: ``mbuspico.mbus.to_xml(frame)`` right after ``import mbuspico``."""
    code = f"""
import json, mbuspico
frame = bytes.fromhex(open({str(CF_ECHO)!r}).read())
xml = mbuspico.mbus.to_xml(frame)
names = mbuspico.dsmr.load_names({{"1-0:1.8.1": "total/low"}})
print(json.dumps({{
    "xml_id": "<Id>55555555</Id>" in xml,
    "xml_records": xml.count("<DataRecord"),
    "names": dict(names),
    "profile": mbuspico.profiles.find("kaifa-ma309m-netznoe").name,
    "service": mbuspico.serve.Service.__module__,
    "load_config": mbuspico.serve.load_config.__module__,
    "simulator": mbuspico.simulate.Simulator.__module__,
    "p1": mbuspico.simulate.P1Simulator.__module__,
    "slave": mbuspico.simulate.MBusSlave.__module__,
    "demo_key": mbuspico.simulate.DEMO_KEY,
    "dir": [n for n in ("aio", "dsmr", "mbus", "profiles", "serve", "simulate")
            if n in dir(mbuspico)],
}}))
"""
    got = json.loads(run(code))
    assert got["xml_id"] is True
    assert got["xml_records"] == 13  # the CF Echo II's records, as libmbus lists them
    assert got["names"] == {"1-0:1.8.1": "total/low"}
    assert got["profile"] == "kaifa-ma309m-netznoe"
    assert got["service"] == "mbuspico.serve.app"
    assert got["load_config"] == "mbuspico.serve.config"
    assert got["simulator"] == "mbuspico.simulate.dlms"
    assert got["p1"] == "mbuspico.simulate.p1"
    assert got["slave"] == "mbuspico.simulate.mbus_slave"
    assert got["demo_key"] == "36C66639E48A8CA4D6BC8B282A793BBB"  # Netz NÖ's published key
    assert got["dir"] == ["aio", "dsmr", "mbus", "profiles", "serve", "simulate"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    out = run(
        "import mbuspico, mbuspico.simulate\n"
        "for mod, name in ((mbuspico, 'service'), (mbuspico.simulate, 'Simulater')):\n"
        "    try:\n"
        "        getattr(mod, name)\n"
        "    except AttributeError as e:\n"
        "        print(e)\n"
    )
    assert out.splitlines() == [
        "module 'mbuspico' has no attribute 'service'",
        "module 'mbuspico.simulate' has no attribute 'Simulater'",
    ]


def test_the_service_imports_without_its_optional_network_parts() -> None:
    """``mbuspico.serve`` imports microdot, paho and zeroconf only when a part is on."""
    loaded = json.loads(
        run("import sys, json\nimport mbuspico.serve\nprint(json.dumps(sorted(sys.modules)))")
    )
    for lazy in ("microdot", "paho", "zeroconf", "mbuspico.simulate.dlms", "mbuspico.cli"):
        assert lazy not in loaded, lazy


ROOT = Path(__file__).parent.parent
CYCLES = ROOT / "scripts" / "rust-module-cycles.py"


def test_the_rust_crate_has_no_module_cycle() -> None:
    out = subprocess.run(
        [sys.executable, str(CYCLES), str(ROOT / "src")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no module cycle")


def test_the_cycle_check_finds_a_cycle_through_a_third_module(tmp_path: Path) -> None:
    """``a`` uses ``b::c``, ``c`` uses ``d``, ``d`` uses ``a``: siblings a, b, d cycle."""
    (tmp_path / "b").mkdir()
    files = {
        "lib.rs": "pub mod a;\npub mod b;\npub mod d;\n",
        "a.rs": "use crate::b::c::Thing;\n",
        "b/mod.rs": "pub mod c;\n",
        "b/c.rs": "pub struct Thing(super::super::d::Other);\n",
        "d.rs": "pub struct Other;\n// crate::a is only named in this comment\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    ok = subprocess.run(
        [sys.executable, str(CYCLES), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr  # a comment is not a use
    (tmp_path / "d.rs").write_text("pub struct Other;\nfn f() { let _ = crate::a::g(); }\n")
    bad = subprocess.run(
        [sys.executable, str(CYCLES), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[0] == "a -> b -> d -> a"
