"""The ``mbuspico`` command line.

* ``mbuspico decode`` reads binary or hex-text captures (one or many telegrams,
  garbage between them skipped and counted) and prints one reading per telegram.
* ``mbuspico read`` reads a meter on a serial port and prints its readings.
* ``mbuspico simulate`` runs a simulated meter on a pseudo-terminal (a DLMS push
  meter, or a DSMR P1 meter with ``--meter dsmr5|dsmr4|dsmr22|belgium|...``).
* ``mbuspico serve`` runs the MBusPico service (HTTP and UDP) next to the meter.
* ``mbuspico mbus ping|request|scan`` is a wired M-Bus master (EN 13757-2/-3);
  ``mbuspico simulate --meter mbus-slave`` simulates slaves for it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TextIO

from ._core import METERS, __version__
from .compat import to_mbuspico_json
from .errors import DecodeError, SerialPortError
from .profiles import PROFILES
from .serve.config import SETTINGS, _bool
from .simulate.p1 import ENCRYPTED_METERS, P1_METERS
from .types import DsmrReading, MbusReading, Reading

_SIMULATED_PROFILES: dict[str, str] = {
    p.name: p.simulator
    for p in PROFILES.values()
    if p.simulator is not None and p.name not in (*METERS, *P1_METERS)
}
"""Meter profiles ``simulate --meter`` accepts, and the simulator meter each plays."""

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbuspico",
        description="Read, decrypt and decode smart-meter telegrams.",
    )
    parser.add_argument("--version", action="version", version=f"mbuspico {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    decode = sub.add_parser(
        "decode",
        help="decode telegrams from files, standard input or --hex",
        description=(
            "Decode DLMS push telegrams (M-Bus framed, as Austrian meters send them) and "
            "wired M-Bus telegrams (EN 13757-3) from binary or hex-text captures. Prints "
            "one reading per telegram; garbage between telegrams is skipped and counted "
            "on standard error."
        ),
    )
    decode.add_argument(
        "--protocol",
        choices=("auto", "dlms", "mbus", "dsmr"),
        default="auto",
        help="auto (default) tells M-Bus from DLMS by the CI-field and DSMR P1 by its '/'",
    )
    decode.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="capture files, binary or hex text; '-' or nothing reads standard input",
    )
    decode.add_argument(
        "--hex",
        action="append",
        default=[],
        metavar="STRING",
        help=(
            "telegrams as a hex dump (repeatable): digits, pairs separated by spaces, "
            "':', '/', '-' or ',', 0x prefixes, or otb-iot's 'ok:68/4d/...' messages"
        ),
    )
    decode.add_argument(
        "--no-verify-checksum",
        dest="verify_checksum",
        action="store_false",
        help=(
            "decode each FILE or --hex as one telegram without checking wired M-Bus "
            "checksums or P1 CRCs (e.g. a published dump edited by hand)"
        ),
    )
    _key_arguments(decode)
    _format_argument(decode, xml=True)

    read = sub.add_parser(
        "read",
        help="read a meter on a serial port",
        description=(
            "Read DLMS push telegrams from a serial port (an M-Bus slave adapter on "
            "the meter's customer interface, or the port `mbuspico simulate` prints) "
            "and print one reading per telegram."
        ),
    )
    read.add_argument("port", help="serial device, e.g. /dev/ttyUSB0 or /dev/ttyAMA0")
    _key_arguments(read)
    read.add_argument(
        "--protocol",
        choices=("auto", "dlms", "mbus", "dsmr"),
        default="auto",
        help="dsmr for a P1 port; otherwise M-Bus framing (DLMS push, EN 13757-3)",
    )
    read.add_argument(
        "--baudrate",
        type=int,
        help="default the profile's, else 2400 (M-Bus) or 115200 (P1; 9600 for DSMR 2.2/3.0)",
    )
    read.add_argument(
        "--bytesize",
        type=int,
        choices=(7, 8),
        help="data bits (default the profile's, else 8); 7 for DSMR 2.2/3.0 P1 ports (9600 7E1)",
    )
    read.add_argument(
        "--parity",
        choices=("even", "none", "odd"),
        help="default even for M-Bus (8E1, the Netz NÖ interface), none for P1",
    )
    read.add_argument(
        "--tz", help="the P1 meter's time zone (default the profile's, else Europe/Amsterdam)"
    )
    read.add_argument("--count", type=int, metavar="N", help="stop after N readings")
    read.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop when no reading comes for this long"
    )
    read.add_argument(
        "--reconnect", action="store_true", help="retry when the port vanishes instead of failing"
    )
    _format_argument(read)

    sim = sub.add_parser(
        "simulate",
        help="run a simulated meter on a pseudo-terminal",
        description=(
            "Open a pseudo-terminal and write real encrypted telegrams to it, as the "
            "chosen meter sends them, with plausible evolving values. Prints the "
            "port to read. DSMR P1 meters (" + ", ".join(P1_METERS) + ") write "
            "spec-conformant P1 telegrams; only " + " and ".join(sorted(ENCRYPTED_METERS)) + " "
            "need --key."
        ),
    )
    sim.add_argument(
        "--meter",
        choices=(*METERS, *P1_METERS, *_SIMULATED_PROFILES, "mbus-slave"),
        default="kaifa-ma309m",
        help="a simulator meter or a meter profile that has one (README 'Supported meters')",
    )
    sim.add_argument(
        "--key",
        default=os.environ.get("MBUSPICO_DEVICE_KEY"),
        metavar="HEX",
        help="encryption key (default: $MBUSPICO_DEVICE_KEY)",
    )
    sim.add_argument(
        "--auth-key",
        metavar="HEX",
        help="authentication key: required by burgenland-e450 and steiermark-e450; "
        "encrypted P1 meters: default the Smarty's public one",
    )
    sim.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds between telegrams (default 5; P1 meters: 1 or 10 as the model sends)",
    )
    sim.add_argument(
        "--link",
        metavar="PATH",
        help=(
            "also make a symlink to the port at PATH, removed on exit; an existing PATH "
            "is replaced only if it is a symlink into /dev/pts (an earlier simulator's)"
        ),
    )
    sim.add_argument("--replay", metavar="FILE", help="replay the telegrams of a capture")
    sim.add_argument("--count", type=int, metavar="N", help="stop after N telegrams")
    sim.add_argument("--seed", type=int, help="seed for values and faults")
    sim.add_argument(
        "--garbage",
        type=float,
        default=0.0,
        metavar="RATE",
        help="probability per telegram of random bytes before it",
    )
    sim.add_argument(
        "--drop-byte",
        type=float,
        default=0.0,
        metavar="RATE",
        help="probability per byte of dropping it",
    )
    sim.add_argument(
        "--flip-bit",
        type=float,
        default=0.0,
        metavar="RATE",
        help="probability per byte of flipping a bit",
    )
    sim.add_argument(
        "--split", action="store_true", help="write in random small chunks with random delays"
    )
    _mbus_arguments(sub, sim)

    serve = sub.add_parser(
        "serve",
        help="serve the latest reading over HTTP and UDP, as MBusPico does",
        description=(
            "Read the meter and serve the latest reading: HTTP (MBusPico's JSON on /, "
            "/api/reading, /api/status, /status.html) and UDP. Settings come from "
            "MBusPico's environment variables, a TOML file (--config) and these flags; "
            "flags override the file, the file overrides the environment. "
            "--demo serves a simulated meter; where no flag, environment variable or "
            "file sets them, it listens on 127.0.0.1 port 8080 with mDNS off. "
            "A bad setting is one line naming it and its source, exit status 2."
        ),
    )
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve.add_argument(
        "--demo",
        action="store_true",
        help=(
            "serve a simulated meter on a pseudo-terminal; unless a flag, the environment "
            "or the file sets them: HTTP on 127.0.0.1 port 8080, no mDNS"
        ),
    )
    for setting in SETTINGS:
        if setting.parse is _bool:
            serve.add_argument(
                setting.flag,
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{setting.help} (env {setting.env})",
            )
        else:
            serve.add_argument(
                setting.flag,
                dest=setting.name,
                default=None,
                metavar="VALUE",
                help=f"{setting.help} (env {setting.env}, TOML {setting.toml})",
            )
    return parser


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=os.environ.get("MBUSPICO_DEVICE_KEY"),
        metavar="HEX",
        help="the meter's 32-hex-digit encryption key (default: $MBUSPICO_DEVICE_KEY)",
    )
    parser.add_argument(
        "--auth-key",
        default=os.environ.get("MBUSPICO_DEVICE_AUTH_KEY"),
        metavar="HEX",
        help="authentication key, for telegrams with a tag (default: $MBUSPICO_DEVICE_AUTH_KEY)",
    )
    parser.add_argument(
        "--profile",
        default=os.environ.get("MBUSPICO_DEVICE") or "auto",
        metavar="NAME",
        help=(
            "meter profile (README 'Supported meters'; e.g. wienernetze-im350, "
            "burgenland-e450): its serial settings and checks; default $MBUSPICO_DEVICE "
            "or auto (detect from the bytes)"
        ),
    )
    parser.add_argument(
        "--no-verify-tag",
        dest="verify_tag",
        action="store_false",
        help="decrypt tagged telegrams without checking the tag (no authentication key)",
    )


def _format_argument(parser: argparse.ArgumentParser, *, xml: bool = False) -> None:
    choices = (
        ("json", "mbuspico", "table", "xml", "xml-normalized")
        if xml
        else (
            "json",
            "mbuspico",
            "table",
        )
    )
    parser.add_argument(
        "--format",
        choices=choices,
        default="json",
        help="json: one object per line (default); mbuspico: MBusPico's JSON (DLMS); "
        "table: readable text" + ("; xml, xml-normalized: libmbus's XML (M-Bus)" if xml else ""),
    )


def _sources(
    args: argparse.Namespace, stdin: BinaryIO
) -> Iterator[tuple[str, bytes | DecodeError]]:
    """Each source's bytes: --hex as Decoder.decode parses text, files by capture_bytes."""
    from ._core import parse_hex
    from .capture import capture_bytes

    for i, text in enumerate(args.hex, 1):
        try:
            # A P1 telegram as text is its own bytes, as for Decoder.decode.
            yield f"--hex #{i}", text.encode() if text.startswith("/") else parse_hex(text)
        except DecodeError as e:
            yield f"--hex #{i}", e
    files: list[str] = args.files or ([] if args.hex else ["-"])
    for name in files:
        if name == "-":
            yield "<stdin>", capture_bytes(stdin.read())
        else:
            with open(name, "rb") as f:
                yield name, capture_bytes(f.read())


