"""The CSV log sink and its download routes, with real decoded readings."""

from __future__ import annotations

import asyncio
import base64
import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from microdot import Microdot, Response

import mbuspico
from conftest import DATA, by_id
from mbuspico.serve.sinks import flat_values
from mbuspico.serve.sinks.csvlog import CsvLogSink, add_file_routes, list_files

DLMS_NAMES = [
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
]


def dlms(vector_id: str) -> dict[str, Any]:
    v = by_id(vector_id)
    return dict(mbuspico.Decoder(v["key"]).decode(bytes.fromhex(v["hex"])))


def at(reading: dict[str, Any], timestamp: str | None, **values: Any) -> dict[str, Any]:
    out = copy.deepcopy(reading)
    out["timestamp"] = timestamp
    out.update(values)
    return out


@pytest.fixture(scope="module")
def kaifa_real() -> dict[str, Any]:
    return dlms("fkw9_kaifa_ma309m_real")


@pytest.fixture(scope="module")
def kaifa_doc() -> dict[str, Any]:
    return dlms("netznoe_doc_example_kaifa_ma309m")


@pytest.fixture(scope="module")
def dsmr() -> dict[str, Any]:
    doc = json.loads((DATA / "dsmr" / "vectors.json").read_text(encoding="utf-8"))
    v = next(v for v in doc["vectors"] if v["id"] == "dsmr_parser/TELEGRAM_V5")
    return dict(mbuspico.Decoder().decode(v["text"]))


@pytest.fixture(scope="module")
def mbus() -> dict[str, Any]:
    text = (DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text()
    return dict(mbuspico.Decoder().decode(bytes.fromhex("".join(text.split()))))


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


# -- the file -------------------------------------------------------------------


def test_rows_are_the_decoded_values(tmp_path: Path, kaifa_real, kaifa_doc, dsmr) -> None:
    sink = CsvLogSink(tmp_path / "log" / "deep")  # created when needed
    sink.deliver(kaifa_real)
    path = tmp_path / "log" / "deep" / "2022-02.csv"
    assert sink.path == path
    assert header(path) == ["time", "meterNumber", *DLMS_NAMES]  # no reactive energy sent
    sink.deliver(at(kaifa_doc, "2022-02-28T23:59:59+01:00"))
    sink.deliver(kaifa_doc)  # its own month, from its own timestamp
    assert sink.path == tmp_path / "log" / "deep" / "2021-09.csv"
    sink.disconnect()
    first, second = rows(path)
    assert first["time"] == "2022-02-04T16:43:20+01:00"
    assert first["meterNumber"] == "181220002177"
    assert float(first["activePowerPlus"]) == 1055.0
    assert float(first["voltageL1"]) == 234.5
    assert float(first["activeEnergyPlus"]) == 1340436.0
    assert float(first["powerFactor"]) == 0.968
    for name, value in flat_values(kaifa_real).items():
        assert float(first[name]) == value, name
    assert second["time"] == "2022-02-28T23:59:59+01:00"
    assert second["meterNumber"] == "181220000009"
    assert float(second["voltageL1"]) == 233.7
    (third,) = rows(tmp_path / "log" / "deep" / "2021-09.csv")
    assert third["time"] == "2021-09-27T09:47:15+02:00"
    assert float(third["activeEnergyPlus"]) == 12937.0

    # DSMR: the OBIS names as columns, no meterNumber.
    sink = CsvLogSink(tmp_path / "p1")
    sink.deliver(dsmr)
    sink.disconnect()
    path = tmp_path / "p1" / "2017-01.csv"
    assert header(path) == ["time", *flat_values(dsmr)]
    (row,) = rows(path)
    assert row["time"] == "2017-01-02T19:20:02+01:00"
    assert float(row["electricity_used_tariff_1"]) == 4.426
    assert float(row["mbus_1"]) == 0.107


def test_month_rotation_uses_the_readings_local_time(tmp_path: Path, kaifa_real) -> None:
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_real, "2026-10-31T23:59:50+01:00", activePowerPlus=1))
    sink.deliver(at(kaifa_real, "2026-10-31T23:30:00+00:00", activePowerPlus=2))  # Nov in CET
    assert sink.path == tmp_path / "2026-10.csv"
    sink.deliver(at(kaifa_real, "2026-11-01T00:00:05+01:00", activePowerPlus=3))
    assert sink.path == tmp_path / "2026-11.csv"
    sink.deliver(at(kaifa_real, "2026-11-01T00:00:15+01:00", activePowerPlus=4))
    sink.disconnect()
    october, november = rows(tmp_path / "2026-10.csv"), rows(tmp_path / "2026-11.csv")
    assert [r["activePowerPlus"] for r in october] == ["1.0", "2.0"]
    assert [r["activePowerPlus"] for r in november] == ["3.0", "4.0"]
    assert [f["name"] for f in list_files(tmp_path)] == ["2026-10.csv", "2026-11.csv"]


