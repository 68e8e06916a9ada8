"""Readings as CSV files on disk, one file a month, and HTTP routes to download them.

:class:`CsvLogSink` appends one row per reading to ``<directory>/YYYY-MM.csv``::

    time,meterNumber,activePowerPlus,activePowerMinus,activeEnergyPlus,…
    2022-02-04T16:43:20+01:00,181220002177,1055.0,0.0,1340436.0,…

* ``time`` is the reading's own ``timestamp`` exactly as decoded (ISO 8601
  local time with the meter's UTC offset); a reading without one (wired M-Bus,
  a meter that sends no clock) gets the local time of writing, in ``zone``.
* The month of the file is the month of that local time as written in the row
  (the meter's wall clock, not UTC): a reading at ``2026-10-31T23:59:50+01:00``
  goes to ``2026-10.csv``, one at ``2026-11-01T00:00:05+01:00`` to
  ``2026-11.csv``.
* The other columns are ``meterNumber`` (DLMS readings only, text) and the
  names of :func:`mbuspico.serve.sinks.flat_values` in its order, with its units
  (W, Wh, V, A, kWh, m³, …). Numbers are written as Python floats
  (``1055.0``); a value the reading lacks is an empty cell.
* The first reading of a file fixes its columns. A later reading that brings a
  name the header lacks never changes a written file: the sink starts the next
  part of the month, ``YYYY-MM-2.csv`` (then ``-3``, …), whose header is the
  old columns followed by the new names, so no value is lost and each file
  stays a plain rectangular CSV. Readings with fewer names leave cells empty.

Crash safety: each row is one complete newline-terminated line handed to the
kernel with a single ``os.write`` (retried only for the unwritten rest), so a
``kill -9`` of the process leaves every completed row intact; with
``fsync=True`` each row is also forced to the disk (power loss). When the sink
opens an existing file (after a restart, or on returning to a month) and its
last line is torn (no trailing newline, e.g. after a power loss) the file is
first truncated back to its last newline.

:func:`add_file_routes` serves the directory over HTTP (microdot):
``GET /files`` lists the CSV files, ``GET /files/<name>`` downloads one.
"""

from __future__ import annotations

import csv
import inspect
import io
import itertools
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from . import Sink, flat_values

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from microdot import Microdot, Request, Response

__all__ = ["FILE_NAME", "AuthCheck", "CsvLogSink", "add_file_routes", "files_page", "list_files"]

log = logging.getLogger("mbuspico.serve")

FILE_NAME = re.compile(r"\d{4}-\d{2}(-\d+)?\.csv")
"""Names of the files the sink writes and the routes serve (use ``fullmatch``)."""

AuthCheck = Callable[["Request"], Union[Awaitable[Optional["Response"]], "Response", None]]
"""``check(request)``: a response to send instead (401, 403, …) or None to go on;
plain or ``async``, like a microdot ``before_request`` handler."""

_HEADER_LIMIT = 1 << 20  # a first line longer than this is not one of our headers
_CHUNK = 64 * 1024
_OPEN_FLAGS = os.O_CLOEXEC if hasattr(os, "O_CLOEXEC") else 0
_OPEN_FLAGS |= getattr(os, "O_BINARY", 0)
_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


