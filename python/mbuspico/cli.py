"""The ``mbuspico`` command line.

* ``mbuspico decode`` reads binary or hex-text captures (one or many telegrams,
  garbage between them skipped and counted) and prints one reading per telegram.
* ``mbuspico read`` reads a meter on a serial port and prints its readings.
* ``mbuspico simulate`` runs a simulated meter on a pseudo-terminal (a DLMS push
  meter, or a DSMR P1 meter with ``--meter dsmr5|dsmr4|dsmr22|belgium|...``).
* ``mbuspico serve`` runs the MBusPico service (HTTP and UDP) next to the meter.
* ``mbuspico mbus ping|request|scan`` is a wired M-Bus master (EN 13757-2/-3);
  ``mbuspico simulate --meter mbus-slave`` simulates slaves for it.
* ``mbuspico history export|info`` reads the history ``mbuspico serve`` records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, NoReturn, TextIO

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

_KEY_ENV = {"key": "MBUSPICO_DEVICE_KEY", "auth_key": "MBUSPICO_DEVICE_AUTH_KEY"}
"""The environment variables the key options default to."""

_PROTOCOLS = (
    "DLMS push telegrams (M-Bus framed as the Austrian meters send them, or in HDLC "
    "frames), wired M-Bus telegrams (EN 13757-3) and DSMR P1 telegrams (plain text, "
    "or encrypted as the Luxembourg Smarty sends them)"
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on standard error."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: <message> (see <prog> --help)``, exit with status 2."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mbuspico",
        description="Read, decrypt and decode smart-meter telegrams.",
    )
    parser.add_argument("--version", action="version", version=f"mbuspico {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    decode = sub.add_parser(
        "decode",
        help="decode telegrams from files, standard input or --hex",
        description=(
            f"Decode {_PROTOCOLS} from binary or hex-text captures and P1 text. Prints "
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
            f"Read {_PROTOCOLS} from a serial port (an M-Bus slave adapter on the "
            "meter's customer interface, a P1 cable, an optical head, or the port "
            "`mbuspico simulate` prints) and print one reading per telegram. With "
            "--protocol auto the first verified telegram tells M-Bus/HDLC framing "
            "from P1; when none comes, a line on standard error says what the port "
            "sent (after 10 seconds, or at --timeout). Wired M-Bus meters that must "
            "be polled are read with `mbuspico mbus request`."
        ),
    )
    read.add_argument("port", help="serial device, e.g. /dev/ttyUSB0 or /dev/ttyAMA0")
    _key_arguments(read)
    read.add_argument(
        "--protocol",
        choices=("auto", "dlms", "mbus", "dsmr"),
        default="auto",
        help=(
            "auto (default): recognise M-Bus/HDLC framing (DLMS push, EN 13757-3) or P1 "
            "from the first telegram; dlms, mbus: M-Bus/HDLC framing only; dsmr: a P1 port"
        ),
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
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop when no reading comes for this long (exit status 1 if none came)",
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
    _history_arguments(sub)
    sub.add_parser(
        "systemd-unit",
        help="print the systemd unit for mbuspico serve",
        description=(
            "Print the systemd unit shipped in the package, its ExecStart= naming this "
            "mbuspico; its comments say how to install it."
        ),
    )
    return parser


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        metavar="HEX",
        help="the meter's 32-hex-digit encryption key (default: $MBUSPICO_DEVICE_KEY)",
    )
    parser.add_argument(
        "--auth-key",
        metavar="HEX",
        help="authentication key, for telegrams with a tag (default: $MBUSPICO_DEVICE_AUTH_KEY)",
    )
    parser.add_argument(
        "--profile",
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
        help="json: one object per line (default); mbuspico: MBusPico's JSON (DLMS and P1 "
        "readings; not wired M-Bus); "
        "table: readable text" + ("; xml, xml-normalized: libmbus's XML (M-Bus)" if xml else ""),
    )


def _from_environment(args: argparse.Namespace) -> None:
    """Fill ``--key``, ``--auth-key`` and ``--profile`` from the environment.

    Only where not given; ``args.source`` remembers where each came from, for messages.
    """
    args.source = {}
    names = {
        "decode": ("key", "auth_key", "profile"),
        "read": ("key", "auth_key", "profile"),
        "simulate": ("key",),  # its --auth-key has no variable
    }.get(args.command, ())
    if args.command == "simulate":
        args.source["auth_key"] = "--auth-key"
    for name, env in (*_KEY_ENV.items(), ("profile", "MBUSPICO_DEVICE")):
        if name not in names:
            continue
        flag = "--" + name.replace("_", "-")
        if getattr(args, name) is not None:
            args.source[name] = flag
        elif os.environ.get(env):
            setattr(args, name, os.environ[env])
            args.source[name] = env
        else:
            args.source[name] = flag
    if getattr(args, "profile", "") is None:
        args.profile = "auto"


def _usage(e: Exception, args: argparse.Namespace) -> str:
    """A constructor's ValueError as one line naming the option or variable at fault."""
    import re

    text = str(e)
    source: dict[str, str] = getattr(args, "source", {})
    for name in ("auth_key", "key"):  # "auth_key must be ...", "key must be ..."
        if text.startswith(f"{name} ") and name in source:
            return f"{source[name]} {text[len(name) + 1 :]}"
    if text.startswith("unknown meter profile") and "profile" in source:
        return f"{source['profile']}: {text}"
    # "garbage must be a probability ...", "retries must be >= 0": the option's name.
    option = re.match(r"(\w+) must ", text)
    if option is not None and hasattr(args, option[1]):
        return f"--{option[1].replace('_', '-')}{text[len(option[1]) :]}"
    return text