def test_no_timestamp_uses_the_time_now_in_the_zone(tmp_path: Path, mbus, kaifa_doc) -> None:
    assert "timestamp" not in mbus
    sink = CsvLogSink(tmp_path, zone="Pacific/Kiritimati")  # UTC+14: often another month
    zone = ZoneInfo("Pacific/Kiritimati")
    before = datetime.now(zone)
    sink.deliver(mbus)
    (path,) = tmp_path.iterdir()
    month = path.name[:7]
    assert month in {f"{before:%Y-%m}", f"{datetime.now(zone):%Y-%m}"}
    sink.deliver(at(kaifa_doc, None))  # other names: the month's second part
    sink.disconnect()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{month}-2.csv", f"{month}.csv"]
    (first,) = rows(path)
    stamp = datetime.fromisoformat(first["time"])
    offset = stamp.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 14 * 3600
    assert abs((stamp - before).total_seconds()) < 5
    assert float(first["energy_0_0_0"]) == 9730000.0
    (second,) = rows(tmp_path / f"{month}-2.csv")
    assert header(tmp_path / f"{month}-2.csv") == [
        *header(path),
        "meterNumber",
        *DLMS_NAMES,
    ]
    assert second["energy_0_0_0"] == ""
    assert float(second["voltageL1"]) == 233.7
    assert datetime.fromisoformat(second["time"]).utcoffset() == offset
    with pytest.raises(KeyError):
        CsvLogSink(tmp_path, zone="Nowhere/Atlantis")


def test_new_names_start_the_next_part_of_the_month(tmp_path: Path, kaifa_doc) -> None:
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_doc, "2026-11-02T10:00:00+01:00"))
    less = at(kaifa_doc, "2026-11-02T10:00:05+01:00", voltageL2=None, voltageL3=None)
    sink.deliver(less)  # fewer names: empty cells, same file
    assert sink.path == tmp_path / "2026-11.csv"
    sink.deliver(at(kaifa_doc, "2026-11-02T10:00:10+01:00", reactiveEnergyPlus=77))
    assert sink.path == tmp_path / "2026-11-2.csv"
    sink.deliver(at(kaifa_doc, "2026-11-02T10:00:15+01:00"))  # back to fewer: stays in part 2
    sink.disconnect()
    first = rows(tmp_path / "2026-11.csv")
    assert header(tmp_path / "2026-11.csv") == ["time", "meterNumber", *DLMS_NAMES]
    assert [r["voltageL2"] for r in first] == ["0.0", ""]
    assert header(tmp_path / "2026-11-2.csv") == [
        "time",
        "meterNumber",
        *DLMS_NAMES,
        "reactiveEnergyPlus",
    ]
    second = rows(tmp_path / "2026-11-2.csv")
    assert [r["reactiveEnergyPlus"] for r in second] == ["77.0", ""]
    # A restart continues in the newest part of the month.
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_doc, "2026-11-02T10:00:20+01:00", reactiveEnergyPlus=78))
    sink.disconnect()
    assert sink.path == tmp_path / "2026-11-2.csv"
    assert len(rows(tmp_path / "2026-11-2.csv")) == 3


def test_restart_appends_without_a_second_header(tmp_path: Path, kaifa_real) -> None:
    for i in range(3):
        sink = CsvLogSink(tmp_path, fsync=True)
        sink.deliver(at(kaifa_real, f"2026-11-0{i + 1}T12:00:00+01:00", activePowerPlus=i))
        sink.disconnect()
    path = tmp_path / "2026-11.csv"
    lines = path.read_text().splitlines()
    assert sum(line.startswith("time,") for line in lines) == 1
    assert [r["activePowerPlus"] for r in rows(path)] == ["0.0", "1.0", "2.0"]


def test_a_torn_last_line_is_removed_on_reopening(tmp_path: Path, kaifa_real) -> None:
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_real, "2026-11-01T12:00:00+01:00"))
    sink.disconnect()
    path = tmp_path / "2026-11.csv"
    intact = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"2026-11-01T12:00:05+01:00,1812200021")  # the crash came here
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_real, "2026-11-01T12:00:10+01:00", activePowerPlus=7))
    sink.disconnect()
    assert path.read_bytes().startswith(intact)
    got = rows(path)
    assert [r["time"] for r in got] == ["2026-11-01T12:00:00+01:00", "2026-11-01T12:00:10+01:00"]
    assert got[1]["activePowerPlus"] == "7.0"

    # Only a torn header left: the header is written again.
    other = tmp_path / "2026-12.csv"
    other.write_bytes(b"time,meterNum")
    sink = CsvLogSink(tmp_path)
    sink.deliver(at(kaifa_real, "2026-12-01T12:00:00+01:00"))
    sink.disconnect()
    assert header(other) == ["time", "meterNumber", *DLMS_NAMES]
    assert len(rows(other)) == 1


