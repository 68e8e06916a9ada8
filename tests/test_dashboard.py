"""The dashboard (``/dashboard``) and ``/status.html`` in a real browser, headless Chromium.

One service on a simulated meter for the module, one browser: the headline
power equals ``/api/reading`` once the page's scripts ran, new readings arrive
by the event stream without a reload, the live chart has points, a silent
meter shows the stale warning, a wrong key the key warning, and at 360 px no
page scrolls sideways. Screenshots go to ``$PYTEST_ARTIFACTS`` (else
``tests/artifacts/``, not committed).

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/system-deps``)
and selenium (``requirements-dev.txt``): skipped without them, failed under
``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import serve
from mbuspico.serve.events import EventHub
from mbuspico.serve.pages import reading_rows, status_html
from mbuspico.simulate.dlms import Simulator

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
OTHER_KEY = "00112233445566778899AABBCCDDEEFF"
STALE_AFTER = 2.0
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parent / "artifacts")


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return (
                f"{tool} is not installed (scripts/system-deps installs chromium, chromium-driver)"
            )
    return None


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need a browser in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1200,900")
    driver = webdriver.Chrome(
        options=options, service=DriverService(shutil.which("chromedriver") or "chromedriver")
    )
    driver.set_page_load_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def meter() -> Iterator[Simulator]:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.5, seed=21) as sim:
        sim.start()
        yield sim


@pytest.fixture(scope="module")
def service(meter: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    history = tmp_path_factory.mktemp("history") / "history.sqlite3"
    svc = serve(meter, stale_after=STALE_AFTER, history_enabled=True, history_path=str(history))
    try:
        url = f"http://127.0.0.1:{svc.http_port}"
        wait_for(lambda: svc.state.snapshot()[0] is not None, 10, "a first reading")
        svc.url = url
        yield svc
    finally:
        svc.stop()


def width(driver: Any, px: int) -> None:
    """Emulate a viewport ``px`` wide (a phone at 360)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": px, "height": 800, "deviceScaleFactor": 1, "mobile": px < 600},
    )


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def warning(driver: Any, kind: str) -> str | None:
    """The text of the dashboard's warning of ``kind``, None without one."""
    found = driver.execute_script(
        "const w = document.querySelector(`#warnings [data-kind=${arguments[0]}]`);"
        "return w ? w.textContent : null",
        kind,
    )
    return None if found is None else str(found)


def open_dashboard(driver: Any, url: str) -> None:
    driver.get(url + "/dashboard")
    wait_for(
        lambda: driver.execute_script("return document.readyState") == "complete", 5, "the page"
    )


def headline_matches(driver: Any, url: str) -> bool:
    """Whether the headline shows ``/api/reading``'s import power (no reading in between)."""
    before = get_json(url + "/api/reading")
    shown = text(driver, "power-import")
    after = get_json(url + "/api/reading")
    return before == after and shown == str(round(before["activePowerPlus"]))


def test_headline_and_values_equal_the_reading(browser: Any, service: Any) -> None:
    width(browser, 1200)
    open_dashboard(browser, service.url)
    wait_for(lambda: headline_matches(browser, service.url), 3, "the headline = /api/reading")
    reading = get_json(service.url + "/api/reading")
    energy = browser.find_element("id", "energy").text
    # Energies in kWh, names from mbuspico.names; one reading may have come in between.
    shown_kwh = [line for line in energy.splitlines() if line.startswith("Active energy import")]
    assert len(shown_kwh) == 1
    kwh = float(shown_kwh[0].split()[-2])
    assert abs(kwh - reading["activeEnergyPlus"] / 1000) < 0.01, (shown_kwh, reading)
    assert shown_kwh[0].endswith("kWh")
    phases = browser.find_element("id", "phases").text
    assert "Voltage" in phases
    assert "L3" in phases
    assert reading["meterNumber"] in text(browser, "meter")
    assert text(browser, "fresh").startswith("updated ")
    assert browser.execute_script("return document.querySelectorAll('#warnings .warn').length") == 0
    shot(browser, "dashboard-1200")