def _format_row(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _repair(fd: int, quiet: bool = False) -> int:
    """Truncate a torn last line (bytes after the last newline); the new size in bytes.

    Logged as a warning, or at debug level when ``quiet`` (during a run of
    failed writes, whose start was logged already: a full disk tears a line
    per reading).
    """
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, end - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end != size:
        (log.debug if quiet else log.warning)(
            "csv: %d bytes of a torn last line removed", size - end
        )
        os.ftruncate(fd, end)
    return end


def _read_header(fd: int) -> list[str] | None:
    """The first row of an open file, or None when it has no complete first line."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while b"\n" not in data and len(data) < _HEADER_LIMIT:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return None
        data += chunk
    line, newline, _ = data.partition(b"\n")
    if not newline:
        return None
    try:
        return next(csv.reader([line.decode("utf-8").rstrip("\r")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


class CsvLogSink(Sink):
    """Appends every reading as a row to a monthly CSV file (see the module doc).

    Args:
        directory: Where the files go; created (with parents) when the first
            file is opened.
        zone: IANA time-zone name (``"Europe/Vienna"``) for the time and month
            of readings without a ``timestamp``; None for the system's local
            time.
        fsync: Force each row to the disk (``os.fsync``) before the next one:
            survives power loss, costs a disk write per reading.
        maxsize: Readings kept while the disk is slow (see :class:`Sink`).

    Raises:
        zoneinfo.ZoneInfoNotFoundError: ``zone`` is not a known time zone
            (a ``KeyError``).
        ValueError: ``zone`` is not a valid zone name.

    Delivery errors (disk full, permissions) are raised from :meth:`deliver`
    as ``OSError`` and counted as failed by :class:`Sink`; the file is then
    closed and reopened (and repaired) for the next reading.

    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        zone: str | None = None,
        fsync: bool = False,
        maxsize: int = 100,
    ) -> None:
        """Prepare the sink; no file is opened before the first reading."""
        super().__init__("csv", maxsize)
        self.directory = Path(directory)
        self.fsync = fsync
        self._zone: tzinfo | None = None
        if zone is not None:
            from zoneinfo import ZoneInfo

            self._zone = ZoneInfo(zone)
        self._file_lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._month: str | None = None
        self._columns: list[str] = []

    @property
    def path(self) -> Path | None:
        """The file rows go (or last went) to; None before the first reading."""
        return self._path

    @property
    def columns(self) -> list[str]:
        """The header of the current file (``["time", …]``; empty before the first)."""
        return list(self._columns)

    def deliver(self, reading: Mapping[str, Any]) -> None:
        """Append ``reading`` as one row, opening or rotating the file as needed.

        Also usable directly (synchronously) without :meth:`start`.

        Raises:
            OSError: The directory or file could not be created or written.

        """
        when, month = self._local_time(reading)
        cells: dict[str, str] = {"time": when}
        if reading.get("protocol") == "dlms":
            number = reading.get("meterNumber")
            cells["meterNumber"] = "" if number is None else str(number)
        for name, value in flat_values(reading).items():
            cells[name] = repr(value)
        names = list(cells)
        with self._file_lock:
            try:
                if self._fd is None or month != self._month:
                    self._open_month(month, names)
                elif not set(names) <= set(self._columns):
                    self._open_next_part(month, names)
                assert self._fd is not None  # noqa: S101 - set by the _open methods
                _write_all(self._fd, _format_row([cells.get(c, "") for c in self._columns]))
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                self._close_file()  # the next reading reopens and repairs the file
                raise

    def disconnect(self) -> None:
        """Close the current file."""
        with self._file_lock:
            self._close_file()

    # -- internals -------------------------------------------------------------

    def _local_time(self, reading: Mapping[str, Any]) -> tuple[str, str]:
        """``(time cell, "YYYY-MM")`` from the reading's timestamp, else from now."""
        stamp = reading.get("timestamp")
        if isinstance(stamp, str):
            try:
                # Python < 3.11 reads no "Z" suffix.
                local = datetime.fromisoformat(
                    stamp[:-1] + "+00:00" if stamp[-1:] == "Z" else stamp
                )
            except ValueError:
                log.debug("csv: unreadable timestamp %r, using the time now", stamp)
            else:
                return stamp, f"{local.year:04d}-{local.month:02d}"
        now = datetime.now(self._zone) if self._zone is not None else datetime.now().astimezone()
        return now.isoformat(timespec="seconds"), f"{now.year:04d}-{now.month:02d}"

    def _part_path(self, month: str, part: int) -> Path:
        return self.directory / (f"{month}.csv" if part == 1 else f"{month}-{part}.csv")

    def _open_month(self, month: str, names: list[str]) -> None:
        """Open the newest part of ``month``, or the next one if its columns lack ``names``."""
        self._close_file()
        self.directory.mkdir(parents=True, exist_ok=True)
        last = 1
        for part in itertools.count(2):
            if not self._part_path(month, part).exists():
                break
            last = part
        self._open(self._part_path(month, last), names)
        self._month = month
        if not set(names) <= set(self._columns):
            self._open_next_part(month, names)

    def _open_next_part(self, month: str, names: list[str]) -> None:
        """Start a part after the current one: the old columns, then the new names."""
        old = self._columns if self._columns[:1] == ["time"] else []
        current = self._path
        self._close_file()
        part = 2
        if current is not None:
            match = re.fullmatch(r"\d{4}-\d{2}-(\d+)\.csv", current.name)
            part = int(match.group(1)) + 1 if match else 2
        while self._part_path(month, part).exists():
            part += 1
        columns = old + [n for n in names if n not in old]
        log.info("csv: new columns, continuing in %s", self._part_path(month, part).name)
        self._open(self._part_path(month, part), columns)
        self._month = month

    def _open(self, path: Path, names: list[str]) -> None:
        """Open ``path`` for appending: repair its tail, read or write its header."""
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _OPEN_FLAGS, 0o644)
        try:
            header = _read_header(fd) if _repair(fd, quiet=self.failing > 0) else None
            if header is None:
                os.ftruncate(fd, 0)  # empty, or only a torn header line
                header = names if names[:1] == ["time"] else ["time", *names]
                _write_all(fd, _format_row(header))
                if self.fsync:
                    os.fsync(fd)
                    if created:
                        self._sync_directory()
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._path, self._columns = fd, path, header

    def _sync_directory(self) -> None:
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError:  # pragma: no cover - Windows opens no directories
            return
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover - some file systems refuse
            pass
        finally:
            os.close(dir_fd)

    def _close_file(self) -> None:
        fd, self._fd, self._month = self._fd, None, None
        if fd is not None:
            os.close(fd)


