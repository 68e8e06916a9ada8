"""otb-iot M-Bus master (ESP8266 + libmbus): its document replayed.

Seed: ``shared/seeds/002_50030a411e1df310.txt`` (piersfinlayson/otb-iot
``docs/source/mbus.rst``). What it shows and where it is checked here:

* the request it sends, ``105b015c16`` (REQ_UD2 to address 1);
* the meter's answer as otb-iot's serial-over-MQTT status messages
  (``ok:68/4d/...``, the last one ending in ``xx``);
* ``mbus_process_hex_dump <hex>`` turning its hex dump into libmbus's XML
  (``tests/data/seeds/otb_iot_cf_echo_ii.xml``): the same XML from
  ``mbuspico.mbus.to_xml`` and ``mbuspico decode --format xml``, the dump's
  checksum byte being a redaction artefact (kept as published, checked off);
* the records libmbus marks "Value during error state": shown in the reading,
  never published as measurements by the service (MQTT on a real mosquitto).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import termios
import time
import tty
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

import mbuspico
from conftest import DATA
from mbuspico._core import mbus_req_ud2
from mbuspico.serve import Config, Service
from mbuspico.serve.sinks import flat_values
from mbuspico.simulate.mbus_slave import MBusSlave, SlaveMeter
from test_mqtt import broker, brokers, subscribe

__all__ = ["broker", "brokers", "subscribe"]  # fixtures used by name below

SEEDS = DATA / "seeds"
DUMP = (SEEDS / "otb_iot_cf_echo_ii_dump.hex").read_text().strip()
XML = (SEEDS / "otb_iot_cf_echo_ii.xml").read_text()


def elements(xml: str) -> list[tuple[str, str]]:
    """Every element's tag and text, in document order."""
    root = ET.fromstring(xml.encode("latin-1"))  # noqa: S314 - the seed's and our own XML
    return [(e.tag, (e.text or "").strip()) for e in root.iter()]


def lines(xml: str) -> list[str]:
    """The XML's lines without the blank ones (the document's rendering drops them)."""
    return [line for line in xml.splitlines() if line.strip()]


def test_the_request_is_req_ud2_to_address_1(cf_echo: MBusSlave) -> None:
    """The seed's bytes are REQ_UD2 to address 1, and a slave answers them with its data.

    mbuspico's master sends SND_NKE first and then REQ_UD2 with the frame count
    bit set (``10 7B 01 7C 16``, EN 13757-2 §5.5: the first request after a
    reset); otb-iot sends it with the bit clear. A slave answers both.
    """
    request = bytes.fromhex((SEEDS / "otb_iot_req_ud2.hex").read_text())
    assert request == mbus_req_ud2(1)
    assert mbus_req_ud2(1, fcb=True) == bytes.fromhex("107b017c16")
    fd = os.open(cf_echo.port, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B2400  # the bus speed the seed sets
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        os.write(fd, request)
        answer = b""
        deadline = time.monotonic() + 5
        while len(answer) < 83 and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                answer += os.read(fd, 256)
    finally:
        os.close(fd)
    reading = mbuspico.Decoder(protocol="mbus").decode(answer)
    assert (reading["manufacturer"], reading["id"]) == ("ACW", "55555555")


def test_the_status_messages_decode() -> None:
    messages = (SEEDS / "otb_iot_status_messages.txt").read_text()
    reading = mbuspico.Decoder(protocol="mbus").decode(messages)
    assert (reading["manufacturer"], reading["id"]) == ("ACW", "14273160")
    assert reading["productName"] == "Itron CF Echo 2"
    by_quantity = {r["quantity"]: r for r in reading["records"]}
    assert by_quantity["Energy"]["value"] == 9730000  # 973 x 10 kWh, as in the XML
    assert by_quantity["Volume"]["value"] == 1638.0


def test_the_hex_dump_gives_the_documents_xml() -> None:
    ours = mbuspico.mbus.to_xml(DUMP, verify_checksum=False)
    assert lines(ours) == lines(XML)  # line by line, every field
    assert elements(ours) == elements(XML)
    # As published, the redacted dump's checksum byte is stale: refused unless told.
    with pytest.raises(mbuspico.ChecksumError, match="frame says 0x60, computed 0x70") as e:
        mbuspico.mbus.to_xml(DUMP)
    assert e.value.offset == 81


def test_the_command_line_gives_the_documents_xml() -> None:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "mbuspico", "decode", "--protocol", "mbus"),
            *("--no-verify-checksum", "--format", "xml", "--hex", DUMP),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert lines(out.stdout) == lines(XML)


def test_error_state_records_are_marked_not_measurements() -> None:
    reading = mbuspico.Decoder(protocol="mbus", verify_checksum=False).decode(DUMP)
    functions = [r["function"] for r in reading["records"]]
    theirs = [text for tag, text in elements(XML) if tag == "Function"]
    assert (
        [i for i, f in enumerate(functions) if f == "error"]
        == [i for i, f in enumerate(theirs) if f == "Value during error state"]
        == [3, 7]
    )
    values = flat_values(reading)
    assert values["energy_0_0_0"] == 9730000.0
    assert "power_0_0_0" not in values  # 999999 x 100 W during the error state
    assert not any(name.startswith("temperature_difference") for name in values)


@pytest.fixture
def cf_echo() -> Iterator[MBusSlave]:
    # The checksum-corrected frame: a real slave answers with a valid one.
    corrected = (DATA / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex").read_text()
    corrected = bytes.fromhex(corrected)
    with MBusSlave(SlaveMeter([corrected], address=1)) as bus:
        bus.start()
        yield bus


def test_the_service_never_publishes_error_state_values(broker, subscribe, cf_echo) -> None:
    sub = subscribe(broker.port, "heat/#")
    service = Service(
        Config(
            protocol="mbus",
            serial_port=cf_echo.port,
            mbus_address="1",
            mbus_interval=0.3,
            http_enabled=False,
            mdns_enabled=False,
            mqtt_enabled=True,
            mqtt_host="127.0.0.1",
            mqtt_port=broker.port,
            mqtt_prefix="heat",
            mqtt_mode="obis",
            mqtt_telegram_json=True,
        )
    )
    service.start()
    try:
        telegram = json.loads(sub.wait("heat/telegram"))
        sub.wait("heat/energy_0_0_0")
    finally:
        service.stop()
    topics = {t.removeprefix("heat/"): p for t, (p, _) in sub.latest().items()}
    assert topics["energy_0_0_0"] == "9730000"
    assert topics["flow_temperature_0_0_0"] == "22"
    assert "power_0_0_0" not in topics
    assert not any(t.startswith("temperature_difference") for t in topics)
    # The whole reading still shows them, marked.
    marked = [r for r in telegram["records"] if r["function"] == "error"]
    assert [r["quantity"] for r in marked] == ["Power", "Temperature difference"]