def _explain(e: DecodeError, args: argparse.Namespace, *, checked: bool = False) -> str:
    """A decoding error as one line that says what to do about it.

    Key problems name the option or variable the key came from; ``checked``:
    a checksum failed that ``--no-verify-checksum`` would let pass.
    """
    import re

    source: dict[str, str] = getattr(args, "source", {})
    key = source.get("key", "--key")
    key = "--key (or $MBUSPICO_DEVICE_KEY)" if key == "--key" else f"${key}"
    auth = source.get("auth_key", "--auth-key")
    auth = "--auth-key (or $MBUSPICO_DEVICE_AUTH_KEY)" if auth == "--auth-key" else f"${auth}"
    text = re.sub(r" at byte \d+$", "", e.message)
    if e.kind == "missing_key":
        return f"{text}: give it with {key}"
    if e.kind == "missing_auth_key":
        return f"{text}: give it with {auth}, or --no-verify-tag to skip the check"
    if e.kind == "implausible_plaintext":
        return (
            f"the telegram does not decrypt to a data-notification with this key: wrong key? "
            f"check {key}"
        )
    if e.kind == "authentication_failed":
        return (
            f"{text}: check {key} and {auth} (--no-verify-tag decrypts without the "
            "authentication check)"
        )
    if e.kind == "missing_tag":
        return text.replace("verify_tag=False", "--no-verify-tag")
    if checked and e.kind in ("checksum", "crc16", "hdlc_crc"):
        return f"{e} (--no-verify-checksum decodes it anyway)"
    return str(e)


def _sources(
    args: argparse.Namespace, stdin: BinaryIO
) -> Iterator[tuple[str, bytes, bytes | Exception]]:
    """Each source's name, raw bytes and telegram bytes (or why there are none).

    --hex as Decoder.decode parses text, files by capture_bytes.
    """
    from ._core import parse_hex
    from .capture import capture_bytes

    for i, text in enumerate(args.hex, 1):
        try:
            # A P1 telegram as text is its own bytes, as for Decoder.decode.
            data = text.encode() if text.startswith("/") else parse_hex(text)
            yield f"--hex #{i}", text.encode(), data
        except DecodeError as e:
            yield f"--hex #{i}", text.encode(), e
    files: list[str] = args.files or ([] if args.hex else ["-"])
    for name in files:
        if name == "-":
            raw = stdin.read()
            yield "<stdin>", raw, capture_bytes(raw)
            continue
        try:
            with open(name, "rb") as f:
                raw = f.read()
        except OSError as e:
            yield name, b"", e
            continue
        yield name, raw, capture_bytes(raw)


