"""The systemd unit shipped in the package (``mbuspico systemd-unit``).

systemd-analyze checks it when this machine has it; scripts/test-pi --systemd
starts it under a real systemd (README, "The service on a Raspberry Pi").
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mbuspico.cli import main
from mbuspico.serve.config import SETTINGS

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="systemd is Linux's")


def _unit() -> str:
    out = io.StringIO()
    assert main(["systemd-unit"], out=out) == 0
    return out.getvalue()


def _values(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)


def _max_connections() -> int:
    (setting,) = [s for s in SETTINGS if s.name == "http_max_connections"]
    with pytest.raises(ValueError, match=r"from 1 to \d+") as e:
        setting.parse(0)
    high = int(str(e.value).rsplit(" ", 1)[-1])
    assert setting.parse(high) == high
    return high


def test_printed_unit_is_the_shipped_one_naming_this_mbuspico() -> None:
    unit = _unit()
    shipped = (Path(main.__code__.co_filename).parent / "serve" / "mbuspico.service").read_text()
    (exec_start,) = _values(unit, "ExecStart")
    program, *args = exec_start.split()
    assert args == ["serve", "--config", "/etc/mbuspico/mbuspico.toml"]
    beside = Path(sys.executable).with_name("mbuspico")
    assert program == (str(beside.absolute()) if beside.is_file() else "/opt/mbuspico/bin/mbuspico")
    assert unit == shipped.replace("/opt/mbuspico/bin/mbuspico serve", f"{program} serve")


def test_directories_secrets_and_the_serial_group() -> None:
    unit = _unit()
    assert _values(unit, "StateDirectory") == ["mbuspico"]
    assert _values(unit, "ConfigurationDirectory") == ["mbuspico"]
    assert _values(unit, "WorkingDirectory") == ["/var/lib/mbuspico"]
    # The settings page renames a new file over the old one: the directory is written.
    assert "/etc/mbuspico" in _values(unit, "ReadWritePaths")
    assert _values(unit, "ProtectSystem") == ["strict"]
    assert _values(unit, "EnvironmentFile") == ["-/etc/mbuspico/mbuspico.env"]
    assert _values(unit, "SupplementaryGroups") == ["dialout"]
    assert _values(unit, "User") == ["mbuspico"]
    # Nothing runs as root ("+", "!" prefixes).
    for command in _values(unit, "ExecStartPre") + _values(unit, "ExecStart"):
        assert command[0] not in "+!"


def test_limit_nofile_covers_the_largest_connection_limit() -> None:
    unit = _unit()
    high = _max_connections()
    (limit,) = _values(unit, "LimitNOFILE")
    assert int(limit) == high + 128
    assert f"largest http.max_connections the\n# settings accept ({high})" in unit


def _unit_file(tmp_path: Path) -> Path:
    unit = _unit()
    (exec_start,) = _values(unit, "ExecStart")
    program = exec_start.split()[0]
    if not Path(program).is_file():  # verify wants the program to exist
        unit = unit.replace(f"ExecStart={program} ", f"ExecStart={sys.executable} -m mbuspico ")
    path = tmp_path / "mbuspico.service"
    path.write_text(unit)
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    path = _unit_file(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    path = _unit_file(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if "--offline" in done.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    # The figure the unit's comment states (README, "The service on a Raspberry Pi").
    assert float(match.group(1)) <= 2.0