# -- HTTP ------------------------------------------------------------------------


def list_files(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The CSV files directly in ``directory``: ``[{"name": "2026-11.csv", "size": 1234}, …]``.

    Only regular files (no symlinks, no directories) whose name matches
    :data:`FILE_NAME`, sorted by name; ``size`` in bytes. A missing directory
    gives an empty list.
    """
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    files = [
        {"name": e.name, "size": e.stat(follow_symlinks=False).st_size}
        for e in entries
        if FILE_NAME.fullmatch(e.name) and e.is_file(follow_symlinks=False)
    ]
    return sorted(files, key=lambda f: str(f["name"]))


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _month(name: str) -> str:
    """``2026-11.csv`` → ``November 2026``; ``2026-11-2.csv`` → ``November 2026, part 2``."""
    parts = name.removesuffix(".csv").split("-")
    year, month = parts[0], int(parts[1])
    text = f"{_MONTHS[month - 1]} {year}" if 1 <= month <= 12 else f"{year}-{parts[1]}"
    return f"{text}, part {parts[2]}" if len(parts) > 2 else text


def _size(size: int) -> str:
    """Bytes for a person: ``812 B``, ``63.2 KB``, ``58.1 MB`` (1 KB = 1000 B)."""
    if size < 1000:
        return f"{size} B"
    if size < 1000**2:
        return f"{size / 1000:.1f} KB"
    if size < 1000**3:
        return f"{size / 1000**2:.1f} MB"
    return f"{size / 1000**3:.2f} GB"


def _free_space(directory: Path) -> tuple[int, int] | None:
    """Free and total bytes of the file system holding ``directory``; None if unknown."""
    import shutil

    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return None
    return usage.free, usage.total


def files_page(files: list[dict[str, Any]], space: tuple[int, int] | None) -> str:
    """The ``GET /files`` page: one row a file (month, name, size, download), and the free space.

    Args:
        files: :func:`list_files`.
        space: Free and total bytes of the disk (None: not shown).

    Source: the ESP32 smart-meter logger's file server (a page with the SD
    card's free space above the list of monthly files).

    """
    from html import escape

    rows = "".join(
        f"<tr><td>{escape(_month(str(f['name'])))}</td>"
        f'<td><a href="/files/{escape(str(f["name"]))}" download>{escape(str(f["name"]))}</a></td>'
        f"<td class=n>{_size(int(f['size']))}</td></tr>\n"
        for f in reversed(files)  # the newest month first
    )
    if space is None:
        disk = "free space unknown"
    else:
        free, total = space
        disk = f"{_size(free)} free of {_size(total)} ({100 * free / total:.0f} %)" if total else ""
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>mbuspico: CSV files</title>
<style>body{{font:15px system-ui,sans-serif;margin:1.5em;max-width:40em}}
td,th{{padding:3px 10px;text-align:left}}.n{{text-align:right;font-variant-numeric:tabular-nums}}
@media (prefers-color-scheme:dark){{body{{background:#111;color:#ddd}}a{{color:#8cf}}}}</style>
</head><body>
<h1>CSV files</h1>
<p>Disk: {disk}. One file a month; a download is the file as it is now.</p>
<table><tr><th>Month</th><th>File</th><th class=n>Size</th></tr>
{rows or "<tr><td colspan=3>No file yet.</td></tr>"}</table>
<p><a href="/api/files">JSON</a> · <a href="/dashboard">dashboard</a> ·
<a href="/status.html">status</a></p>
</body></html>
"""


class _Head(io.RawIOBase):
    """The first ``size`` bytes of an open file, then EOF.

    A download is a snapshot of the file as it was when requested: rows the
    sink appends meanwhile are not sent, so ``Content-Length`` holds.
    """

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._file = io.FileIO(fd, "rb", closefd=True)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        n = self._file.readinto(view) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_served(directory: Path, name: str) -> tuple[int, int] | None:
    """``(fd, size)`` of a file that may be served, else None (never follows a symlink)."""
    if not FILE_NAME.fullmatch(name):
        return None
    path = directory / name
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:  # pragma: no cover
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode):  # replaced by something else meanwhile
        os.close(fd)
        return None
    return fd, info.st_size