def test_new_readings_arrive_without_reload(browser: Any, service: Any) -> None:
    open_dashboard(browser, service.url)
    browser.execute_script("window.notReloaded = true")
    first = text(browser, "power-import")
    clock = text(browser, "meter")
    wait_for(
        lambda: text(browser, "power-import") != first and text(browser, "meter") != clock,
        3,
        "a new reading on the page",
    )
    assert browser.execute_script("return window.notReloaded") is True
    wait_for(lambda: headline_matches(browser, service.url), 3, "the headline = /api/reading")
    # The live chart has a point per reading since the page opened.
    points = wait_for(
        lambda: int(browser.find_element("id", "chart-hour").get_attribute("data-points")) >= 2,
        3,
        "points on the live chart",
    )
    assert points
    assert service.status()["http"]["eventStreams"] >= 1


def test_plots_from_the_history(browser: Any, service: Any) -> None:
    open_dashboard(browser, service.url)

    def points(chart: str) -> int:
        return int(browser.find_element("id", chart).get_attribute("data-points") or 0)

    wait_for(lambda: points("chart-day") >= 1, 5, "the day's power from /api/history")
    wait_for(lambda: points("chart-hourly") >= 1, 5, "hourly energy from /api/history")
    assert points("chart-hour") >= 1
    # The last hourly bar (import) is /api/history's energy of this hour, in kWh.
    query = "/api/history?field=activeEnergyPlus&step=1h&from=-48h"
    hourly = get_json(service.url + query)
    assert hourly["field"] == "activeEnergyPlus"
    assert hourly["unit"] == "Wh"
    chart = browser.find_element("id", "chart-hourly")
    recorded = [v for v in hourly["value"] if v is not None]  # hours without readings: None
    assert int(chart.get_attribute("data-points")) == len(recorded)
    shown = float(chart.get_attribute("data-last") or "nan")
    assert abs(shown - recorded[-1] / 1000) < 0.01, (shown, recorded[-1])
    # And the energy of this hour so far, under the totals.
    period = browser.find_element("id", "period").text.splitlines()
    this_hour = next(line for line in period if line.startswith("This hour "))
    assert abs(float(this_hour.split()[2]) - recorded[-1] / 1000) < 0.01, this_hour
    assert any(line.startswith("Today ") for line in period)


def test_dark_mode_follows_the_system(browser: Any, service: Any) -> None:
    def background() -> str:
        return str(browser.execute_script("return getComputedStyle(document.body).backgroundColor"))

    open_dashboard(browser, service.url)
    light = background()
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    try:
        open_dashboard(browser, service.url)
        dark = background()
        shot(browser, "dashboard-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert light == "rgb(246, 247, 249)"
    assert dark == "rgb(17, 20, 24)"


def test_no_horizontal_scroll_at_360_px(browser: Any, service: Any) -> None:
    width(browser, 360)
    try:
        for path, name in (("/dashboard", "dashboard-360"), ("/status.html", "status-360")):
            browser.get(service.url + path)
            wait_for(
                lambda: browser.execute_script("return document.readyState") == "complete",
                5,
                path,
            )
            scroll, client = browser.execute_script(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth]"
            )
            assert client == 360, path
            assert scroll <= client, f"{path} scrolls sideways at 360 px: {scroll} px wide"
            shot(browser, name)
    finally:
        width(browser, 1200)


def test_a_silent_meter_shows_the_stale_warning(
    browser: Any, service: Any, meter: Simulator
) -> None:
    open_dashboard(browser, service.url)
    assert warning(browser, "stale") is None
    meter.stop()
    try:
        shown = wait_for(lambda: warning(browser, "stale"), STALE_AFTER + 3, "the stale warning")
        assert "No reading from the meter" in shown
        shot(browser, "dashboard-stale")
    finally:
        meter.start()
    wait_for(
        lambda: warning(browser, "stale") is None, 5, "the warning gone once readings are back"
    )


def test_a_wrong_key_shows_the_key_warning(browser: Any) -> None:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.3, seed=22) as sim:
        sim.start()
        svc = serve(sim, key=OTHER_KEY, history_enabled=False)
        try:
            url = f"http://127.0.0.1:{svc.http_port}"
            wait_for(lambda: svc.status()["telegrams"]["decryptionFailures"] > 0, 10, "a failure")
            open_dashboard(browser, url)
            shown = wait_for(lambda: warning(browser, "key"), 3, "the key warning")
            assert "the key is wrong" in shown
            assert text(browser, "power-import") == "—"
            shot(browser, "dashboard-wrong-key")
            browser.get(url + "/status.html")
            assert "could not be decrypted" in browser.find_element("tag name", "body").text
        finally:
            svc.stop()


