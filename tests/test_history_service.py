"""``mbuspico serve`` records its history: /api/history, a restart, a kill -9."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mbuspico import history
from mbuspico.serve import Service
from mbuspico.serve.config import Config


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def demo(path: Path, **settings: Any) -> Service:
    config = Config(
        demo=True,
        http_host="127.0.0.1",
        http_port=0,
        mdns_enabled=False,
        history_path=str(path),
        **settings,
    )
    service = Service(config)
    service.start()
    return service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = demo(tmp_path / "history.sqlite3")
    try:
        yield s
    finally:
        s.stop()


def api(service: Service, query: str = "", **headers: str) -> tuple[int, dict[str, str], bytes]:
    return get(f"http://127.0.0.1:{service.http_port}/api/history{query}", headers)


def test_api_history(service: Service) -> None:
    base = f"http://127.0.0.1:{service.http_port}"
    reading = json.loads(wait_for(lambda: (r := get(f"{base}/api/reading"))[0] == 200 and r)[2])
    status, headers, body = api(service)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    listed = json.loads(body)
    assert [f["field"] for f in listed] == [
        "activePowerPlus",
        "activePowerMinus",
        "activeEnergyPlus",
        "activeEnergyMinus",
    ]
    assert listed[2] == {
        "field": "activeEnergyPlus",
        "kind": "total",
        "unit": "Wh",
        "medium": "electricity",
        "first": None,  # in memory until its minute is written
    }
    # Every reading, the minute in progress (still in memory) included.
    doc = json.loads(api(service, "?field=activePowerPlus&step=raw&from=-5m")[2])
    assert doc["field"] == "activePowerPlus"
    assert (doc["kind"], doc["unit"], doc["step"], doc["tz"]) == (
        "measurement",
        "W",
        "raw",
        "Europe/Amsterdam",
    )
    assert len(doc["t"]) == len(doc["value"]) >= 1
    assert reading["activePowerPlus"] in doc["value"]
    # Per minute: energy as a register difference, and the register.
    doc = json.loads(api(service, "?field=activeEnergyPlus&step=1m&from=-10m")[2])
    assert set(doc) == {
        "field", "kind", "unit", "medium", "step", "tz", "from", "to", "t", "value", "delta", "last"
    }  # fmt: skip
    assert doc["value"] == doc["delta"]
    assert [v for v in doc["last"] if v is not None][-1] >= reading["activeEnergyPlus"]
    power = json.loads(api(service, "?field=activePowerPlus&step=1m&from=-10m")[2])
    assert {"min", "mean", "max"} <= set(power)
    last = [i for i, v in enumerate(power["mean"]) if v is not None][-1]
    assert power["min"][last] <= power["mean"][last] <= power["max"][last]
    # CSV: several fields, a download.
    status, headers, body = api(
        service, "?field=activePowerPlus,activeEnergyPlus&step=1m&from=-10m&format=csv"
    )
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == (
        'attachment; filename="activePowerPlus-activeEnergyPlus.csv"'
    )
    lines = body.decode().splitlines()
    assert lines[0] == (
        "time,activePowerPlus_min,activePowerPlus_mean,activePowerPlus_max,"
        "activeEnergyPlus_delta,activeEnergyPlus_last"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00[+-]\d\d:\d\d(,[-\d.]*){5}", lines[-1])
    status, headers, body = api(service, "?field=activeEnergyPlus", Accept="text/csv")
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert body.startswith(b"time,activeEnergyPlus_delta,activeEnergyPlus_last\n")
    info = service.status()["history"]
    assert info["path"] == str(service.history.path)  # type: ignore[union-attr]
    assert info["recorded"] >= 1
    assert info["writeFailures"] == info["droppedWhileFailing"] == info["notRecorded"] == 0


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?field=gas", "no field 'gas' in the history"),
        ("?field=activeEnergyPlus&step=1M", "unknown step '1M'"),
        ("?field=activeEnergyPlus&step=raw", "a total is kept per minute"),
        ("?field=activeEnergyPlus&from=soon", "from 'soon' is no time"),
        ("?field=activeEnergyPlus&tz=Mars/Olympus", "unknown time zone"),
        ("?field=activePowerPlus,activeEnergyPlus", "JSON answers one field"),
        ("?field=activeEnergyPlus&format=xml", "unknown format 'xml'"),
        ("?field=activeEnergyPlus&step=1m&from=-100d", "too many points (144,"),
        ("?field=activeEnergyPlus&step=1m&from=-100d", "at most 100,000)"),
        ("?format=csv&field=" + ",".join(f"f{i}" for i in range(17)), "too many fields (17;"),
        ("?field=activeEnergyPlus&from=999999999999", "from '999999999999' is out of range"),
    ],
)
def test_bad_requests_say_what_is_wrong(service: Service, query: str, error: str) -> None:
    wait_for(lambda: json.loads(api(service)[2]))  # a field recorded
    status, headers, body = api(service, query)
    assert (status, headers["Content-Type"]) == (400, "application/json")
    assert error in json.loads(body)["error"]


def test_history_off_is_404(tmp_path: Path) -> None:
    s = demo(tmp_path / "h.sqlite3", history_enabled=False)
    try:
        status, _, body = api(s, "?field=activeEnergyPlus")
        assert status == 404
        assert json.loads(body) == {
            "error": "history is off: set history.enabled = true (MBUSPICO_HISTORY_ENABLED)"
        }
        assert s.status()["history"] is None
    finally:
        s.stop()
    assert not (tmp_path / "h.sqlite3").exists()


def test_history_needs_the_password(tmp_path: Path) -> None:
    s = demo(tmp_path / "h.sqlite3", http_user="admin", http_password="secret")  # noqa: S106
    try:
        assert api(s)[0] == 401
        token = base64.b64encode(b"admin:secret").decode()
        assert api(s, Authorization=f"Basic {token}")[0] == 200
    finally:
        s.stop()


def test_restart_keeps_the_plots(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    first = demo(path)
    try:
        wait_for(lambda: first.status()["history"]["recorded"] >= 3)
    finally:
        first.stop()  # writes the minute in progress
    before = history.query(path, "activePowerPlus", "-5m", None, "raw")
    assert len(before.time) >= 3
    second = demo(path)
    try:
        wait_for(lambda: second.status()["history"]["recorded"] >= 2)
        doc = json.loads(api(second, "?field=activePowerPlus&step=raw&from=-5m")[2])
    finally:
        second.stop()
    old = dict(zip(before.time, before.columns["activePowerPlus"]["value"]))
    shown = dict(zip(doc["t"], doc["value"]))
    assert {t: shown.get(t) for t in old} == old  # the first run's readings, as recorded
    assert len(shown) >= len(old) + 2  # and the second's


def test_a_second_service_on_the_file_is_refused(tmp_path: Path) -> None:
    from mbuspico.serve.config import ConfigError

    path = tmp_path / "h.sqlite3"
    s = demo(path)
    try:
        with pytest.raises(RuntimeError) as e:
            demo(path)
        assert isinstance(e.value.__cause__, ConfigError)
        assert str(e.value.__cause__) == (
            f"invalid history.path: another process records into {path} (a second mbuspico serve?)"
        )
    finally:
        s.stop()


def test_kill_9_loses_at_most_the_minute_in_progress(tmp_path: Path) -> None:
    """A real ``mbuspico serve --demo`` (a reading a second), killed with SIGKILL."""
    path = tmp_path / "history.sqlite3"
    exe = str(Path(sys.executable).with_name("mbuspico"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
    proc = subprocess.Popen(
        [exe, "serve", "--demo", "--http-port", "0", "--history-path", str(path)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        port = None
        for _ in range(20):
            if m := re.search(r"HTTP on 127\.0\.0\.1:(\d+)", proc.stderr.readline()):
                port = int(m.group(1))
                break
        assert port, "no start line"
        url = f"http://127.0.0.1:{port}/api/status"
        # Started late in a minute: that minute holds few readings, so wait for the next.
        wanted = 2 if time.time() % 60 > 40 else 1

        def written() -> bool:
            status, _, body = get(url)
            return status == 200 and json.loads(body)["history"]["minutesWritten"] >= wanted

        wait_for(written, timeout=150)  # a minute boundary has passed
        while time.time() % 60 < 3:  # the minute before this one is written by now
            time.sleep(0.2)
        killed = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    in_progress = int(killed) - int(killed) % 60
    with sqlite3.connect(path) as db:
        minutes = dict(db.execute("SELECT t, n FROM minute ORDER BY t"))
    # Every minute before the one in progress is there, with every reading: the
    # meter's one a second up to the minute's end.
    assert max(minutes) == in_progress - 60
    assert list(minutes) == list(range(min(minutes), in_progress, 60))
    raw = history.query(path, "activePowerPlus", min(minutes), in_progress, "raw")
    assert len(raw.time) == sum(minutes.values())
    assert max(raw.time) >= in_progress - 2
    assert len(raw.time) >= 15
    gaps = [b - a for a, b in zip(raw.time, raw.time[1:])]
    assert max(gaps) < 3, gaps  # a reading a second, however busy the machine


# -- the command line ------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str, str]:
    import io

    from mbuspico.cli import main

    out, log = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, log=log)
    return status, out.getvalue(), log.getvalue()


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """Three hours of a reading a minute, 29 March 2026 in Vienna (summer time begins)."""
    path = tmp_path / "history.sqlite3"
    t0 = 1774738800  # 00:00 local
    with history.Recorder(path, tz="Europe/Vienna", raw_days=3650) as rec:  # kept: in the past
        for m in range(3 * 60):
            rec.add(
                {"protocol": "dlms", "activePowerPlus": 600 + m, "activeEnergyPlus": 10 * m},
                t0 + 60 * m,
            )
    return path


def test_cli_history_export_csv(recorded: Path, tmp_path: Path) -> None:
    status, out, log = _cli(
        "history", "export", "--path", str(recorded), "--from", "2026-03-29",
        "--to", "2026-03-29T04:00", "--field", "activeEnergyPlus", "--field", "activePowerPlus",
    )  # fmt: skip
    assert (status, log) == (0, "")
    assert out.splitlines() == [
        "time,activeEnergyPlus_delta,activeEnergyPlus_last,"
        "activePowerPlus_min,activePowerPlus_mean,activePowerPlus_max",
        "2026-03-29T00:00:00+01:00,590,590,600,629.5,659",
        "2026-03-29T01:00:00+01:00,600,1190,660,689.5,719",
        "2026-03-29T03:00:00+02:00,600,1790,720,749.5,779",
    ]
    target = tmp_path / "out.json"
    status, out, log = _cli(
        "history", "export", "--path", str(recorded), "--from", "2026-03-29",
        "--to", "2026-03-30", "--step", "1d", "--field", "activeEnergyPlus",
        "--format", "json", "-o", str(target),
    )  # fmt: skip
    assert (status, out, log) == (0, "", "")
    doc = json.loads(target.read_text())
    assert (doc["step"], doc["tz"], doc["value"], doc["last"]) == (
        "1d",
        "Europe/Vienna",
        [1790],
        [1790],
    )


def test_cli_history_info(recorded: Path) -> None:
    status, out, _ = _cli("history", "info", "--path", str(recorded))
    doc = json.loads(out)
    assert status == 0
    assert (doc["schema"], doc["tz"], doc["minutes"], doc["readings"]) == (
        1,
        "Europe/Vienna",
        180,
        180,
    )
    assert [f["field"] for f in doc["fields"]] == ["activePowerPlus", "activeEnergyPlus"]


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--field", "gas"], 2, "mbuspico: no field 'gas' in the history (recorded: "),
        (["--from", "soon"], 2, "mbuspico: from 'soon' is no time: give Unix seconds, "),
        (["--format", "json"], 2, "mbuspico: JSON answers one field (a plot's series): "),
    ],
)
def test_cli_history_errors(recorded: Path, argv: list[str], status: int, message: str) -> None:
    got, out, log = _cli("history", "export", "--path", str(recorded), *argv)
    assert (got, out) == (status, "")
    assert log.startswith(message)
    assert log.count("\n") == 1


def test_cli_history_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBUSPICO_HISTORY_PATH", str(tmp_path / "none.sqlite3"))
    assert _cli("history", "export") == (
        1,
        "",
        f"mbuspico: no history at {tmp_path / 'none.sqlite3'}: mbuspico serve records one "
        "while it reads a meter (history.path); give the file with --path\n",
    )
    monkeypatch.delenv("MBUSPICO_HISTORY_PATH")
    default = history.default_path(demo=True)
    assert _cli("history", "info", "--demo")[2].startswith(f"mbuspico: no history at {default}:")


def test_cli_serve_with_a_bad_history_path(tmp_path: Path) -> None:
    # A process of its own: serve sets up logging for the whole process.
    exe = str(Path(sys.executable).with_name("mbuspico"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}

    def serve(path: str) -> subprocess.CompletedProcess[str]:
        argv = [exe, "serve", "--demo", "--http-port", "0", "--history-path", path]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)

    done = serve(str(tmp_path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"mbuspico: invalid --history-path: {tmp_path} is a directory: give a file, such as "
        f"{tmp_path / 'history.sqlite3'}\n"
    )
    done = serve("rel.sqlite3")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "mbuspico: invalid --history-path ('rel.sqlite3'): must be an absolute path (the "
        "service does not run in your working directory)\n"
    )