def add_file_routes(
    app: Microdot, directory: str | os.PathLike[str], auth: AuthCheck | None = None
) -> None:
    """Add the download routes for a :class:`CsvLogSink` directory to a microdot app.

    * ``GET /files``: a page to download the files (name, month, size, a
      link each, the free space on the disk; :func:`files_page`), as the
      ESP32 smart-meter logger's file server shows them; JSON instead with
      ``Accept: application/json``.
    * ``GET /api/files``: JSON ``[{"name": "2026-11.csv", "size": 1234}, …]``
      (see :func:`list_files`).
    * ``GET /files/<name>``: the file, streamed by microdot from disk
      (``text/csv; charset=utf-8``, ``Content-Disposition: attachment``,
      ``Content-Length``): the bytes it had when requested.

    Only names matching :data:`FILE_NAME` (``YYYY-MM.csv``, ``YYYY-MM-N.csv``)
    of regular files directly in ``directory`` are served; anything else (other
    files, escaped slashes such as ``..%2F``, absolute paths, symlinks,
    directories) is ``404``. The name is matched as sent, never URL-decoded.

    Args:
        app: A ``microdot.Microdot`` application.
        directory: The sink's directory.
        auth: Called first on every request of these routes, plain or async;
            a response it returns (401, 403, …) is sent instead. None: no
            check here (e.g. when the app's own ``before_request`` handler
            authenticates already).

    """
    from microdot import Response

    root = Path(directory)

    async def denied(request: Request) -> Response | None:
        if auth is None:
            return None
        result = auth(request)
        if inspect.isawaitable(result):
            return await result
        return result

    def not_found() -> Response:
        return Response("Not found", 404, {**_NO_CACHE, "Content-Type": "text/plain"})

    async def files(request: Request) -> Response:
        refused = await denied(request)
        if refused is not None:
            return refused
        listed = list_files(root)
        accept = request.headers.get("Accept") or ""
        if request.path == "/api/files" or "application/json" in accept:
            body = json.dumps(listed)
            return Response(body, 200, {**_NO_CACHE, "Content-Type": "application/json"})
        page = files_page(listed, _free_space(root))
        return Response(page, 200, {**_NO_CACHE, "Content-Type": "text/html; charset=utf-8"})

    async def download(request: Request, name: str) -> Response:
        refused = await denied(request)
        if refused is not None:
            return refused
        opened = _open_served(root, name)
        if opened is None:
            return not_found()
        fd, size = opened
        headers = {
            **_NO_CACHE,
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        if request.method == "HEAD":  # microdot would not read (nor close) the stream
            os.close(fd)
            return Response(b"", 200, headers)
        response = Response.send_file(name, stream=io.BufferedReader(_Head(fd, size)))
        response.send_file_buffer_size = _CHUNK
        response.headers.update(headers)
        return response

    # Registered by call: microdot's route decorator is untyped.
    app.route("/files", methods=["GET"])(files)
    app.route("/api/files", methods=["GET"])(files)
    app.route("/files/<name>", methods=["GET"])(download)