def _telegrams(data: bytes, log: TextIO, name: str, protocol: str = "auto") -> list[bytes]:
    from .capture import split_telegrams

    telegrams, stats = split_telegrams(data, protocol)
    if stats is not None and stats["bytes_skipped"]:
        print(
            f"mbuspico: {name}: skipped {stats['bytes_skipped']} byte(s) outside verified "
            f"telegrams ({stats['bad_checksums']} bad checksum(s), "
            f"{stats['incomplete_telegrams']} incomplete telegram(s))",
            file=log,
        )
    return telegrams


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _table(reading: Reading) -> str:
    title = reading["systemTitle"]
    head = [
        f"meter {reading['meterNumber'] or '?'}   {reading['timestamp'] or 'no clock'}",
    ]
    if title is not None:
        head.append(f"system title {title}   frame counter {reading['frameCounter']}")
    names = {
        "1-0:1.7.0": "activePowerPlus",
        "1-0:2.7.0": "activePowerMinus",
        "1-0:1.8.0": "activeEnergyPlus",
        "1-0:2.8.0": "activeEnergyMinus",
        "1-0:3.8.0": "reactiveEnergyPlus",
        "1-0:4.8.0": "reactiveEnergyMinus",
        "1-0:32.7.0": "voltageL1",
        "1-0:52.7.0": "voltageL2",
        "1-0:72.7.0": "voltageL3",
        "1-0:31.7.0": "currentL1",
        "1-0:51.7.0": "currentL2",
        "1-0:71.7.0": "currentL3",
        "1-0:13.7.0": "powerFactor",
        "0-0:1.0.0": "clock",
        "0-0:96.1.0": "meterNumber",
        "0-0:42.0.0": "logical device name",
    }
    rows = [
        (code, _format_value(v["value"]), v["unit"] or "", names.get(code, ""))
        for code, v in reading["obis"].items()
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    lines = [
        f"  {c:<{widths[0]}}  {v:>{widths[1]}} {u:<{widths[2]}}  {n}".rstrip()
        for c, v, u, n in rows
    ]
    return "\n".join(head + lines) + "\n"


def _mbus_table(reading: MbusReading) -> str:
    head = (
        f"{reading['manufacturer'] or '?'} {reading['id'] or '?'}  "
        f"{reading['productName'] or ''}  {reading['medium'] or ''}".rstrip()
    )
    if reading["error"] is not None:
        return (
            f"{head}\n  application error {reading['error']['code']}: {reading['error']['text']}\n"
        )
    rows = [
        (
            str(i),
            r["quantity"] or "?",
            _format_value(r["value"]),
            r["unit"] or "",
            r["function"]
            if r["storageNumber"] == 0
            else f"{r['function']}, storage {r['storageNumber']}",
        )
        for i, r in enumerate(reading["records"])
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = [
        f"  {n:>{widths[0]}}  {q:<{widths[1]}}  {v:>{widths[2]}} {u:<{widths[3]}}  {f}".rstrip()
        for n, q, v, u, f in rows
    ]
    return "\n".join([head, *lines]) + "\n"


def _dsmr_table(reading: DsmrReading) -> str:
    head = f"{reading['header']}   {reading['timestamp'] or 'no clock'}   crc {reading['crc']}"
    rows = [
        (code, _format_value(v["value"]), v["unit"] or "", v["name"] or "")
        for code, v in reading["obis"].items()
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    lines = [
        f"  {c:<{widths[0]}}  {v:>{widths[1]}} {u:<{widths[2]}}  {n}".rstrip()
        for c, v, u, n in rows
    ]
    return "\n".join([head, *lines]) + "\n"


def _print(
    reading: Reading | MbusReading | DsmrReading,
    fmt: str,
    out: TextIO,
    telegram: bytes,
    verify_checksum: bool = True,
) -> None:
    if fmt == "json":
        out.write(json.dumps(reading, ensure_ascii=False) + "\n")
    elif fmt in ("xml", "xml-normalized"):
        if reading["protocol"] != "mbus":
            msg = "the xml formats are for wired M-Bus telegrams (libmbus's XML)"
            raise DecodeError(msg, 0, "format")
        from .mbus import to_xml

        normalized = fmt == "xml-normalized"
        out.write(to_xml(telegram, normalized=normalized, verify_checksum=verify_checksum))
    elif reading["protocol"] == "dsmr":
        if fmt == "mbuspico":  # P1 readings carry MBusPico's fields too
            out.write(to_mbuspico_json(reading) + "\n")
        else:
            out.write(_dsmr_table(reading) + "\n")
    elif reading["protocol"] == "mbus":
        if fmt == "mbuspico":
            msg = "the mbuspico format is for DLMS and P1 readings (MBusPico's JSON)"
            raise DecodeError(msg, 0, "format")
        out.write(_mbus_table(reading) + "\n")
    elif fmt == "mbuspico":
        out.write(to_mbuspico_json(reading) + "\n")
    else:
        out.write(_table(reading) + "\n")


def _decode(args: argparse.Namespace, out: TextIO, log: TextIO, stdin: BinaryIO) -> int:
    from ._core import Decoder

    try:
        decoder = Decoder(
            args.key,
            auth_key=args.auth_key,
            protocol=args.protocol,
            profile=args.profile,
            verify_tag=args.verify_tag,
            verify_checksum=args.verify_checksum,
            verify_crc=args.verify_checksum,
        )
    except (ValueError, TypeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    decoded = failed = 0
    for name, data in _sources(args, stdin):
        if isinstance(data, DecodeError):
            failed += 1
            print(f"mbuspico: {name}: {data}", file=log)
            continue
        # Unchecked frames cannot be found in a stream: the source is one telegram.
        telegrams = _telegrams(data, log, name, args.protocol) if args.verify_checksum else []
        if not telegrams:
            if args.verify_checksum:
                print(f"mbuspico: {name}: no telegram found ({len(data)} bytes)", file=log)
            if data:
                # Decoded whole, its error says what is wrong (e.g. a stale checksum).
                telegrams = [data]
        for i, telegram in enumerate(telegrams, 1):
            try:
                reading = decoder.decode(telegram)
                _print(reading, args.format, out, telegram, args.verify_checksum)
            except DecodeError as e:
                failed += 1
                print(f"mbuspico: {name}: telegram {i}: {e}", file=log)
                continue
            decoded += 1
    if not decoded:
        print("mbuspico: no decodable telegram", file=log)
        return 1
    return 1 if failed else 0


def _read(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    from ._core import SerialReader

    try:
        reader = SerialReader(
            args.port,
            key=args.key,
            auth_key=args.auth_key,
            protocol=args.protocol,
            profile=args.profile,
            verify_tag=args.verify_tag,
            baudrate=args.baudrate,
            parity=args.parity,
            bytesize=args.bytesize,
            tz=args.tz,
            timeout=args.timeout,
            reconnect=args.reconnect,
        )
    except (ValueError, TypeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    except SerialPortError as e:
        print(f"mbuspico: {e}", file=log)
        return 1
    count = 0
    with reader:
        for reading in reader:
            _print(reading, args.format, out, b"")
            out.flush()
            count += 1
            if args.count is not None and count >= args.count:
                break
    stats = reader.stats
    if stats["decode_errors"] or stats["decryption_errors"] or stats["bytes_skipped"]:
        print(f"mbuspico: {stats}", file=log)
    if count == 0:
        print(f"mbuspico: no reading from {args.port}", file=log)
        return 1
    return 0


def _simulate(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    args.meter = _SIMULATED_PROFILES.get(args.meter, args.meter)
    if args.meter == "mbus-slave":
        return _simulate_mbus_slave(args, out, log)
    if args.meter in P1_METERS:
        return _simulate_p1(args, out, log)
    from .simulate.dlms import Simulator

    if not args.key:
        print("mbuspico: simulate needs --key (or $MBUSPICO_DEVICE_KEY)", file=log)
        return 2
    try:
        sim = Simulator(
            args.meter,
            key=args.key,
            auth_key=args.auth_key,
            interval=5.0 if args.interval is None else args.interval,
            **_faults(args),
        )
    except (ValueError, TypeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    return _run_simulator(sim, args, out, log)


def _faults(args: argparse.Namespace) -> dict[str, Any]:
    """The simulators' common options: replay, fault injection, seed."""
    return {
        "link": args.link,
        "replay": args.replay,
        "garbage": args.garbage,
        "drop_byte": args.drop_byte,
        "flip_bit": args.flip_bit,
        "split": args.split,
        "seed": args.seed,
    }


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Make SIGTERM raise ``SystemExit(143)`` while inside, so ``with`` blocks close.

    A simulator so removes its ``--link``; the old handler is restored after.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can be set in the main thread only
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run_simulator(sim: Any, args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    """Open the pty, say where, write telegrams until Ctrl-C, SIGTERM or ``--count``."""
    from .simulate.pty import LinkExistsError

    try:
        with _terminate_cleanly(), sim:
            print(f"simulated {args.meter} meter on {args.link or sim.port}", file=out, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                sim.run(args.count)
    except LinkExistsError as e:  # --link would replace something not ours
        print(f"mbuspico: --link {e}", file=log)
        return 2
    return 0


def _simulate_p1(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    """``simulate --meter dsmr5|...``: a DSMR P1 meter (a key only for the encrypted ones)."""
    from .simulate.p1 import PROFILES, P1Simulator

    encrypted = args.meter in ENCRYPTED_METERS
    if encrypted and not args.key:
        print(f"mbuspico: simulate --meter {args.meter} needs --key", file=log)
        return 2
    try:
        sim = P1Simulator(
            args.meter,
            key=args.key if encrypted else None,
            auth_key=args.auth_key if encrypted else None,
            interval=PROFILES[args.meter].interval if args.interval is None else args.interval,
            **_faults(args),
        )
    except (ValueError, TypeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    return _run_simulator(sim, args, out, log)


def _serve(args: argparse.Namespace, log: TextIO) -> int:
    import logging

    from .serve import BurstFilter, ConfigError, Service, load_config, set_log_level

    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    try:
        config = load_config(os.environ, args.config, flags, demo=args.demo)
    except ConfigError as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=log,
    )
    set_log_level(config.log_level)
    logging.getLogger("mbuspico").addFilter(BurstFilter())
    try:
        Service(config).run()
    except OSError as e:  # e.g. the HTTP port is taken or needs privileges
        print(f"mbuspico: {e}", file=log)
        return 1
    return 0


def _mbus_arguments(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], sim: argparse.ArgumentParser
) -> None:
    """The ``mbus`` command and the ``simulate --meter mbus-slave`` options."""
    mbus = sub.add_parser(
        "mbus",
        help="talk to wired M-Bus slaves as the bus master",
        description=(
            "Wired M-Bus master (EN 13757-2/-3) on a level converter: ping a slave "
            "(SND_NKE), request its data (REQ_UD2, every telegram), or scan the bus "
            "by primary address or, with --secondary, by secondary address."
        ),
    )
    mbus.add_argument("action", choices=("ping", "request", "scan"))
    mbus.add_argument("--port", required=True, help="serial device of the level converter")
    target = mbus.add_mutually_exclusive_group()
    target.add_argument("--address", type=int, metavar="N", help="primary address 0-250 (254: any)")
    target.add_argument(
        "--secondary",
        nargs="?",
        const="FFFFFFFFFFFFFFFF",
        metavar="ID",
        help="secondary address IIIIIIIIMMMMVVDD (F = wildcard) or 8 ID digits; "
        "scan --secondary [PATTERN] searches by secondary address",
    )
    mbus.add_argument("--baudrate", type=int, default=2400, help="default 2400")
    mbus.add_argument("--parity", choices=("even", "none", "odd"), default="even")
    mbus.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="answer timeout (default: by baud rate)"
    )
    mbus.add_argument("--retries", type=int, default=3, help="retries per request (default 3)")
    mbus.add_argument(
        "--format",
        choices=("json", "xml"),
        default="json",
        help="request: the merged reading as JSON (default) or libmbus's XML",
    )
    sim.add_argument(
        "--frames",
        metavar="PATH",
        help="mbus-slave: RSP_UD frames to answer with (.hex file or a directory of them)",
    )
    sim.add_argument("--address", type=int, metavar="N", help="mbus-slave: primary address")
    sim.add_argument("--secondary", metavar="ID", help="mbus-slave: secondary address")
    sim.add_argument("--baudrate", type=int, default=2400, help="mbus-slave: line speed")
    sim.add_argument("--echo", action="store_true", help="mbus-slave: echo every request")


def _mbus(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    from .errors import CollisionError, NoResponseError
    from .master import MBusMaster

    target: int | str | None = args.secondary if args.secondary is not None else args.address
    if args.action != "scan" and target is None:
        print(f"mbuspico: mbus {args.action} needs --address or --secondary", file=log)
        return 2
    try:
        master = MBusMaster(
            args.port, args.baudrate, args.timeout, retries=args.retries, parity=args.parity
        )
    except (ValueError, TypeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    try:
        with master:
            if args.action == "ping":
                ok = (
                    master.select(target, retries=args.retries)
                    if isinstance(target, str)
                    else master.ping(int(target or 0))
                )
                print(f"{target}: {'E5' if ok else 'no answer'}", file=out)
                return 0 if ok else 1
            if args.action == "request":
                assert target is not None  # noqa: S101 - checked above
                if args.format == "xml":
                    from .mbus import to_xml

                    out.write(to_xml(master.request_frames(target)))
                else:
                    out.write(json.dumps(master.request(target), ensure_ascii=False) + "\n")
                return 0
            found: list[int] | list[str] = (
                master.scan_secondary(args.secondary)
                if args.secondary is not None
                else master.scan_primary()
            )
            if args.format == "json":
                out.write(json.dumps(found) + "\n")
            else:
                out.write("".join(f"{a}\n" for a in found))
            return 0 if found else 1
    except (NoResponseError, CollisionError, DecodeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 1
    except ValueError as e:
        print(f"mbuspico: {e}", file=log)
        return 2


def _simulate_mbus_slave(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    from .simulate.mbus_slave import MBusSlave, SlaveMeter

    if not args.frames:
        print("mbuspico: simulate --meter mbus-slave needs --frames", file=log)
        return 2
    try:
        meter = SlaveMeter(args.frames, address=args.address, secondary=args.secondary)
    except (ValueError, OSError) as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    from .simulate.pty import LinkExistsError

    bus = MBusSlave(meter, baudrate=args.baudrate, echo=args.echo, link=args.link)
    try:
        with _terminate_cleanly(), bus:
            print(
                f"simulated M-Bus slave {meter.address} ({meter.secondary}) on "
                f"{args.link or bus.port}",
                file=out,
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                bus.run()
    except LinkExistsError as e:  # --link would replace something not ours
        print(f"mbuspico: --link {e}", file=log)
        return 2
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    log: TextIO | None = None,
    stdin: BinaryIO | None = None,
) -> int:
    """Run the command line; returns the exit status.

    Exit status: 0 when every telegram found decoded; 1 when none decoded or some
    failed (each failure is reported on standard error); 2 for usage errors.
    """
    args = _build_parser().parse_args(argv)
    out = out or sys.stdout
    log = log or sys.stderr
    stdin = stdin or sys.stdin.buffer
    try:
        if args.command == "decode":
            return _decode(args, out, log, stdin)
        if args.command == "read":
            return _read(args, out, log)
        if args.command == "simulate":
            return _simulate(args, out, log)
        if args.command == "mbus":
            return _mbus(args, out, log)
        if args.command == "serve":
            return _serve(args, log)
    except KeyboardInterrupt:
        return 130  # the shell's status for SIGINT; no traceback for Ctrl-C
    except SerialPortError as e:
        print(f"mbuspico: {e}", file=log)
        return 1
    except OSError as e:
        print(f"mbuspico: {e}", file=log)
        return 1
    return 2  # pragma: no cover - argparse requires a command