def _telegrams(data: bytes, log: TextIO, name: str, protocol: str = "auto") -> list[bytes]:
    from .capture import split_telegrams

    telegrams, stats = split_telegrams(data, protocol)
    if telegrams and stats is not None and stats["bytes_skipped"]:
        print(
            f"mbuspico: {name}: skipped {stats['bytes_skipped']} byte(s) outside verified "
            f"telegrams ({stats['bad_checksums']} bad checksum(s), "
            f"{stats['incomplete_telegrams']} incomplete telegram(s))",
            file=log,
        )
    return telegrams


def _nothing_found(raw: bytes, data: bytes, decoder: Any, args: argparse.Namespace) -> str:
    """Why a source holds no verified telegram, in one line.

    "" when the whole source decodes as one telegram (a raw APDU, say).
    """
    from ._core import parse_hex

    size = f"{len(data):,} byte{'s' if len(data) != 1 else ''}"
    stripped = raw.strip()
    text = bool(stripped) and all(b in b"\t\n\r" or 0x20 <= b < 0x7F for b in stripped)
    if text and data == raw and not stripped.startswith(b"/"):
        try:
            parse_hex(stripped.decode("ascii"))
            why = "hex, but no telegram in it,"
        except DecodeError as e:
            why = f"not hex ({str(e).removeprefix('not hexadecimal text: ')})"
        return (
            f"no telegram found: {size} of text, {why} and no P1 telegram ('/' ... '!'): "
            "give a binary capture, a hex dump of the telegrams, or P1 text"
        )
    try:
        decoder.decode(data)
    except DecodeError as e:
        if e.kind in ("unknown_framing", "empty"):
            return (
                f"no telegram found in {size}: no M-Bus long frame (68 L L 68 ... 16), HDLC "
                "frame (7E A0 ... 7E) or P1 telegram ('/' ... '!') verifies; is this a "
                "capture of the meter's interface?"
            )
        return (
            f"no telegram found in {size}; decoded as one telegram: "
            f"{_explain(e, args, checked=True)}"
        )
    return ""


def _which(numbers: list[int]) -> str:
    """``telegram 3``, ``telegrams 1, 2 and 5``, ``telegrams 1, 2, 3 and 7 more``."""
    if len(numbers) == 1:
        return f"telegram {numbers[0]}"
    if len(numbers) <= 3:
        return f"telegrams {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"
    return f"telegrams {', '.join(map(str, numbers[:3]))} and {len(numbers) - 3} more"