def test_publish_through_the_delivery_thread(tmp_path: Path, kaifa_real) -> None:
    sink = CsvLogSink(tmp_path)
    sink.start()
    for i in range(20):
        sink.publish(at(kaifa_real, f"2026-11-01T12:00:{i:02d}+01:00", activePowerPlus=i))
    sink.close()
    assert sink.status() == {"published": 20, "failed": 0, "dropped": 0}
    assert [float(r["activePowerPlus"]) for r in rows(tmp_path / "2026-11.csv")] == list(range(20))


def test_a_write_error_is_counted_and_the_next_reading_goes_on(tmp_path: Path, kaifa_real) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sink = CsvLogSink(blocker)
    sink.start()
    sink.publish(kaifa_real)
    sink.close()
    assert sink.status()["failed"] == 1


WRITER = """
import sys
import mbuspico
from mbuspico.serve.sinks.csvlog import CsvLogSink

directory, key, frame = sys.argv[1:4]
reading = dict(mbuspico.Decoder(key).decode(bytes.fromhex(frame)))
reading["timestamp"] = "2026-11-01T00:00:05+01:00"
sink = CsvLogSink(directory)
i = 0
while True:
    i += 1
    reading["activeEnergyPlus"] = 1340436 + i
    sink.deliver(reading)
"""


def test_kill_9_leaves_every_completed_row(tmp_path: Path, kaifa_real) -> None:
    vector = by_id("fkw9_kaifa_ma309m_real")
    path = tmp_path / "2026-11.csv"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), vector["key"], vector["hex"]]
    )
    try:
        deadline = time.monotonic() + 15
        while not (path.exists() and path.stat().st_size > 200_000):
            assert time.monotonic() < deadline, "the writer wrote too little"
            assert writer.poll() is None, "the writer died"
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    columns = ["time", "meterNumber", *DLMS_NAMES]

    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: b"" unless the last line is torn
    assert complete[0].decode() == ",".join(columns)
    parsed = list(csv.reader(line.decode() for line in complete[1:]))
    assert len(parsed) > 1000
    assert all(len(r) == len(columns) for r in parsed)
    energies = [float(r[columns.index("activeEnergyPlus")]) for r in parsed]
    assert energies == [1340436.0 + i for i in range(1, len(parsed) + 1)]  # none lost, in order

    sink = CsvLogSink(tmp_path)  # the restart repairs, then appends
    sink.deliver(at(kaifa_real, "2026-11-01T00:00:06+01:00"))
    sink.disconnect()
    after = rows(path)
    assert len(after) == len(parsed) + 1
    assert all(list(r) == columns and None not in r.values() for r in after)
    assert path.read_bytes().startswith(data[: len(data) - len(tail)])
    assert float(after[-1]["activePowerPlus"]) == 1055.0


# -- HTTP -----------------------------------------------------------------------

USER, PASSWORD = "loxone", "s3cret"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def check(request: Any) -> Response | None:
    if request.headers.get("Authorization") is None:
        return Response("Unauthorized", 401, {"WWW-Authenticate": 'Basic realm="MBusPico"'})
    if request.headers["Authorization"] != basic(USER, PASSWORD):
        return Response("Forbidden", 403)
    return None


def serve(app: Microdot) -> Iterator[str]:
    ready = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    async def main() -> None:
        server: Any = await app.start_server(host="127.0.0.1", port=0, start_serving=False)
        port.append(server.sockets[0].getsockname()[1])
        await server.start_serving()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        stop.set()
        thread.join(10)


