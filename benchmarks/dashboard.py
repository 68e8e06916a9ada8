"""The dashboard's figures: page weight and time to first paint on the loopback.

Starts ``mbuspico serve --demo`` in this process (HTTP on 127.0.0.1, a free
port), waits for a reading, then measures:

* **page weight**: the bytes of everything ``/dashboard`` loads (the page
  itself: style and script are inline, no other resource; goal < 200 KB);
* **time to first byte** of ``/dashboard`` (urllib, median of ``--runs``);
* **time to first paint and first contentful paint** in headless Chromium
  (the Paint Timing API, ``performance.getEntriesByType("paint")``), median
  of ``--runs`` loads in a fresh tab each.

Needs ``chromium`` and ``chromium-driver`` (``scripts/system-deps``) and
selenium for the paint figures; without them only weight and first byte.

With ``--screenshot FILE`` it also saves the dashboard as README.md shows it
(``docs/dashboard.png``): 1000 px wide, after ``--live`` seconds of readings,
the plots drawn from a history file filled first with ``--history-days`` of a
made-up household (a base load, morning and evening peaks, solar export at
noon that grows in summer), ending at the demo meter's registers.

Usage: ``.venv/bin/python benchmarks/dashboard.py [--runs 20] [--screenshot docs/dashboard.png]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from mbuspico.serve import Service
from mbuspico.serve.config import load


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--screenshot", metavar="FILE", help="save a screenshot of the dashboard")
    parser.add_argument("--live", type=float, default=30.0, help="seconds of readings before it")
    parser.add_argument("--history-days", type=int, default=730, help="made-up history (days)")
    args = parser.parse_args()
    work = tempfile.TemporaryDirectory()
    history = Path(work.name) / "history.sqlite3"
    if args.screenshot and args.history_days > 0:
        _made_up_history(history, args.history_days, time.time())
    flags = {"http_host": "127.0.0.1", "http_port": "0", "mdns_enabled": "false"}
    config = load({}, flags={**flags, "history_path": str(history)}, demo=True)
    service = Service(config)
    service.start()
    try:
        url = f"http://127.0.0.1:{service.http_port}/dashboard"
        deadline = time.monotonic() + 10
        while service.state.snapshot()[0] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first_byte = []
        size = 0
        for _ in range(args.runs):
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read(1)
                first_byte.append(time.perf_counter() - start)
                size = 1 + len(r.read())
        print(f"page weight: {size} bytes ({size / 1024:.1f} KiB; goal < 200 KB), 1 request")
        print(f"time to first byte: median {1000 * statistics.median(first_byte):.1f} ms")
        paints = _paints(url, args.runs, args.screenshot, args.live)
        if paints is None:
            print("first paint: not measured (chromium, chromium-driver or selenium missing)")
        else:
            fp, fcp = paints
            print(
                f"first paint: median {statistics.median(fp):.0f} ms, first contentful paint: "
                f"median {statistics.median(fcp):.0f} ms (headless Chromium, {args.runs} loads)"
            )
    finally:
        service.stop()
        work.cleanup()


# The demo meter's registers at its start (mbuspico.simulate.dlms, kaifa-ma309m), Wh.
_DEMO_IMPORT_WH = 1_234_567
_DEMO_EXPORT_WH = 345_678


def _made_up_history(path: Path, days: int, end: float) -> None:
    """Fill ``path`` with ``days`` of a made-up household up to ``end``, for the screenshot.

    A reading a minute for the last 2 days, every 10 minutes for the last 62,
    hourly before; the registers end just below the demo meter's, so its
    first readings continue them.
    """
    from mbuspico.history import Recorder

    times: list[float] = []
    t = end - days * 86400
    while t < end - 120:
        times.append(t)
        age = end - t
        t += 60 if age <= 2 * 86400 else 600 if age <= 62 * 86400 else 3600
    rows = []
    plus = minus = 0.0
    for i, t in enumerate(times):
        local = time.localtime(t)
        hour = local.tm_hour + local.tm_min / 60
        summer = 0.5 - 0.5 * math.cos(2 * math.pi * (local.tm_yday - 10) / 365)
        use = 250 + 1400 * math.exp(-(((hour - 7.5) / 1.0) ** 2))
        use += 2200 * math.exp(-(((hour - 19.0) / 1.5) ** 2)) + 60 * math.sin(i * 0.3)
        sun = 3500 * max(0.0, math.sin(math.pi * (hour - 6) / 13)) * (0.25 + 0.75 * summer)
        sun *= 0.6 + 0.4 * math.sin(local.tm_yday * 1.7) ** 2  # cloudy days
        imp, exp = max(0.0, use - sun), max(0.0, sun - use)
        dt = (times[i + 1] - t) if i + 1 < len(times) else 60.0
        rows.append((t, imp, exp, plus, minus))
        plus += imp * dt / 3600
        minus += exp * dt / 3600
    shift_plus, shift_minus = _DEMO_IMPORT_WH - 1 - plus, _DEMO_EXPORT_WH - 1 - minus
    with Recorder(path, days=days + 1, raw_days=7) as recorder:
        for t, imp, exp, e_plus, e_minus in rows:
            reading = {
                "protocol": "dlms",
                "meterNumber": "181220002177",
                "activePowerPlus": round(imp),
                "activePowerMinus": round(exp),
                "activeEnergyPlus": round(e_plus + shift_plus),
                "activeEnergyMinus": round(e_minus + shift_minus),
            }
            recorder.add(reading, at=t)
        recorder.flush(end, everything=True)


def _paints(
    url: str, runs: int, screenshot: str | None = None, live: float = 0.0
) -> tuple[list[float], list[float]] | None:
    """First paint and first contentful paint (ms from navigation start) of ``runs`` loads.

    With ``screenshot``, then the page ``live`` seconds after a load, saved there as PNG.
    """
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=DriverService(driver_path))
    fp: list[float] = []
    fcp: list[float] = []
    try:
        for _ in range(runs):
            driver.get("about:blank")
            driver.get(url)
            entries: dict[str, float] = {}
            deadline = time.monotonic() + 5
            while len(entries) < 2 and time.monotonic() < deadline:
                found = driver.execute_script(
                    "return performance.getEntriesByType('paint').map(e => [e.name, e.startTime])"
                )
                entries = {str(name): float(at) for name, at in found}
                time.sleep(0.02)
            if "first-paint" in entries:
                fp.append(entries["first-paint"])
            if "first-contentful-paint" in entries:
                fcp.append(entries["first-contentful-paint"])
        if screenshot:
            driver.set_window_size(1000, 1400)
            driver.get(url)
            time.sleep(live)
            driver.save_screenshot(screenshot)
            print(f"screenshot: {screenshot}")
    finally:
        driver.quit()
    return (fp, fcp) if fp and fcp else None


if __name__ == "__main__":
    main()