def _format_conflict(args: argparse.Namespace) -> str | None:
    """An output format the protocol or profile chosen cannot give, as a usage error."""
    protocol = args.protocol
    profile = PROFILES.get(args.profile)
    if protocol == "auto" and profile is not None:
        protocol = profile.protocol
    if args.format == "mbuspico" and protocol == "mbus":
        return (
            "--format mbuspico is MBusPico's JSON of DLMS and P1 readings; wired M-Bus "
            "readings: --format json or table"
        )
    if args.format in ("xml", "xml-normalized") and protocol in ("dlms", "dsmr"):
        return (
            f"--format {args.format} is libmbus's XML of wired M-Bus telegrams, not of "
            f"{protocol} ones: use --format json, table or mbuspico"
        )
    return None


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
    from .names import OBIS_FIELDS, label_of

    # The field name (MBusPico's) and the label of mbuspico.names, as on the pages.
    rows = [
        (
            code,
            _format_value(v["value"]),
            v["unit"] or "",
            OBIS_FIELDS.get(code, ""),
            label_of(code),
        )
        for code, v in reading["obis"].items()
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = [
        f"  {c:<{widths[0]}}  {v:>{widths[1]}} {u:<{widths[2]}}  {f:<{widths[3]}}  {n}".rstrip()
        for c, v, u, f, n in rows
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
            msg = (
                "the xml formats are for wired M-Bus telegrams (libmbus's XML), not "
                f"{reading['protocol']} ones: use --format json, table or mbuspico"
            )
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
            msg = (
                "--format mbuspico is MBusPico's JSON of DLMS and P1 readings, not of wired "
                "M-Bus ones: use --format json or table"
            )
            raise DecodeError(msg, 0, "format")
        out.write(_mbus_table(reading) + "\n")
    elif fmt == "mbuspico":
        out.write(to_mbuspico_json(reading) + "\n")
    else:
        out.write(_table(reading) + "\n")


def _decode(args: argparse.Namespace, out: TextIO, log: TextIO, stdin: BinaryIO) -> int:
    from ._core import Decoder

    conflict = _format_conflict(args)
    if conflict is not None:
        print(f"mbuspico: {conflict}", file=log)
        return 2
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
        print(f"mbuspico: {_usage(e, args)}", file=log)
        return 2
    decoded = failed = 0
    for name, raw, data in _sources(args, stdin):
        if isinstance(data, OSError):
            failed += 1
            print(f"mbuspico: {name}: {data.strerror or data}", file=log)
            continue
        if isinstance(data, Exception):
            failed += 1
            print(f"mbuspico: {name}: {data}", file=log)
            continue
        if not data:
            failed += 1
            what = "empty" if not raw.strip() else "no bytes in it"
            print(
                f"mbuspico: {name}: {what}: give a capture of the meter's telegrams "
                "(binary or hex text) or P1 text",
                file=log,
            )
            continue
        # Unchecked frames cannot be found in a stream: the source is one telegram.
        telegrams = _telegrams(data, log, name, args.protocol) if args.verify_checksum else []
        if not telegrams and args.verify_checksum:
            # One line on what the source holds; decoded whole when that may work.
            why = _nothing_found(raw, data, decoder, args)
            if why:
                failed += 1
                print(f"mbuspico: {name}: {why}", file=log)
                continue
        errors: dict[str, list[int]] = {}
        for i, telegram in enumerate(telegrams or [data], 1):
            try:
                reading = decoder.decode(telegram)
                _print(reading, args.format, out, telegram, args.verify_checksum)
            except DecodeError as e:
                errors.setdefault(_explain(e, args), []).append(i)
                continue
            decoded += 1
        for why, numbers in errors.items():
            failed += len(numbers)
            print(f"mbuspico: {name}: {_which(numbers)}: {why}", file=log)
    return 1 if failed or not decoded else 0


_CHECK_NAME = "check the device name (ls /dev/serial/by-id/)"

_HINT_AFTER = 10.0
"""Seconds without a reading after which ``read`` says what the port sent."""


def _busy(port: str) -> str:
    """The port is taken: the reader opens it exclusively (TIOCEXCL and flock)."""
    return (
        f"serial port {port} is busy: another program has it open (another mbuspico "
        "read, serve or mbus?); stop that one first"
    )


class _Dropped(logging.Handler):
    """The reader's warnings during ``read``.

    A dropped telegram is said only once a reading came (before that, the
    final line sums them up); other warnings at once.
    """

    def __init__(self, port: str, log: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.port, self.log, self.live = port, log, False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.live or not message.startswith("dropped a telegram"):
            print(f"mbuspico: {self.port}: {message}", file=self.log, flush=True)


@contextlib.contextmanager
def _reader_warnings(port: str, log: TextIO) -> Iterator[_Dropped]:
    logger = logging.getLogger("mbuspico")
    handler = _Dropped(port, log)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _no_reading(reader: Any, args: argparse.Namespace, seconds: float) -> str:
    """What the port sent when no reading came, in one line, with what to try."""
    stats, seen, error = reader.stats, reader.seen, reader.last_error
    port = args.port
    line = f"{reader.baudrate} Bd {reader.bytesize}{reader.parity[0].upper()}1"
    failed = stats["decode_errors"] + stats["decryption_errors"]
    if failed and error is not None:
        many = "s" if failed != 1 else ""
        why = f"{port}: {failed} telegram{many}, none decoded: {_explain(error, args)}"
        if reader.framing == "dsmr" and seen["text"] < 0.5 * seen["bytes"]:
            why += " — binary bytes on a P1 port: an M-Bus or HDLC meter? try --protocol auto"
        return why
    n = seen["bytes"]
    if n == 0 and not reader.connected:  # --reconnect: it never opened
        return f"{port}: not open after {seconds:.0f} s of retrying: {_CHECK_NAME}"
    if n == 0:
        return (
            f"{port}: no bytes in {seconds:.0f} s: is the meter connected and its interface "
            "enabled (a P1 port sends only while its data-request line is powered)?"
        )
    size = f"{n:,} byte{'s' if n != 1 else ''}, no telegram"
    bad = stats["bad_checksums"]
    if seen["text"] >= 0.9 * n:
        if reader.framing == "mbus":  # --protocol dlms or mbus
            return (
                f"{port}: {size}: ASCII text at {line} looks like a P1 port — try "
                "--protocol dsmr --baudrate 115200 --parity none"
            )
        crc = f" ({bad} failed their CRC)" if bad else ""
        return (
            f"{port}: {size}: ASCII text at {line}, but no P1 telegram ('/' ... '!CRC') "
            f"passed its checks{crc} — is this a meter's P1 port?"
        )
    if seen["text"] + seen["text7"] >= 0.9 * n and seen["text7"] >= 0.1 * n:
        return (
            f"{port}: {size}: 7-bit text with a parity bit at {line} looks like a DSMR "
            "2.2/3.0 P1 port — try --protocol dsmr --baudrate 9600 --bytesize 7 --parity even"
        )
    checks = f" ({bad} frames failed their checksum: the parity?)" if bad else ""
    return (
        f"{port}: {size}: binary bytes but no valid frame at {line}{checks}: check the baud "
        "rate (M-Bus meters send at 2400 8E1, HDLC optical ports 9600 8N1, P1 ports "
        "115200 8N1) with --baudrate and --parity"
    )


def _read_summary(reader: Any, count: int) -> str | None:
    """One line on what went wrong while readings came, or None."""
    s = reader.stats
    failed = s["decode_errors"] + s["decryption_errors"]
    if not failed and not s["bad_checksums"]:
        return None
    return (
        f"{reader.port}: {count} reading{'s' if count != 1 else ''}; {failed} telegram(s) "
        f"did not decode, {s['bad_checksums']} frame(s) failed their checksum, "
        f"{s['bytes_skipped']:,} byte(s) skipped"
    )


def _read(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    conflict = _format_conflict(args)
    if conflict is not None:
        print(f"mbuspico: {conflict}", file=log)
        return 2
    with _reader_warnings(args.port, log) as warnings:
        return _read_port(args, out, log, warnings)


def _read_port(args: argparse.Namespace, out: TextIO, log: TextIO, warnings: _Dropped) -> int:
    import time

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
        print(f"mbuspico: {_usage(e, args)}", file=log)
        return 2
    except SerialPortError as e:
        print(f"mbuspico: {_serial_error(e, args.port)}", file=log)
        return 1
    count = 0
    start = time.monotonic()
    hinted = False
    with reader:
        while args.count is None or count < args.count:
            wait = args.timeout
            if not count and not hinted and args.timeout is None:
                # Waiting for ever: say what the port sends after a while.
                wait = max(0.01, start + _HINT_AFTER - time.monotonic())
            reading = reader.read(timeout=wait)
            if reading is None:
                if args.timeout is None:
                    why = _no_reading(reader, args, time.monotonic() - start)
                    print(f"mbuspico: {why}; still listening (Ctrl-C stops)", file=log, flush=True)
                    hinted = True
                    continue
                break
            try:
                _print(reading, args.format, out, b"")
            except DecodeError as e:  # a wired M-Bus reading as --format mbuspico
                print(f"mbuspico: {args.port}: {e}", file=log)
                return 2
            out.flush()
            count += 1
            warnings.live = True
        if count == 0:  # still open: whether the port ever opened shows
            print(f"mbuspico: {_no_reading(reader, args, time.monotonic() - start)}", file=log)
            return 1
    summary = _read_summary(reader, count)
    if summary is not None:
        print(f"mbuspico: {summary}", file=log)
    return 0


def _serial_error(e: OSError, port: str) -> str:
    """A serial port error, with what to do about the common ones."""
    import errno

    text = str(e)
    # The port is opened exclusively (TIOCEXCL and flock): a second reader fails.
    if "exclusive lock" in text or "busy" in text.lower():
        return _busy(port)
    if e.errno == errno.ENOENT or "No such file" in text:
        return f"{text}: {_CHECK_NAME}"
    if e.errno == errno.EACCES or "Permission denied" in text:
        return f"{text}: add yourself to the port's group (often dialout) or run with its rights"
    return text


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
    except (ValueError, TypeError, OSError) as e:
        print(f"mbuspico: {_simulate_error(e, args)}", file=log)
        return 2
    return _run_simulator(sim, args, out, log)


def _simulate_error(e: Exception, args: argparse.Namespace) -> str:
    """A simulator's constructor error as one line naming the option at fault."""
    if isinstance(e, OSError) and args.replay:  # the capture cannot be read
        return f"--replay {e.filename or args.replay}: {e.strerror or e}"
    text = _usage(e, args)
    if args.replay and (text.startswith(str(args.replay)) or "no P1 telegram" in text):
        return (
            f"--replay {args.replay}: {text.removeprefix(f'{args.replay}: ')}: give a "
            "capture of the meter's telegrams (binary or hex text)"
        )
    return text


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
            sim.run(args.count)
    except LinkExistsError as e:  # --link would replace something not ours
        print(f"mbuspico: --link {e}", file=log)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, also while saying where: the link is gone
        return 0
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
    except (ValueError, TypeError, OSError) as e:
        print(f"mbuspico: {_simulate_error(e, args)}", file=log)
        return 2
    return _run_simulator(sim, args, out, log)


def _port_problem(port: str) -> str | None:
    """Why ``serve`` cannot read ``port`` at all, or None.

    It does not exist, or another program holds it (the reader opens it
    exclusively); other errors the service reports and retries.
    """
    import errno
    import fcntl

    try:
        fd = os.open(port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return f"serial port {port}: {e.strerror}: {_CHECK_NAME}"
        return _busy(port) if e.errno == errno.EBUSY else None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _busy(port)
    except OSError:
        pass  # no locks here: nothing to tell
    finally:
        os.close(fd)  # which releases the lock
    return None


def _http_taken(host: str, port: int) -> str | None:
    """Why the HTTP server cannot listen on ``host``:``port``, or None."""
    import errno
    import socket

    if not port:
        return None
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return None  # the service reports it
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            try:
                s.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return _http_error(e, host, port)
    return None


def _http_error(e: OSError, host: str, port: int) -> str:
    import errno

    if e.errno == errno.EADDRINUSE:
        return (
            f"HTTP port {port} on {host} is in use by another program: choose another "
            "with --http-port (or MBUSPICO_HTTP_SERVER_PORT, http.port)"
        )
    if e.errno == errno.EACCES:
        return (
            f"HTTP port {port} on {host} needs privileges: run as a service with the "
            "capability to bind it, or choose a port above 1023 with --http-port"
        )
    return str(e)


def _serve(args: argparse.Namespace, log: TextIO) -> int:
    import logging

    from .serve import BurstFilter, ConfigError, Service, load_config, set_log_level

    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    try:
        config = load_config(os.environ, args.config, flags, demo=args.demo)
    except ConfigError as e:
        print(f"mbuspico: {e}", file=log)
        return 2
    profile = config.profile
    if config.demo and config.protocol == "dlms" and profile and not profile.simulator:
        plays = ", ".join(p.name for p in PROFILES.values() if p.simulator and p.protocol == "dlms")
        print(
            f"mbuspico: --demo: no simulated meter plays device {config.device}; leave "
            f"--device out (a Kaifa MA309M) or give one of {plays}",
            file=log,
        )
        return 2
    problem = None if config.demo or not config.serial_port else _port_problem(config.serial_port)
    if problem is None and config.http_enabled:
        problem = _http_taken(config.http_host, config.http_port)
    if problem is not None:
        print(f"mbuspico: {problem}", file=log)
        return 1
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=log,
    )
    set_log_level(config.log_level)
    logging.getLogger("mbuspico").addFilter(BurstFilter())
    try:
        Service(config).run()
    except ConfigError as e:  # e.g. a --demo meter that cannot be simulated
        print(f"mbuspico: {e}", file=log)
        return 2
    except OSError as e:  # e.g. the HTTP port is taken or needs privileges
        print(f"mbuspico: {_http_error(e, config.http_host, config.http_port)}", file=log)
        return 1
    return 0


def systemd_unit() -> str:
    """The systemd unit shipped in the package, ExecStart= naming this mbuspico.

    The shipped text names ``/opt/mbuspico/bin/mbuspico``; when the running
    interpreter has an ``mbuspico`` script beside it (a virtual environment),
    that one is named instead.
    """
    from importlib.resources import files

    unit = files("mbuspico.serve").joinpath("mbuspico.service").read_text(encoding="utf-8")
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "mbuspico")
    if os.path.isfile(script):
        unit = unit.replace("ExecStart=/opt/mbuspico/bin/mbuspico ", f"ExecStart={script} ")
    return unit


def _history_arguments(sub: Any) -> None:
    """The ``history`` command."""
    from .history import STEPS

    history = sub.add_parser(
        "history",
        help="export the history mbuspico serve records (CSV, JSON)",
        description=(
            "Read the history mbuspico serve records in SQLite: export prints fields by "
            "step of local time as CSV (several fields) or JSON (one field), info what the "
            "file holds. Energy is the register's increase in each step. The file: --path, "
            "else $MBUSPICO_HISTORY_PATH, else the service's default "
            "(~/.local/state/mbuspico/history.sqlite3, or /var/lib/mbuspico/history.sqlite3 "
            "of the systemd unit)."
        ),
    )
    history.add_argument("action", choices=("export", "info"))
    history.add_argument("--path", metavar="FILE", help="the history file")
    history.add_argument(
        "--demo", action="store_true", help="the history of serve --demo (history-demo.sqlite3)"
    )
    history.add_argument(
        "--field",
        action="append",
        metavar="NAME",
        help="a field (info lists them; repeat or join with commas); default: every one",
    )
    history.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="Unix seconds, ISO 8601 (2026-03-01, 2026-03-01T06:00), or before now: -48h, "
        "-62d, -2mo (default: by step, 48 h for 1h)",
    )
    history.add_argument("--to", dest="end", metavar="TIME", help="the same forms (default: now)")
    history.add_argument(
        "--step",
        default="1h",
        choices=STEPS,
        metavar="STEP",
        help=f"{', '.join(STEPS)} (default 1h)",
    )
    history.add_argument(
        "--tz", metavar="ZONE", help="IANA time zone of the steps (default: the service's)"
    )
    history.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="csv (default) or json (one field)"
    )
    history.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: standard output)"
    )