def get(
    url: str, auth: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - 127.0.0.1 only
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def logged(tmp_path: Path, kaifa_real, kaifa_doc) -> Path:
    directory = tmp_path / "csv"
    sink = CsvLogSink(directory)
    for i in range(700):  # a file larger than microdot's stream buffer
        sink.deliver(
            at(kaifa_real, f"2026-10-31T{i // 3600 + 12}:{i // 60 % 60:02d}:{i % 60:02d}+01:00")
        )
    sink.deliver(at(kaifa_real, "2026-11-01T00:00:05+01:00"))
    sink.deliver(at(kaifa_doc, "2026-11-01T00:00:10+01:00", reactiveEnergyPlus=1))
    sink.disconnect()
    (tmp_path / "secret.csv").write_text("secret\n")
    (directory / "notes.txt").write_text("notes\n")
    (directory / "2026-02.csv").mkdir()
    (directory / "2026-01.csv").symlink_to("/etc/passwd")
    (directory / "2026-03.csv").symlink_to(directory / "2026-10.csv")  # even inside
    return directory


@pytest.fixture
def served(logged: Path) -> Iterator[str]:
    app = Microdot()
    add_file_routes(app, logged, check)
    yield from serve(app)


def test_list_and_download(served: str, logged: Path) -> None:
    ok = basic(USER, PASSWORD)
    status, headers, body = get(served + "/api/files", ok)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    names = ["2026-10.csv", "2026-11-2.csv", "2026-11.csv"]
    assert json.loads(body) == [{"name": n, "size": (logged / n).stat().st_size} for n in names]
    # /files with Accept: application/json gives the same JSON.
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        served + "/files", headers={"Authorization": ok, "Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
        assert json.loads(r.read()) == json.loads(body)
    for name in names:
        status, headers, body = get(f"{served}/files/{name}", ok)
        assert status == 200
        assert body == (logged / name).read_bytes()
        assert headers["Content-Type"] == "text/csv; charset=utf-8"
        assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert int(headers["Content-Length"]) == len(body)
    assert len(body) > 0
    assert (logged / "2026-10.csv").stat().st_size > 64 * 1024
    status, headers, body = get(served + "/files/2026-10.csv", ok, method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == (logged / "2026-10.csv").stat().st_size


def test_files_page_for_a_person(served: str, logged: Path) -> None:
    """As the ESP32 logger's file server: the months, sizes and links, and the free space."""
    status, headers, body = get(served + "/files", basic(USER, PASSWORD))
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td><a href=\"([^\"]+)\" download>([^<]+)</a></td>"
        r"<td class=n>([^<]+)</td></tr>",
        page,
    )
    size = (logged / "2026-10.csv").stat().st_size
    assert rows == [
        ("November 2026", "/files/2026-11.csv", "2026-11.csv", rows[0][3]),
        ("November 2026, part 2", "/files/2026-11-2.csv", "2026-11-2.csv", rows[1][3]),
        ("October 2026", "/files/2026-10.csv", "2026-10.csv", f"{size / 1000:.1f} KB"),
    ]
    disk = re.search(r"Disk: ([\d.]+ [KMG]?B) free of ([\d.]+ [KMG]?B) \((\d+) %\)", page)
    assert disk is not None
    usage = shutil.disk_usage(logged)
    assert 0 <= int(disk[3]) <= 100
    assert disk[2].split()[0] in (f"{usage.total / 1e9:.2f}", f"{usage.total / 1e6:.1f}")
    assert "name=viewport" in page
    assert "http" not in page.split("<body>")[1]  # no external resource: a Pi may be offline
    for _, link, name, _ in rows:  # every link downloads its file
        assert get(served + link, basic(USER, PASSWORD))[2] == (logged / name).read_bytes()


def test_authentication(served: str) -> None:
    for path in ("/files", "/api/files", "/files/2026-11.csv", "/files/notes.txt"):
        status, headers, _ = get(served + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == 'Basic realm="MBusPico"'
        assert get(served + path, basic(USER, "wrong"))[0] == 403
    assert get(served + "/files/2026-11.csv", basic(USER, PASSWORD))[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/..%2Fsecret.csv",
        "/files/..%2fsecret.csv",
        "/files/../secret.csv",
        "/files/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/notes.txt",
        "/files/2026-01.csv",  # symlink to /etc/passwd
        "/files/2026-03.csv",  # symlink, even to a log file
        "/files/2026-02.csv",  # a directory
        "/files/2026-04.csv",  # absent
        "/files/2026-10.csv%00",
        "/files/2026-10.csv%0a",
        "/files/2026-1%30.csv",
        "/files/",
    ],
)
def test_only_log_files_are_served(served: str, path: str) -> None:
    status, _, body = get(served + path, basic(USER, PASSWORD))
    assert status == 404, path
    assert b"root:" not in body
    assert b"secret" not in body


def test_no_auth_and_no_directory(tmp_path: Path) -> None:
    app = Microdot()
    add_file_routes(app, tmp_path / "missing", None)
    for url in serve(app):
        assert get(url + "/api/files") == (200, get(url + "/api/files")[1], b"[]")
        assert b"No file yet." in get(url + "/files")[2]
        assert get(url + "/files/2026-11.csv")[0] == 404
    assert not os.path.exists(tmp_path / "missing")
