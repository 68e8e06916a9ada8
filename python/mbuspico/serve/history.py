"""The history of ``mbuspico serve``: every reading recorded into SQLite, and ``/api/history``.

:class:`ServiceHistory` owns a :class:`mbuspico.history.Recorder` (the file of
``history.path``, by default under the service's state directory,
:func:`mbuspico.history.default_path`) and a thread that writes each minute
once it is complete: a moment after the minute ends, or at once when a
reading of the next minute comes. Recording a reading is in memory only, so
it never delays reading the meter; a write that fails (a full disk) is logged
once and retried every minute with the data kept in memory.

:func:`add_history_routes` serves it (microdot):

* ``GET /api/history``: the fields recorded, a JSON list of
  ``{"field", "kind", "unit", "medium", "first"}``;
* ``GET /api/history?field=F&from=...&to=...&step=1h``: one field as JSON
  (:func:`mbuspico.history.to_json`: ``t``, ``value``, and ``min``/``mean``/``max``
  or ``delta``/``last``), or several (``field=a,b`` or ``field`` repeated) as
  CSV with ``format=csv`` or ``Accept: text/csv``
  (:func:`mbuspico.history.to_csv`). ``from``/``to``: Unix seconds, ISO 8601,
  or before now as ``-48h``; ``step``: ``raw``, ``1m`` ... ``1y``
  (:data:`mbuspico.history.STEPS`); ``tz``: an IANA zone (default the
  service's ``tz``). What is still in memory (the minute in progress) is in
  the answer.

A bad request is 400 with ``{"error": ...}``; 404 when history is off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ..history import (
    HistoryError,
    Recorder,
    default_path,
    fields,
    file_bytes,
    query,
    to_csv,
    to_json,
)
from .config import Config, ConfigError
from .sinks import meter_id

__all__ = ["MAX_POINTS", "ServiceHistory", "add_history_routes"]

log = logging.getLogger("mbuspico.serve")

MAX_POINTS = 100_000
"""The most points of a field ``/api/history`` answers (a Raspberry Pi builds the
JSON in memory): a year at 1 hour, 69 days at 1 minute, a day of readings a
second. ``mbuspico history export`` and :func:`mbuspico.history.read` take more.
"""

MAX_FIELDS = 16
"""The most fields of one ``/api/history`` request (CSV)."""

_DELAY = 0.25
"""Seconds after a minute's end before it is written when no later reading came."""