def _history_path(args: argparse.Namespace) -> str:
    """The history file ``history`` reads: --path, $MBUSPICO_HISTORY_PATH, the service's default."""
    from .history import default_path

    if args.path:
        return str(args.path)
    if os.environ.get("MBUSPICO_HISTORY_PATH") and not args.demo:
        return os.environ["MBUSPICO_HISTORY_PATH"]
    path = default_path(demo=args.demo)
    unit = os.path.join("/var/lib/mbuspico", path.name)  # the systemd unit's StateDirectory=
    if not path.exists() and os.path.exists(unit):
        return unit
    return str(path)


def _history(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    from . import history

    path = _history_path(args)
    try:
        os.stat(path)
    except PermissionError:
        print(
            f"mbuspico: cannot read {path}: permission denied; run as the service's user "
            "(sudo -u mbuspico mbuspico history ...) or give a copy with --path",
            file=log,
        )
        return 1
    except OSError:
        print(
            f"mbuspico: no history at {path}: mbuspico serve records one while it reads a "
            "meter (history.path); give the file with --path",
            file=log,
        )
        return 1
    try:
        if args.action == "info":
            doc = history.info(path)
            out.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            return 0
        fields = [part for value in args.field or () for part in value.split(",") if part]
        answer = history.query(path, fields or None, args.start, args.end, args.step, args.tz)
        if args.format == "json":
            text = json.dumps(history.to_json(answer), ensure_ascii=False) + "\n"
        else:
            text = history.to_csv(answer)
    except history.HistoryError as e:
        print(f"mbuspico: {e}", file=log)
        return 2 if os.path.isfile(path) else 1
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        out.write(text)
    return 0


def _mbus_arguments(sub: Any, sim: argparse.ArgumentParser) -> None:
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
        print(f"mbuspico: {_usage(e, args)}", file=log)
        return 2
    line = f"{args.baudrate} Bd, parity {args.parity}"
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
                _scan_secondary(master, args.secondary, log)
                if args.secondary is not None
                else master.scan_primary(_scan_progress(range(251), log))
            )
            if args.format == "json":
                out.write(json.dumps(found) + "\n")
            else:
                out.write("".join(f"{a}\n" for a in found))
            if not found:
                print(
                    f"mbuspico: no slave answered on {args.port} at {line}: check the "
                    "wiring and the level converter, and --baudrate (most meters: 2400)",
                    file=log,
                )
            return 0 if found else 1
    except NoResponseError as e:
        print(
            f"mbuspico: {e}: is a slave at that address? check --address/--secondary, "
            f"--baudrate and --parity ({line}) and the wiring",
            file=log,
        )
        return 1
    except (CollisionError, DecodeError) as e:
        print(f"mbuspico: {e}", file=log)
        return 1
    except ValueError as e:
        print(f"mbuspico: {e}", file=log)
        return 2


