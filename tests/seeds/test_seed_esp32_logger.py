"""The ESP32 smart-meter logger (Netz NÖ, Kaifa MA309M and Sagemcom T210-D): its document replayed.

Seed: ``shared/seeds/004_40b26f9384888c1b.txt`` (FKW9/esp-smartmeter-netznoe README, German).
What it shows and where it is checked here, on the real frames of
``tests/data/dlms/vectors.json`` (values compared with the vector's own
decoding, made independently of mbuspico):

* "Unterstützte Smartmeter: Kaifa MA309M, Sagecom T210-D", "Netz
  Niederösterreich", "Liest alle verfügbaren OBIS Daten ... aus":
  :func:`test_reads_every_obis_value_of_both_meters`;
* "Zunächst muss der Entschlüsselungscode angefordert werden", "``KEY[]``: Hier
  **muss** der Entschlüsselungs-Code eingetragen werden":
  :func:`test_the_decryption_key_is_needed`;
* "Speichert alle Daten ... im CSV Format ab", "Für jeden Monat wird eine Datei
  erstellt": :func:`test_csv_one_file_a_month_with_every_value`;
* the flowchart (Smartmeter -- M-Bus --> ESP32 --> Decrypting -- save --> SD-Karte
  -- serve --> Webserver; Decrypting -- push --> Graphite), "Daten können über
  einen Webserver heruntergeladen werden", "Als Übersicht wird oben der
  SD-Karten Status (Freier Speicher, usw.) angezeigt", the file server's login
  ``admin`` / ``smartmeter``:
  :func:`test_meter_to_csv_file_server_and_graphite` (the Netz NÖ documentation
  frame of 2021-09-27 on a serial port → ``2021-09.csv`` → ``/files`` lists
  September 2021 with its size, the link downloads the file; Graphite gets the
  frame's values);
* "Daten können an eine Graphite-Datenbank gesendet werden":
  :func:`test_graphite_lines_of_the_sagemcom_frame`;
* ``SD_CARD_LOGGING`` and ``USE_GRAPHITE`` "(de)aktivieren" (storing and the
  file server, sending to Graphite): :func:`test_logging_file_server_and_graphite_switch_off`;
* "Test Setup": ``TEST_SETUP`` checks the functions without a smart meter, with
  the author's key: :func:`test_test_setup_data_with_the_authors_key` (the
  test data of ``TEST_SETUP``, sent twice) and
  :func:`test_demo_meter_without_a_smart_meter` (``serve --demo``).

Not replayed: the TFT display, the humidity and temperature sensor, WiFi
Manager, the PCB; "Ein Monat hat ca. 60MB" (a size of the seed's own row
format and push rate, not a behaviour); the power factor being "teils
unglaubwürdig" (a known problem of the meters, shown as sent).
"""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import urllib.error
import urllib.request
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import mbuspico
from conftest import by_id, serve
from mbuspico.profiles import find
from mbuspico.serve.sinks.csvlog import CsvLogSink
from mbuspico.serve.sinks.metrics import GraphiteSink
from mbuspico.simulate.dlms import Simulator
from test_metrics import Carbon
from test_mqtt import wait_for

# The file server's login as the seed's fileserver.h has it by default.
SEED_USER, SEED_PASSWORD = "admin", "smartmeter"

DOC_FRAME = "netznoe_doc_example_kaifa_ma309m"  # Kaifa MA309M, Netz NÖ document, 2021-09-27
TEST_SETUP_FRAME = "fkw9_kaifa_ma309m_real"  # the seed's TEST_SETUP data, with the author's key
SAGEMCOM_FRAME = "fkw9_sagemcom_t210d_L01"  # Sagemcom T210-D, 2023-04-14
FRAMES = [
    (DOC_FRAME, "kaifa-ma309m-netznoe", "Kaifa MA309M"),
    (TEST_SETUP_FRAME, "kaifa-ma309m-netznoe", "Kaifa MA309M"),
    (SAGEMCOM_FRAME, "sagemcom-t210d-netznoe", "Sagemcom T210-D"),
]

# What each OBIS code of the Netz NÖ push is (its customer-interface document).
FIELDS = {
    "1-0:1.8.0": "activeEnergyPlus",
    "1-0:2.8.0": "activeEnergyMinus",
    "1-0:1.7.0": "activePowerPlus",
    "1-0:2.7.0": "activePowerMinus",
    "1-0:32.7.0": "voltageL1",
    "1-0:52.7.0": "voltageL2",
    "1-0:72.7.0": "voltageL3",
    "1-0:31.7.0": "currentL1",
    "1-0:51.7.0": "currentL2",
    "1-0:71.7.0": "currentL3",
    "1-0:13.7.0": "powerFactor",
}


