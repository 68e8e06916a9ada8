"""``mbuspico simulate --link PATH``: never replaces a file, never leaves its link behind.

The link replaces only a symlink into /dev/pts (an earlier simulator's, even a
dangling one); anything else at PATH is kept and the command exits with status
2 and one line. The link is removed on a normal exit, on SIGTERM and on SIGINT.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mbuspico.simulate.p1 import P1Simulator
from mbuspico.simulate.pty import LinkExistsError

DATA = Path(__file__).parent / "data"
FRAMES = DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mbuspico", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start(*args: str) -> subprocess.Popen[str]:
    """Start a simulator; returns once it has said where it is."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbuspico", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("simulated"), (line, proc.stderr.read() if proc.stderr else "")
    return proc


def is_pty_link(path: Path) -> bool:
    return path.is_symlink() and stat.S_ISCHR(path.stat().st_mode)


def test_a_file_at_the_link_is_kept(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("data\n")
    proc = simulate("--meter", "dsmr5", "--link", str(precious), "--count", "1")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mbuspico: --link {precious}: refusing to replace a file")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert precious.read_text() == "data\n"
    assert not precious.is_symlink()


@pytest.mark.parametrize("what", ["directory", "symlink to a file", "dangling symlink"])
def test_anything_else_at_the_link_is_kept(tmp_path: Path, what: str) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("data\n")
    link = tmp_path / "port"
    if what == "directory":
        link.mkdir()
    elif what == "symlink to a file":
        link.symlink_to(target)
    else:
        link.symlink_to(tmp_path / "nowhere")
    before = os.readlink(link) if link.is_symlink() else None
    proc = simulate("--meter", "dsmr5", "--link", str(link), "--count", "1")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "refusing to replace" in proc.stderr
    if before is None:
        assert link.is_dir()
    else:
        assert os.readlink(link) == before
    assert target.read_text() == "data\n"


def test_the_mbus_slave_refuses_too(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("data\n")
    proc = simulate("--meter", "mbus-slave", "--frames", str(FRAMES), "--link", str(precious))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert precious.read_text() == "data\n"


def test_a_stale_pty_link_is_replaced_and_removed_on_exit(tmp_path: Path) -> None:
    link = tmp_path / "meter"
    link.symlink_to("/dev/pts/99999")  # an earlier simulator's, its pty long gone
    proc = start("--meter", "dsmr5", "--link", str(link), "--interval", "0.05")
    try:
        assert is_pty_link(link)
        assert os.readlink(link) != "/dev/pts/99999"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert not os.path.lexists(link)
    # Replaced once more after a normal exit (--count).
    link.symlink_to("/dev/pts/99999")
    done = simulate("--meter", "dsmr5", "--link", str(link), "--count", "2", "--interval", "0.01")
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(link)


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 0)]
)
@pytest.mark.parametrize("meter", ["dsmr5", "mbus-slave"])
def test_the_link_is_gone_after_a_signal(
    tmp_path: Path, sig: signal.Signals, status: int, meter: str
) -> None:
    link = tmp_path / "meter"
    extra = ["--frames", str(FRAMES)] if meter == "mbus-slave" else ["--interval", "0.05"]
    proc = start("--meter", meter, "--link", str(link), *extra)
    try:
        assert is_pty_link(link)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert not os.path.lexists(link)


def test_the_library_refuses_and_removes_only_its_own_link(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("data\n")
    sim = P1Simulator("dsmr5", link=precious)
    with pytest.raises(LinkExistsError, match="refusing to replace a file"):
        sim.open()
    assert sim.port is None
    assert precious.read_text() == "data\n"
    # A link someone else has pointed elsewhere meanwhile is not removed on close.
    link = tmp_path / "meter"
    with P1Simulator("dsmr5", link=link) as sim:
        assert sim.port is not None
        assert os.readlink(link) == sim.port
        link.unlink()
        link.symlink_to("/dev/pts/99999")
    assert os.readlink(link) == "/dev/pts/99999"