def test_a_p1_meter_with_names_and_no_python_reprs(browser: Any, tmp_path: Path) -> None:
    from mbuspico.simulate.p1 import P1Simulator

    with P1Simulator("dsmr5", interval=0.5, seed=25) as sim:
        sim.start()
        history = str(tmp_path / "history.sqlite3")
        svc = serve(sim, protocol="dsmr", key=None, history_enabled=True, history_path=history)
        try:
            url = f"http://127.0.0.1:{svc.http_port}"
            wait_for(lambda: svc.state.snapshot()[0] is not None, 10, "a P1 reading")
            open_dashboard(browser, url)
            wait_for(lambda: headline_matches(browser, url), 3, "the headline = /api/reading")
            values = browser.find_element("id", "values").text
            assert "Active energy import, tariff 1" in values
            assert "kWh" in values
            assert "None" not in values
            assert "[[" not in values
            # The equipment identifier as text (the meter number), not its hex.
            number = get_json(url + "/api/reading")["meterNumber"]
            assert f"Equipment identifier {number}" in values
            assert "DSMR P1 meter" in text(browser, "meter")
            # The gas channel (M-Bus channel 1) gets a plot of its own, from the history.
            gas = get_json(url + "/api/history")
            assert any(f["field"] == "mbus_1" and f["medium"] == "gas" for f in gas)
            wait_for(
                lambda: browser.execute_script("return !!document.getElementById('chart-mbus_1')"),
                5,
                "the gas plot",
            )
            assert "Gas per day" in browser.find_element("tag name", "body").text
            shot(browser, "dashboard-p1")
        finally:
            svc.stop()


def test_a_wired_mbus_meter_by_its_records(browser: Any) -> None:
    from mbuspico.simulate.mbus_slave import MBusSlave, SlaveMeter, load_frames

    frames = Path(__file__).parent / "data" / "mbus" / "otb_iot_cf_echo_ii_checksum_corrected.hex"
    with MBusSlave(SlaveMeter(load_frames(frames), address=5)) as bus:
        bus.start()
        svc = serve(
            protocol="mbus", serial_port=bus.port, mbus_address="5", mbus_interval=0.3, key=None
        )
        try:
            url = f"http://127.0.0.1:{svc.http_port}"
            wait_for(lambda: svc.state.snapshot()[0] is not None, 10, "an M-Bus reading")
            open_dashboard(browser, url)
            values = browser.find_element("id", "values").text
            # The heat meter's energy record (9730000 Wh) in kWh, by its quantity.
            assert "Energy 9730.000 kWh" in values
            assert browser.execute_script("return document.querySelector('.head').hidden") is True
            assert "wired M-Bus meter" in text(browser, "meter")
        finally:
            svc.stop()


def test_settings_at_360_px(browser: Any) -> None:
    import base64

    with Simulator("kaifa-ma309m", key=KEY, interval=0.5, seed=23) as sim:
        sim.start()
        svc = serve(
            sim,
            http_user="admin",
            http_password="dashboard-test",  # noqa: S106 - a test's
            history_enabled=False,
        )
        token = base64.b64encode(b"admin:dashboard-test").decode()
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
        )
        width(browser, 360)
        try:
            browser.get(f"http://127.0.0.1:{svc.http_port}/settings")
            assert browser.find_elements("tag name", "form"), browser.page_source[:300]
            scroll, client = browser.execute_script(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth]"
            )
            shot(browser, "settings-360")
            assert client == 360
            assert scroll <= client, f"/settings scrolls sideways at 360 px: {scroll} px wide"
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
            width(browser, 1200)
            svc.stop()


# -- without a browser ---------------------------------------------------------------------------