def frame_of(vector_id: str) -> bytes:
    return bytes.fromhex(by_id(vector_id)["hex"])


def decode(vector_id: str) -> dict[str, Any]:
    vector = by_id(vector_id)
    return dict(mbuspico.Decoder(vector["key"]).decode(frame_of(vector_id)))


def sent(vector_id: str) -> dict[str, Any]:
    """What the frame carries, from the vector's own decoding: OBIS code → (value, unit),
    with ``timestamp`` (the meter clock) and ``meterNumber``."""
    values = by_id(vector_id)["decoded"]["values"]
    out: dict[str, Any] = {
        "timestamp": values[0]["raw"]["datetime"],
        "meterNumber": values[-1]["raw"],
    }
    for item in values[1:-1]:
        a, b, c, d, e, _ = item["obis"].split(".")
        unit = None if item["unit"] == "(none)" else item["unit"]
        out[f"{a}-{b}:{c}.{d}.{e}"] = (item["scaled"], unit)
    return out


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(url: str, auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_row_is(row: dict[str, str], vector_id: str) -> None:
    """A CSV row holds every value the frame carries, and nothing else."""
    want = sent(vector_id)
    assert row["time"] == want["timestamp"]
    assert row["meterNumber"] == want["meterNumber"]
    for code, field in FIELDS.items():
        assert float(row[field]) == pytest.approx(want[code][0], abs=1e-9), field
    filled = [name for name, cell in row.items() if cell != ""]
    assert len(filled) == len(by_id(vector_id)["decoded"]["values"])  # all data, one cell each


def epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def carbon_lines(text: str) -> dict[str, tuple[float, int]]:
    """Carbon plaintext lines ``<path> <value> <timestamp>`` by path."""
    out: dict[str, tuple[float, int]] = {}
    for line in text.splitlines():
        path, value, stamp = line.split(" ")
        out[path] = (float(value), int(stamp))
    return out


class Table(HTMLParser):
    """The rows of a page's tables: the cells' text and the links in each row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[list[str], list[str]]] = []
        self._cell: list[str] | None = None
        self._in_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append(([], []))
            self._in_row = True
        elif tag in ("td", "th") and self._in_row:
            self._cell = []
        elif tag == "a" and self._in_row:
            self.rows[-1][1].append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][0].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("tr", "table"):  # an unclosed <tr> ends with its table
            self._in_row = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def size_of(text: str) -> tuple[float, float]:
    """``"812 B"``, ``"58.1 MB"`` → (bytes, the rounding step of the text)."""
    number, unit = text.split()
    decimals = len(number.partition(".")[2])
    return float(number) * UNITS[unit], UNITS[unit] / 10**decimals


# -- decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(("vector_id", "profile", "meter"), FRAMES, ids=[f[0] for f in FRAMES])
def test_reads_every_obis_value_of_both_meters(vector_id, profile, meter):
    vector = by_id(vector_id)
    decoder = mbuspico.Decoder(vector["key"], profile=profile)
    reading = decoder.decode(frame_of(vector_id))
    want = sent(vector_id)
    assert reading["timestamp"] == want["timestamp"]
    assert reading["meterNumber"] == want["meterNumber"]
    for code, field in FIELDS.items():
        value, unit = want[code]
        assert reading["obis"][code]["value"] == pytest.approx(value, abs=1e-9), code
        assert reading["obis"][code]["unit"] == unit, code
        assert reading[field] == pytest.approx(value, abs=1e-9), field
    assert reading["obis"]["0-0:96.1.0"]["value"] == want["meterNumber"]
    # The profile: this meter as Netz Niederösterreich runs it.
    assert profile in decoder.identify(frame_of(vector_id))["profiles"]
    assert find(profile).meter == meter
    assert "Netz NÖ" in find(profile).operators


def test_the_decryption_key_is_needed():
    frame = frame_of(TEST_SETUP_FRAME)
    with pytest.raises(mbuspico.DecryptionError, match="key"):
        mbuspico.Decoder().decode(frame)
    other = by_id(SAGEMCOM_FRAME)["key"]  # a real key, of another meter
    with pytest.raises(mbuspico.DecodeError):
        mbuspico.Decoder(other).decode(frame)
    assert decode(TEST_SETUP_FRAME)["activePowerPlus"] == sent(TEST_SETUP_FRAME)["1-0:1.7.0"][0]


# -- CSV ---------------------------------------------------------------------------------


def test_csv_one_file_a_month_with_every_value(tmp_path):
    sink = CsvLogSink(tmp_path / "sd")
    for vector_id in (DOC_FRAME, TEST_SETUP_FRAME, SAGEMCOM_FRAME):
        sink.deliver(decode(vector_id))
    sink.deliver(decode(TEST_SETUP_FRAME))  # the same month again: the same file
    sink.disconnect()
    files = sorted(p.name for p in (tmp_path / "sd").iterdir())
    assert files == ["2021-09.csv", "2022-02.csv", "2023-04.csv"]
    for name, vector_id, count in (
        ("2021-09.csv", DOC_FRAME, 1),
        ("2022-02.csv", TEST_SETUP_FRAME, 2),
        ("2023-04.csv", SAGEMCOM_FRAME, 1),
    ):
        rows = csv_rows(tmp_path / "sd" / name)
        assert len(rows) == count, name
        for row in rows:
            assert_row_is(row, vector_id)
        # The month of the file is the month of the meter clock.
        assert name[:7] == sent(vector_id)["timestamp"][:7]


# -- the whole logger --------------------------------------------------------------------


def test_meter_to_csv_file_server_and_graphite(tmp_path):
    vector = by_id(DOC_FRAME)
    capture = tmp_path / "meter.hex"
    capture.write_text(vector["hex"])
    sd = tmp_path / "sd"
    carbon = Carbon()
    try:
        with Simulator("kaifa-ma309m", key=vector["key"], interval=0.1, replay=capture) as sim:
            service = serve(
                key=vector["key"],
                serial_port=sim.port,
                device="kaifa-ma309m-netznoe",
                csv_directory=str(sd),
                graphite_host="127.0.0.1",
                graphite_port=carbon.port,
                graphite_prefix="smartmeter",
                http_user=SEED_USER,
                http_password=SEED_PASSWORD,
            )
            try:
                assert [s.name for s in service.sinks] == ["csv", "graphite"]
                sim.start(count=2)
                sim.wait(10)

                def delivered() -> bool:
                    sinks = service.status()["sinks"]
                    return sinks["csv"]["published"] == sinks["graphite"]["published"] == 2

                wait_for(delivered, 10, "both readings stored and sent")
                url = f"http://127.0.0.1:{service.http_port}"
                ok = basic(SEED_USER, SEED_PASSWORD)
                assert get(url + "/files")[0] == 401
                assert get(url + "/files", basic(SEED_USER, "wrong"))[0] == 403
                assert get(url + "/files/2021-09.csv")[0] == 401
                status, headers, page = get(url + "/files", ok)
                listed = json.loads(get(url + "/api/files", ok)[2])
                downloads = {}
                parser = Table()
                parser.feed(page.decode())
                for _, links in parser.rows:
                    for link in links:
                        downloads[link] = get(url + link, ok)
                disk = shutil.disk_usage(sd)
            finally:
                service.stop()
        stored = (sd / "2021-09.csv").read_bytes()
        wait_for(lambda: len(carbon.connections) == 1 and len(carbon.lines(0)) == 22, 5, "22")
        received = bytes(carbon.connections[0]).decode("ascii")
    finally:
        carbon.stop()

    # Saved on the "SD card": one file for September 2021, both readings, every value.
    assert sorted(p.name for p in sd.iterdir()) == ["2021-09.csv"]
    rows = csv_rows(sd / "2021-09.csv")
    assert len(rows) == 2
    for row in rows:
        assert_row_is(row, DOC_FRAME)

    # The file server: the disk's free space on top, then the month, its file and size.
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    text = page.decode()
    found = re.search(r"Disk: ([\d.]+ [KMGT]?B) free of ([\d.]+ [KMGT]?B)", text)
    assert found is not None
    assert text.index("Disk:") < text.index("<table")
    total, step = size_of(found[2])
    assert abs(total - disk.total) <= step / 2 + 1
    free, _ = size_of(found[1])
    assert abs(free - disk.free) <= 0.01 * disk.total
    files = [(cells, links) for cells, links in parser.rows if links]
    assert len(files) == 1
    cells, links = files[0]
    assert cells[0] == "September 2021"
    assert "2021-09.csv" in cells
    size, step = size_of(cells[-1])
    assert abs(size - len(stored)) <= step / 2
    assert listed == [{"name": "2021-09.csv", "size": len(stored)}]
    (link,) = links
    code, got_headers, body = downloads[link]
    assert code == 200
    assert body == stored
    assert got_headers["Content-Disposition"] == 'attachment; filename="2021-09.csv"'

    # Graphite: the two readings, each value of the frame at the meter's time.
    lines = received.splitlines()
    assert len(lines) == 22
    want = sent(DOC_FRAME)
    stamp = epoch(want["timestamp"])
    assert carbon_lines(received) == {
        f"smartmeter.{field}": (float(want[code][0]), stamp) for code, field in FIELDS.items()
    }
    assert lines[:11] == lines[11:]


def test_graphite_lines_of_the_sagemcom_frame():
    reading = decode(SAGEMCOM_FRAME)
    want = sent(SAGEMCOM_FRAME)
    stamp = epoch(want["timestamp"])
    assert stamp == epoch("2023-04-14T15:56:05+00:00")
    expected = {f"smartmeter.{f}": (float(want[code][0]), stamp) for code, f in FIELDS.items()}
    sink = GraphiteSink("graphite.lan", prefix="smartmeter")
    lines = sink.lines(reading)
    assert all(line.endswith("\n") for line in lines)
    assert carbon_lines("".join(lines)) == expected
    assert expected["smartmeter.activeEnergyPlus"] == (627660.0, stamp)
    assert expected["smartmeter.powerFactor"] == (0.819, stamp)

    carbon = Carbon()  # over TCP, as Carbon's plaintext port receives them
    try:
        sink = GraphiteSink("127.0.0.1", carbon.port, prefix="smartmeter", timeout=2.0)
        sink.start()
        sink.publish(reading)
        wait_for(lambda: carbon.connections and len(carbon.lines(0)) == len(expected), 5, "sent")
        sink.close()
        received = "".join(carbon.lines(0))
    finally:
        carbon.stop()
    assert carbon_lines(received) == expected
    assert sink.status() == {"published": 1, "failed": 0, "dropped": 0}


def test_logging_file_server_and_graphite_switch_off(tmp_path):
    vector = by_id(DOC_FRAME)
    with Simulator("kaifa-ma309m", key=vector["key"], interval=0.1, seed=4) as sim:
        service = serve(
            key=vector["key"],
            serial_port=sim.port,
            http_user=SEED_USER,
            http_password=SEED_PASSWORD,
        )
        try:
            sim.start(count=1)
            wait_for(lambda: service.status()["telegrams"]["good"] == 1, 10, "a reading")
            url = f"http://127.0.0.1:{service.http_port}"
            ok = basic(SEED_USER, SEED_PASSWORD)
            assert service.status()["sinks"] == {}  # neither CSV nor Graphite
            assert service.sinks == []
            for path in ("/files", "/api/files", "/files/2021-09.csv"):
                assert get(url + path, ok)[0] == 404, path
            assert get(url + "/api/status", ok)[0] == 200  # the rest is served
        finally:
            service.stop()
    assert not any(tmp_path.iterdir())


# -- TEST_SETUP --------------------------------------------------------------------------


def test_test_setup_data_with_the_authors_key(tmp_path):
    vector = by_id(TEST_SETUP_FRAME)  # the TEST_SETUP data and the key it needs
    capture = tmp_path / "test_data.hex"
    capture.write_text(vector["hex"])
    sd = tmp_path / "sd"
    with Simulator("kaifa-ma309m", key=vector["key"], interval=0.1, replay=capture) as sim:
        service = serve(key=vector["key"], serial_port=sim.port, csv_directory=str(sd))
        try:
            sim.start(count=2)  # sent twice, as the seed's test data does
            sim.wait(10)
            wait_for(lambda: service.status()["sinks"]["csv"]["published"] == 2, 10, "2 rows")
            status, _, body = get(f"http://127.0.0.1:{service.http_port}/")
        finally:
            service.stop()
    assert status == 200
    assert json.loads(body)["activePowerPlus"] == sent(TEST_SETUP_FRAME)["1-0:1.7.0"][0]
    rows = csv_rows(sd / "2022-02.csv")
    assert len(rows) == 2
    for row in rows:
        assert_row_is(row, TEST_SETUP_FRAME)


def test_demo_meter_without_a_smart_meter(tmp_path):
    sd = tmp_path / "sd"
    service = serve(demo=True, device="kaifa-ma309m-netznoe", csv_directory=str(sd))
    try:
        wait_for(lambda: service.status()["sinks"]["csv"]["published"] >= 2, 10, "2 rows")
        reading = json.loads(get(f"http://127.0.0.1:{service.http_port}/api/reading")[2])
    finally:
        service.stop()
    (path,) = sd.iterdir()
    rows = csv_rows(path)
    assert len(rows) >= 2
    for row in rows:
        assert path.name == f"{row['time'][:7]}.csv"  # the month of the meter clock
        assert 215 <= float(row["voltageL1"]) <= 245
    energies = [float(row["activeEnergyPlus"]) for row in rows]
    assert energies == sorted(energies)
    last = next(row for row in rows if row["time"] == reading["timestamp"])
    assert float(last["activeEnergyPlus"]) == reading["activeEnergyPlus"]
    assert last["meterNumber"] == reading["meterNumber"]