class ServiceHistory:
    """The service's recorder and its writer thread.

    Args:
        config: The settings: ``history_path`` (None: the default path;
            under ``--demo`` ``history-demo.sqlite3``), ``history_days``,
            ``history_raw_days``, and ``tz``, the zone of the history's days.

    """

    def __init__(self, config: Config) -> None:
        """Prepare; the file is opened by :meth:`start`."""
        self.config = config
        self.path = (
            Path(config.history_path) if config.history_path else default_path(demo=config.demo)
        )
        """The history file."""
        self.recorder: Recorder | None = None
        """The recorder while running."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the file and start the writer thread.

        When the default file cannot be used, the service runs without a
        history (logged once as a warning).

        Raises:
            ConfigError: The ``history.path`` set cannot be made or used
                (another service records into it, it is no history, the
                directory is not writable); the message names it.

        """
        c = self.config
        try:
            self.recorder = Recorder(
                self.path, days=c.history_days, raw_days=c.history_raw_days, tz=c.tz
            )
        except (HistoryError, OSError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            if c.history_path:
                where = {
                    "environment": "environment variable MBUSPICO_HISTORY_PATH",
                    "file": f"history.path in {c.config_file}",
                    "flag": "--history-path",
                }.get(c.source("history_path"), "history.path")
                raise ConfigError(f"invalid {where}: {reason}") from None
            log.warning(
                "history: off, the default file %s cannot be used: %s; set history.path to a "
                "file the service can write (or history.enabled = false)",
                self.path,
                reason,
            )
            return
        self._thread = threading.Thread(target=self._run, name="mbuspico-history", daemon=True)
        self._thread.start()

    def add(self, reading: Mapping[str, Any]) -> None:
        """Record a reading received now (in memory; never blocks on the disk)."""
        recorder = self.recorder
        if recorder is not None:
            recorder.add(reading, meter=meter_id(reading))

    def _run(self) -> None:
        recorder = self.recorder
        assert recorder is not None  # noqa: S101 - started by start()
        while not self._stop.is_set():
            now = time.time()
            wait = 60 - now % 60 + _DELAY
            recorder.finished.wait(wait)
            if self._stop.is_set():
                break
            try:
                recorder.flush()  # a failed write is kept and logged by the recorder
            except Exception:  # a bug: logged, never the end of the writer
                log.exception("history: writing %s failed", self.path)

    def stop(self) -> None:
        """Write what is in memory (the minute in progress too) and close the file."""
        self._stop.set()
        recorder = self.recorder
        if recorder is not None:
            recorder.finished.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if recorder is not None:
            recorder.close()
            self.recorder = None

    def status(self) -> dict[str, Any]:
        """The history's part of ``/api/status``.

        Keys: ``path``; ``bytes`` (the file with its WAL); ``recorded``
        (readings), ``notRecorded`` (stamped before what was recorded: the
        clock went back), ``minutesWritten``, ``writeFailures``,
        ``droppedWhileFailing`` (readings lost while writes kept failing),
        ``lastWriteAt`` (Unix time, None before the first).
        """
        recorder = self.recorder
        return {
            "path": str(self.path),
            "bytes": file_bytes(self.path),
            "recorded": recorder.recorded if recorder else 0,
            "notRecorded": recorder.backwards if recorder else 0,
            "minutesWritten": recorder.written if recorder else 0,
            "writeFailures": recorder.failures if recorder else 0,
            "droppedWhileFailing": recorder.dropped if recorder else 0,
            "lastWriteAt": recorder.last_write if recorder else None,
        }

    def answer(self, args: Mapping[str, list[str]], csv_wanted: bool) -> tuple[int, str, str]:
        """``/api/history``: ``(status, body, content type)`` for the query arguments.

        Runs SQLite queries: call it off the event loop.
        """
        recorder = self.recorder
        pending = recorder.pending() if recorder is not None else None
        names = [part for value in args.get("field", []) for part in value.split(",") if part]
        one = {key: values[-1] for key, values in args.items() if values}
        fmt = one.get("format", "csv" if csv_wanted else "json").lower()
        try:
            if fmt not in ("json", "csv"):
                msg = f"unknown format {fmt!r}: json or csv"
                raise HistoryError(msg)
            if not names:
                listed = [s.as_json() for s in fields(self.path, pending)]
                return 200, json.dumps(listed), "application/json"
            history = query(
                self.path,
                names,
                one.get("from"),
                one.get("to"),
                one.get("step", "1h"),
                one.get("tz") or None,
                pending=pending,
                max_points=MAX_POINTS,
                max_fields=MAX_FIELDS,
            )
            if fmt == "csv":
                return 200, to_csv(history), "text/csv; charset=utf-8"
            body = json.dumps(to_json(history), separators=(",", ":"), ensure_ascii=False)
            return 200, body, "application/json"
        except HistoryError as e:
            return 400, json.dumps({"error": str(e)}), "application/json"


def add_history_routes(
    app: Any,
    history: Callable[[], ServiceHistory | None],
    respond: Callable[..., Any],
) -> None:
    """``GET /api/history`` on a microdot ``app`` (authentication is the app's).

    Args:
        app: The microdot application.
        history: The service's history now (None while history is off).
        respond: Makes a response: ``respond(body, status, content_type)``.

    """

    async def api_history(request: Any) -> Any:
        recorder = history()
        if recorder is None:
            reason = "history is off: set history.enabled = true (MBUSPICO_HISTORY_ENABLED)"
            return respond(json.dumps({"error": reason}), 404)
        args = {key: request.args.getlist(key) for key in request.args}
        csv_wanted = "text/csv" in (request.headers.get("Accept") or "")
        loop = asyncio.get_running_loop()
        status, body, ctype = await loop.run_in_executor(None, recorder.answer, args, csv_wanted)
        response = respond(body, status, ctype)
        if ctype.startswith("text/csv"):
            name = "-".join(args.get("field", ["history"])[:3]).replace(",", "-")
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            response.headers["Content-Disposition"] = f'attachment; filename="{safe}.csv"'
        return response

    app.route("/api/history")(api_history)