def test_status_page_names_and_units(service: Any) -> None:
    reading = service.state.snapshot()[0]
    status = service.status()
    page = status_html(status, reading)
    assert 'name=viewport content="width=device-width' in page
    assert '<a href="/dashboard">' in page
    assert '<a href="/settings">' in page
    assert "None" not in page
    assert "Active energy import" in page
    rows = {label: (value, unit) for label, value, unit, _ in reading_rows(reading)}
    assert rows["Active energy import"] == (f"{reading['activeEnergyPlus'] / 1000:.3f}", "kWh")
    assert rows["Voltage L1"] == (f"{reading['voltageL1']:.1f}", "V")
    before = dict(status, lastReadingAt=None, lastMeterTime=None, ageSeconds=None)
    empty = status_html(before, None)
    assert "None" not in empty
    assert "no reading yet" in empty


def test_p1_values_are_never_python_reprs() -> None:
    reading = {
        "protocol": "dsmr",
        "obis": {
            "1-0:99.97.0": {
                "value": [["2010-12-08T15:24:15+01:00", 240, "s"]],
                "unit": None,
                "name": "power_failure_log",
            },
            "0-0:96.13.0": {"value": None, "unit": None, "name": "text_message"},
            "0-0:96.1.1": {"value": "4530303433", "unit": None, "name": "equipment_identifier"},
            "1-0:1.8.1": {"value": 1234.5, "unit": "kWh", "name": "electricity_used_tariff_1"},
        },
        "mbus": {"1": {"value": 12.785, "unit": "m3"}},
    }
    rows = reading_rows(reading)
    assert rows[0] == ("Power failure log", "2010-12-08T15:24:15+01:00 240 s", "", "1-0:99.97.0")
    assert rows[1][1] == "—"
    assert rows[2] == ("Equipment identifier", "E0043", "", "0-0:96.1.1")
    assert rows[3] == ("Active energy import, tariff 1", "1234.500", "kWh", "1-0:1.8.1")
    assert rows[4] == ("M-Bus channel 1", "12.785", "m3", "")
    assert not any("[" in value or "None" in value for _, value, _, _ in rows)


def test_event_streams_are_bounded(service: Any) -> None:
    hub: EventHub = service.events
    limit = hub.max_streams
    streams = []
    try:
        for _ in range(limit - hub.active):
            r = urllib.request.urlopen(service.url + "/api/events", timeout=5)  # noqa: S310
            assert r.read1(64).startswith(b"retry: ")
            streams.append(r)
        wait_for(lambda: hub.active == limit, 3, "all streams open")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(service.url + "/api/events", timeout=5)  # noqa: S310
        refused.value.close()
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "5"
        assert service.status()["http"]["eventStreamsRefused"] >= 1
    finally:
        for r in streams:
            r.close()
    wait_for(lambda: hub.active == 0, 2 * hub.heartbeat + 2, "closed streams ended")


def test_a_client_that_stops_reading_is_dropped() -> None:
    import asyncio

    async def scenario() -> tuple[int, int]:
        hub = EventHub(max_streams=2, heartbeat=0.05)
        hub.bind(asyncio.get_running_loop())
        aborted = []
        stream = hub.stream(lambda: {"ok": True}, lambda: aborted.append(1))
        assert await stream.__anext__() == b"retry: 3000\n\n"
        assert (await stream.__anext__()).startswith(b"event: status\n")
        # The client takes nothing more: its writes would block, so the
        # generator is not resumed; the watchdog drops the connection.
        for _ in range(100):
            if aborted:
                break
            await asyncio.sleep(0.01)
        await stream.aclose()
        return len(aborted), hub.aborted

    assert asyncio.run(scenario()) == (1, 1)


def test_shutdown_ends_the_event_streams() -> None:
    with Simulator("kaifa-ma309m", key=KEY, interval=0.5, seed=24) as sim:
        sim.start()
        svc = serve(sim, history_enabled=False)
        stream = urllib.request.urlopen(f"http://127.0.0.1:{svc.http_port}/api/events", timeout=5)
        with stream:
            assert stream.read1(64).startswith(b"retry: ")
            wait_for(lambda: svc.events.active == 1, 3, "the stream open")
            svc.stop()
            rest = b""
            while chunk := stream.read1(65536):  # ends: the service closed it
                rest += chunk
        assert svc.events.active == 0
        assert svc.gate is not None
        assert svc.gate.active == 0