def _scan_secondary(master: Any, pattern: str, log: TextIO) -> list[str]:
    """``scan_secondary``, showing on a terminal which pattern is being selected."""
    tty = log.isatty()
    shown = [""]

    def progress(selected: str) -> None:
        if tty:
            text = f"mbuspico: scanning secondary address {selected}"
            log.write("\r" + text.ljust(len(shown[0])))
            log.flush()
            shown[0] = text

    try:
        found: list[str] = master.scan_secondary(pattern, progress=progress)
        return found
    finally:
        if tty and shown[0]:
            log.write("\r" + " " * len(shown[0]) + "\r")
            log.flush()


def _scan_progress(addresses: range, log: TextIO) -> Iterator[int]:
    """The addresses to scan, and on a terminal where the scan is.

    One line on standard error, rewritten in place and erased at the end.
    """
    tty = log.isatty()
    last = addresses[-1] if addresses else 0
    text = ""
    try:
        for address in addresses:
            if tty:
                text = f"mbuspico: scanning primary address {address}/{last}"
                log.write(f"\r{text}")
                log.flush()
            yield address
    finally:
        if tty and text:
            log.write("\r" + " " * len(text) + "\r")
            log.flush()


def _simulate_mbus_slave(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    from .simulate.mbus_slave import MBusSlave, SlaveMeter

    if not args.frames:
        print("mbuspico: simulate --meter mbus-slave needs --frames", file=log)
        return 2
    try:
        meter = SlaveMeter(args.frames, address=args.address, secondary=args.secondary)
    except OSError as e:
        print(f"mbuspico: --frames {e.filename or args.frames}: {e.strerror or e}", file=log)
        return 2
    except ValueError as e:
        print(
            f"mbuspico: --frames {e}: give RSP_UD frames as hex (a .hex file or a directory "
            "of them)",
            file=log,
        )
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
            bus.run()
    except LinkExistsError as e:  # --link would replace something not ours
        print(f"mbuspico: --link {e}", file=log)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, also while saying where: the link is gone
        return 0
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
    _from_environment(args)
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
        if args.command == "history":
            return _history(args, out, log)
        if args.command == "systemd-unit":
            out.write(systemd_unit())
            return 0
    except KeyboardInterrupt:
        return 130  # the shell's status for SIGINT; no traceback for Ctrl-C
    except SerialPortError as e:
        port = getattr(args, "port", None) or getattr(args, "serial_port", None) or "?"
        print(f"mbuspico: {_serial_error(e, port)}", file=log)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"mbuspico: {where}{e.strerror or e}", file=log)
        return 1
    return 2  # pragma: no cover - argparse requires a command
