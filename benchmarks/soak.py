"""Soak test: many telegrams with faults through ``mbuspico.SerialReader`` on a pty.

For each protocol (DLMS push meters of :class:`mbuspico.simulate.dlms.Simulator`,
DSMR P1 meters of :class:`mbuspico.simulate.p1.P1Simulator`, and a wired
M-Bus of :class:`mbuspico.simulate.mbus_slave.MBusSlave` read by
:class:`mbuspico.MBusMaster`) it writes ``--telegrams`` telegrams with faults
(random garbage before telegrams, dropped bytes, flipped bits, split writes
with delays) and checks, telegram by telegram as the readings arrive:

* every reading equals the ``expected`` values of the telegram it claims to be
  (wrong readings: must be 0);
* every untouched telegram was decoded (must be 0 missed);
* no damaged telegram produced a reading, unless the damage left every
  checked byte intact (DSMR: the CRC-covered bytes and the CRC; HDLC: only
  7E flags were lost, which a reader may take as shared flags);
* the counters add up: bytes written == bytes of the decoded telegrams +
  ``bytes_skipped`` (M-Bus master: the requests the slave saw == the requests
  the clean readouts need + exactly one retry per injected fault);
* the resident set size stays flat (start after warm-up, middle, end).

Nothing is kept per telegram once it has been checked, so the soak's own
memory stays flat. Prints a Markdown report; exits 1 if an invariant fails.
Not part of the test suite: ``scripts/soak`` runs it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import resource
import string
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import mbuspico
from mbuspico.simulate.dlms import AUTHENTICATED, EXPECTED_FIELDS, SimulatedTelegram, Simulator
from mbuspico.simulate.mbus_slave import MBusSlave, SlaveMeter, load_frames
from mbuspico.simulate.p1 import ENCRYPTED_METERS, PROFILES, P1Simulator, SimulatedP1Telegram

KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
P1_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
DLMS_METERS = (
    "kaifa-ma309m",
    "ksm-west",
    "wienernetze-im350",
    "burgenland-e450",
    "steiermark-e450",
)
DSMR_METERS = ("dsmr5", "luxembourg-smarty")
DLMS_FIELDS = EXPECTED_FIELDS
# A weekday in winter time, far from a daylight-saving change: DSMR timestamps
# (one a second) stay unique for weeks of simulated telegrams.
P1_START = datetime(2026, 1, 5, 5, 30, tzinfo=timezone.utc)
FRAMES = Path(__file__).resolve().parent.parent / "tests" / "data" / "libmbus" / "test-frames"
MBUS_SEQUENCE = ("svm_f22_telegram1", "sontex_supercal_531_telegram1", "GWF-MTKcoder")
CLEAN_TAIL = 3  # the last telegrams are written clean, so no partial frame is left over


def rss_kib() -> int:
    """The resident set size of this process in KiB (``VmRSS``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:  # not Linux: the peak is the best there is
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class _LogCounter(logging.Handler):
    """Counts the ``mbuspico`` log records (bad telegrams are logged) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1


LOG = _LogCounter()


@dataclass
class Result:
    """What one protocol run found."""

    name: str
    protocol: str
    telegrams: int = 0
    untouched: int = 0
    readings: int = 0
    wrong: int = 0
    missed: int = 0
    missed_after_lost_flag: int = 0
    damaged_decoded: int = 0
    harmless_decoded: int = 0
    bytes_written: int = 0
    bytes_decoded: int = 0
    bytes_skipped: int = 0
    counter_note: str = ""
    counter_ok: bool = True
    rss: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    log_lines: dict[str, int] = field(default_factory=dict)

    @property
    def rss_growth(self) -> int:
        """KiB gained from the first to the last sample."""
        return self.rss[-1] - self.rss[0] if len(self.rss) >= 2 else 0

    def problems(self, rss_tolerance_kib: int) -> list[str]:
        """The invariants this run broke."""
        out = []
        if self.wrong:
            out.append(f"{self.wrong} wrong readings")
        if self.missed:
            why = ""
            if self.missed_after_lost_flag:
                why = (
                    f" ({self.missed_after_lost_flag} of them right after a telegram that lost "
                    "its closing HDLC flag: the reader does not let one 7E flag close a frame "
                    "and open the next)"
                )
            out.append(f"{self.missed} untouched telegrams not decoded{why}")
        if self.damaged_decoded:
            out.append(f"{self.damaged_decoded} damaged telegrams decoded")
        if not self.counter_ok:
            out.append(f"counters do not add up ({self.counter_note})")
        if self.rss_growth > rss_tolerance_kib:
            out.append(f"RSS grew by {self.rss_growth} KiB")
        if self.readings == 0:
            out.append("no reading at all")
        return out


@dataclass
class _Pending:
    """A written telegram not yet matched by a reading."""

    seq: int
    expected: dict[str, Any] | None
    size: int
    faulted: bool
    harmless: bool
    flag_lost: bool = False


class _Checker:
    """Matches readings (in arrival order) against the telegrams written."""

    def __init__(
        self, result: Result, check: Callable[[Any, dict[str, Any]], str | None], damage_ok: bool
    ) -> None:
        self.result = result
        self.check = check
        self.damage_ok = damage_ok
        self.lock = threading.Lock()
        self.pending: dict[Any, _Pending] = {}
        self.flag_lost: set[int] = set()  # telegrams whose closing HDLC flag was dropped

    def _note(self, entry: _Pending) -> None:
        if entry.flag_lost:
            self.flag_lost.add(entry.seq)

    def written(self, ident: Any, entry: _Pending) -> None:
        with self.lock:
            self.pending[ident] = entry
            self._note(entry)

    def reading(self, ident: Any, reading: Any) -> None:
        r = self.result
        r.readings += 1
        with self.lock:
            entry = self.pending.pop(ident, None)
            if entry is not None:
                # Readings arrive in the order written: what came before and is
                # still pending was not decoded.
                for key in [k for k, e in self.pending.items() if e.seq < entry.seq]:
                    self._gone(self.pending.pop(key))
        if entry is None or entry.expected is None:
            r.wrong += 1
            self._example(f"reading for an unknown or already read telegram {ident!r}")
            return
        problem = self.check(reading, entry.expected)
        if problem is not None:
            r.wrong += 1
            self._example(f"telegram {ident!r}: {problem}")
            return
        r.bytes_decoded += entry.size
        if entry.faulted:
            if self.damage_ok and entry.harmless:
                r.harmless_decoded += 1
            else:
                r.damaged_decoded += 1
                self._example(f"damaged telegram {ident!r} was decoded")

    def finish(self) -> None:
        with self.lock:
            for entry in self.pending.values():
                self._gone(entry)
            self.pending.clear()

    def _gone(self, entry: _Pending) -> None:
        if not entry.faulted:
            self.result.missed += 1
            why = ""
            if entry.seq - 1 in self.flag_lost:
                # HDLC (ISO/IEC 13239 4.3.1) lets one flag close a frame and open the next.
                self.result.missed_after_lost_flag += 1
                why = (
                    ": the telegram before it lost its closing 7E flag and took this "
                    "one's opening flag as its own (a shared HDLC flag)"
                )
            self._example(f"untouched telegram #{entry.seq} was not decoded{why}")

    def _example(self, text: str) -> None:
        if len(self.result.examples) < 8:
            self.result.examples.append(text)


def check_dlms(reading: Any, expected: dict[str, Any]) -> str | None:
    """None when ``reading`` has the expected values, else what differs."""
    for name in DLMS_FIELDS:
        if reading.get(name) != expected[name]:
            return f"{name} = {reading.get(name)!r}, sent {expected[name]!r}"
    return None


def check_dsmr(reading: Any, expected: dict[str, Any]) -> str | None:
    """None when ``reading`` has the expected values, else what differs."""
    for name in ("protocol", "header", "crc", "timestamp"):
        if reading.get(name) != expected[name]:
            return f"{name} = {reading.get(name)!r}, sent {expected[name]!r}"
    for code, want in expected["obis"].items():
        got = reading["obis"].get(code)
        if got is None:
            return f"{code} missing"
        for key, value in want.items():
            if got.get(key) != value:
                return f"{code} {key} = {got.get(key)!r}, sent {value!r}"
    for channel, device in expected["mbus"].items():
        got = reading["mbus"].get(channel)
        if got is None:
            return f"M-Bus channel {channel} missing"
        for key, value in device.items():
            if got.get(key) != value:
                return f"M-Bus {channel} {key} = {got.get(key)!r}, sent {value!r}"
    return None


def p1_verifiable(telegram: bytes, wire: bytes) -> bool:
    """Whether a plain P1 telegram's CRC-covered bytes and CRC value reached the wire."""
    if not telegram.startswith(b"/"):
        return False  # encrypted: the tag covers every byte
    bang = telegram.rindex(b"!")
    at = wire.find(telegram[: bang + 1])
    crc = wire[at + bang + 1 : at + bang + 5]
    return at >= 0 and crc.upper() == telegram[bang + 1 : bang + 5]


def p1_handed_size(telegram: bytes, wire: bytes) -> int:
    """How many bytes of a damaged but verifiable P1 telegram a reader hands out.

    From its ``/`` through the ``!``, up to four CRC digits and whatever is
    left of the CR LF (a lost line end is not taken from the next telegram).
    """
    bang = telegram.rindex(b"!")
    at = wire.find(telegram[: bang + 1])
    end = at + bang + 1
    digits = 0
    while digits < 4 and end < len(wire) and chr(wire[end]) in string.hexdigits:
        end, digits = end + 1, digits + 1
    for line_end in (b"\r", b"\n"):
        if wire[end : end + 1] == line_end:
            end += 1
    return end - at


def flags_dropped(telegram: bytes, wire: bytes) -> int | None:
    """How many 7E flags of an HDLC ``telegram`` are missing from the end of ``wire``.

    None when other damage is there too (a flipped or dropped byte that is not
    a flag). Matches from the end, as the garbage fault only adds bytes before.
    """
    i, dropped = len(wire) - 1, 0
    for j in range(len(telegram) - 1, -1, -1):
        if i >= 0 and wire[i] == telegram[j]:
            i -= 1
        elif telegram[j] == 0x7E:
            dropped += 1
        else:
            return None
    return dropped


@dataclass
class Options:
    """The command line."""

    telegrams: int
    interval: float
    garbage: float
    drop_byte: float
    flip_bit: float
    split: float
    seed: int
    rss_tolerance_kib: int
    mbus_fault: float


def _sample(result: Result, count: int) -> None:
    """Sample the RSS after a 5 % warm-up and half way (the end is sampled after the run)."""
    due = (max(1, count // 20), count // 2)
    if len(result.rss) < len(due) and result.telegrams >= due[len(result.rss)]:
        result.rss.append(rss_kib())


def soak_stream(name: str, protocol: str, opts: Options) -> Result:
    """Write ``opts.telegrams`` telegrams of one push meter and read them back."""
    result = Result(name, protocol)
    sim: Simulator | P1Simulator
    if protocol == "dlms":
        auth = AUTH_KEY if name in AUTHENTICATED else None
        sim = Simulator(name, key=KEY, auth_key=auth, interval=opts.interval, seed=opts.seed)
        reader_args: dict[str, Any] = {"key": KEY, "auth_key": auth}
        checker = _Checker(result, check_dlms, damage_ok=True)
    else:
        profile = PROFILES[name]
        key = P1_KEY if name in ENCRYPTED_METERS else None
        sim = P1Simulator(name, key=key, interval=opts.interval, seed=opts.seed, start=P1_START)
        reader_args = {
            "key": key,
            "protocol": "dsmr",
            "baudrate": profile.baudrate,
            "parity": profile.parity,
            "bytesize": profile.bytesize,
        }
        checker = _Checker(result, check_dsmr, damage_ok=True)
    count = opts.telegrams
    split_rng = random.Random(opts.seed + 1)  # noqa: S311 - simulation
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            sim.garbage, sim.drop_byte, sim.flip_bit = opts.garbage, opts.drop_byte, opts.flip_bit
            generated: Iterator[SimulatedTelegram | SimulatedP1Telegram] = sim.telegrams()
            next_at = time.monotonic()
            previous_flag = False
            for seq in range(count):
                if seq == count - CLEAN_TAIL:
                    sim.garbage = sim.drop_byte = sim.flip_bit = 0.0
                tg = next(generated)
                expected = tg.expected
                assert expected is not None
                ident = expected["frameCounter"] if protocol == "dlms" else expected["timestamp"]
                hdlc = tg.telegram[:1] == b"~"
                flag_lost = hdlc and not tg.wire.endswith(b"~")
                size = len(tg.telegram)
                if protocol == "dsmr":
                    harmless = tg.faulted and p1_verifiable(tg.telegram, tg.wire)
                    if harmless:
                        size = p1_handed_size(tg.telegram, tg.wire)
                else:
                    dropped = flags_dropped(tg.telegram, tg.wire) if hdlc and tg.faulted else None
                    harmless = dropped is not None
                    if dropped is not None:
                        # What a reader that decodes it takes: the bytes that arrived,
                        # plus the next frame's opening flag when the closing one is gone.
                        size += flag_lost - dropped
                        part = tg.wire[len(tg.wire) - (len(tg.telegram) - dropped) :]
                        if part[:1] != b"~" and part == tg.wire and previous_flag:
                            # Its opening flag is gone and the previous telegram's
                            # closing flag opens it: the reader counts that flag in
                            # both telegrams.
                            size += 1
                previous_flag = tg.wire.endswith(b"~")
                checker.written(
                    ident, _Pending(seq, expected, size, tg.faulted, harmless, flag_lost)
                )
                result.telegrams += 1
                result.untouched += not tg.faulted
                sim.split = split_rng.random() < opts.split
                n = sim.write(tg.wire, timeout=10)
                result.bytes_written += n
                if n < len(tg.wire):
                    msg = f"only {n} of {len(tg.wire)} bytes written: the reader stalled"
                    raise RuntimeError(msg)
                next_at += opts.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()  # behind (split delays): do not burst
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    gc.collect()
    start = time.monotonic()
    with sim:
        assert sim.port is not None
        with mbuspico.SerialReader(sim.port, **reader_args) as reader:
            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            seen = 0
            while True:
                reading = reader.read(timeout=0.5)
                if reading is None:
                    if done.is_set() and reader.read(timeout=2.0) is None:
                        break
                    continue
                if protocol == "dlms":
                    ident: Any = reading.get("frameCounter")
                else:
                    ident = reading.get("timestamp")
                checker.reading(ident, reading)
                seen += 1
                del reading
                # Sample while the telegrams are flowing (readings lag the writer).
                _sample(result, count)
            writer.join()
            checker.finish()
            stats: dict[str, Any] = dict(reader.stats)
    gc.collect()
    result.rss.append(rss_kib())
    result.elapsed = time.monotonic() - start
    result.stats = stats
    result.bytes_skipped = int(stats["bytes_skipped"])
    # An HDLC flag that closed one frame and opened the next is in both telegrams.
    shared = int(stats.get("shared_flags", 0))
    accounted = result.bytes_decoded + result.bytes_skipped - shared
    result.counter_ok = result.bytes_written == accounted and stats["readings"] == result.readings
    result.counter_note = (
        f"written {result.bytes_written} = decoded {result.bytes_decoded} + skipped "
        f"{result.bytes_skipped} - shared flags {shared}"
        + (
            ""
            if result.bytes_written == accounted
            else f" (off by {result.bytes_written - accounted})"
        )
    )
    if errors:
        result.counter_ok = False
        result.counter_note += f"; writer failed: {errors[0]!r}"
    return result


def soak_mbus(opts: Options) -> Result:
    """Read a wired M-Bus slave ``opts.telegrams`` telegrams' worth, with lost and garbled answers.

    Two slaves: a three-telegram readout (address 7) and a one-telegram meter
    (address 3), read in turn. Before a readout, with probability
    ``mbus_fault``, the E5 to the link reset is lost and then the first
    telegram is lost (mute) or garbled (one byte corrupted); the master's retry
    (same FCB, the slave repeats) must still deliver exactly the captured
    frames. (A garbled E5 to the link reset is not injected: ``MBusMaster``
    gives the readout up on it, see the report.)
    """
    result = Result("wired M-Bus (MBusSlave + MBusMaster)", "mbus")
    sequence = SlaveMeter(
        [load_frames(FRAMES / f"{n}.hex")[0] for n in MBUS_SEQUENCE],
        address=7,
        secondary="00112233B5150104",
    )
    single = SlaveMeter(load_frames(FRAMES / "EDC.hex")[0], address=3)
    meters = {7: sequence, 3: single}
    rng = random.Random(opts.seed)  # noqa: S311 - simulation
    faults_injected = 0
    requests = 0
    expected_requests = 0
    gc.collect()
    start = time.monotonic()
    with MBusSlave([sequence, single]) as bus:
        bus.start()
        assert bus.port is not None
        with mbuspico.MBusMaster(bus.port, timeout=0.05, retries=3) as master:
            readouts = 0
            while result.telegrams < opts.telegrams:
                address = 7 if readouts % 2 == 0 else 3
                want = meters[address].frames
                fault = rng.random() < opts.mbus_fault
                if fault:
                    faults_injected += 1
                    # The E5 to the link reset (SND_NKE, never retried) is lost,
                    # then the first telegram is lost or garbled: one retry.
                    bus.mute(1)
                    if rng.random() < 0.5:
                        bus.mute(1)
                    else:
                        bus.garble(1)
                try:
                    frames = master.request_frames(address)
                except mbuspico.MbusPicoError as e:
                    frames = []
                    result.examples.append(f"readout {readouts} of {address} failed: {e}")
                readouts += 1
                result.telegrams += len(want)
                result.untouched += 0 if fault else len(want)
                result.bytes_written += sum(len(f) for f in want)
                if frames == want:
                    result.readings += len(frames)
                    result.bytes_decoded += sum(len(f) for f in frames)
                elif frames:
                    result.wrong += 1
                    if len(result.examples) < 5:
                        result.examples.append(f"readout {readouts} of {address}: other frames")
                elif not fault:
                    result.missed += len(want)
                # The slave has answered the last request: count and forget them.
                seen, bus.requests = bus.requests, []
                requests += len(seen)
                expected_requests += 1 + len(want)
                _sample(result, opts.telegrams)
    gc.collect()
    result.rss.append(rss_kib())
    result.elapsed = time.monotonic() - start
    retries = requests - expected_requests
    # The lost E5 costs no request (a link reset is not retried); the lost or
    # garbled telegram costs exactly one retry.
    result.counter_ok = retries == faults_injected
    result.counter_note = (
        f"slave saw {requests} requests = {expected_requests} for clean readouts "
        f"+ {retries} retries ({faults_injected} faults injected)"
    )
    result.stats = {
        "readouts": readouts,
        "faults_injected": faults_injected,
        "retries": retries,
        "requests": requests,
    }
    return result


def report(results: list[Result], opts: Options, total: float) -> str:
    """The Markdown report."""
    lines = [
        "# mbuspico soak report",
        "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- mbuspico {mbuspico.__version__}, Python {sys.version.split()[0]}",
        f"- telegrams per protocol: {opts.telegrams}; interval {opts.interval:g} s",
        f"- push faults: garbage {opts.garbage:g}/telegram, drop_byte {opts.drop_byte:g}/byte, "
        f"flip_bit {opts.flip_bit:g}/byte, split writes on {opts.split:.0%} of telegrams "
        f"(chunks of 1-64 bytes, 0-20 ms apart); the last {CLEAN_TAIL} telegrams clean",
        f"- wired M-Bus faults: {opts.mbus_fault:.0%} of readouts lose the link-reset E5 and "
        "lose or garble the first telegram",
        f"- seed {opts.seed}; total {total:.1f} s",
        "",
        "| run | protocol | telegrams | untouched | readings | wrong | untouched not decoded "
        "| damaged decoded | counters | RSS start / mid / end (MiB) | RSS growth | elapsed |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|--:|--:|",
    ]
    for r in results:
        rss = " / ".join(f"{kib / 1024:.1f}" for kib in r.rss)
        damaged = str(r.damaged_decoded)
        if r.harmless_decoded:
            damaged += f" (+{r.harmless_decoded} with every checked byte intact)"
        lines.append(
            f"| {r.name} | {r.protocol} | {r.telegrams} | {r.untouched} | {r.readings} | "
            f"{r.wrong} | {r.missed} | {damaged} | {'ok' if r.counter_ok else 'FAIL'}: "
            f"{r.counter_note} | {rss} | {r.rss_growth:+d} KiB | {r.elapsed:.1f} s |"
        )
    lines += ["", "Reader counters per run:", ""]
    for r in results:
        shown = ", ".join(f"{k} {v}" for k, v in r.stats.items())
        logged = ", ".join(f"{v} {k}" for k, v in sorted(r.log_lines.items())) or "none"
        lines.append(f"- {r.name}: {shown}; log lines: {logged}")
    failed = [(r.name, p) for r in results for p in r.problems(opts.rss_tolerance_kib)]
    lines.append("")
    if failed:
        lines.append("## FAILED")
        lines += [f"- {name}: {problem}" for name, problem in failed]
        for r in results:
            lines += [f"  - {r.name}: {example}" for example in r.examples]
    else:
        lines.append(
            f"All invariants hold: 0 wrong readings, every untouched telegram decoded, "
            f"counters add up, RSS growth within {opts.rss_tolerance_kib} KiB."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when every invariant holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--telegrams", type=int, default=10_000, help="per protocol run")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between telegrams")
    parser.add_argument("--garbage", type=float, default=0.1)
    parser.add_argument("--drop-byte", type=float, default=0.0002)
    parser.add_argument("--flip-bit", type=float, default=0.0002)
    parser.add_argument("--split", type=float, default=0.02, help="share of split telegrams")
    parser.add_argument("--mbus-fault", type=float, default=0.05, help="share of M-Bus readouts")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rss-tolerance-kib", type=int, default=4096)
    parser.add_argument(
        "--only", action="append", help="run only these (meter names or 'mbus'); repeatable"
    )
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.telegrams < 100:
        parser.error("--telegrams must be at least 100")
    opts = Options(
        telegrams=args.telegrams,
        interval=args.interval,
        garbage=args.garbage,
        drop_byte=args.drop_byte,
        flip_bit=args.flip_bit,
        split=args.split,
        seed=args.seed,
        rss_tolerance_kib=args.rss_tolerance_kib,
        mbus_fault=args.mbus_fault,
    )
    runs: list[tuple[str, Callable[[], Result]]] = [
        (m, partial(soak_stream, m, "dlms", opts)) for m in DLMS_METERS
    ]
    runs += [(m, partial(soak_stream, m, "dsmr", opts)) for m in DSMR_METERS]
    runs.append(("mbus", partial(soak_mbus, opts)))
    if args.only:
        runs = [(name, run) for name, run in runs if name in args.only]
    mbuspico_log = logging.getLogger("mbuspico")
    mbuspico_log.addHandler(LOG)
    mbuspico_log.propagate = False
    mbuspico_log.setLevel(logging.INFO)
    started = time.monotonic()
    results = []
    for name, run in runs:
        print(f"soak: {name} ...", file=sys.stderr, flush=True)
        LOG.counts.clear()
        r = run()
        r.log_lines = dict(LOG.counts)
        print(
            f"soak: {name}: {r.readings} readings, {r.wrong} wrong, {r.missed} missed, "
            f"{r.elapsed:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        results.append(r)
    text = report(results, opts, time.monotonic() - started)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 1 if any(r.problems(opts.rss_tolerance_kib) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
