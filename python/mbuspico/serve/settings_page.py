"""The settings page of ``mbuspico serve``: view and change settings over HTTP.

``GET /settings`` is an HTML form of the effective configuration, ``GET
/api/settings`` (or ``/settings`` with ``Accept: application/json``) the same as
JSON; ``POST`` to either changes settings. This module holds what does not
need the running service: which settings may change and when they take
effect (:data:`LIVE`, :data:`AT_RESTART`), reading a submission
(:func:`submitted_changes`), the page and its JSON (:func:`render`,
:func:`describe`), the cross-origin check (:func:`same_origin`), the atomic
write of the TOML file (:func:`write_settings`) and the removal of what a
write cut short left behind (:func:`remove_leftover_temp_files`).
:meth:`mbuspico.serve.Service.apply_settings` validates, writes and applies.

Secrets (the ``secret=True`` settings of :data:`mbuspico.serve.config.SETTINGS`: keys,
passwords, tokens) are never shown: only whether they are set. They can be
replaced (a non-empty value), never read back; an empty value keeps the old one.

Source: the project's issue 12 ("Settings page": EVN Kaifa to MQTT configures
the device from a web page behind a passkey); the cross-site defences follow
the OWASP CSRF Prevention Cheat Sheet (origin check, synchronizer token,
JSON content type); the README's "Settings page" describes the behaviour.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .config import (
    SETTINGS,
    TEMP_SUFFIX,
    Config,
    ConfigError,
    Setting,
    remove_leftover_temp_files,
    temp_prefix,
    update,
)

__all__ = [
    "AT_RESTART",
    "EDITABLE",
    "LIVE",
    "Change",
    "describe",
    "passkey",
    "plan_change",
    "remove_leftover_temp_files",
    "render",
    "same_origin",
    "submitted_changes",
    "write_settings",
]

_BY_NAME = {s.name: s for s in SETTINGS}
_BY_TOML = {s.toml: s for s in SETTINGS}

UDP = frozenset({"udp_enabled", "udp_host", "udp_port", "udp_interval"})
"""UDP settings: the sender is restarted with them."""

SINK_PREFIXES = ("mqtt_", "graphite_", "influx_")
"""Settings of the MQTT, Graphite and InfluxDB sinks (every one whose name
starts so): the sinks are closed and built anew with them."""

LIVE: frozenset[str] = frozenset(
    {
        *UDP,
        "log_level",
        "http_serve_stale",
        "stale_after",
        "http_user",
        "http_password",
        "mbus_interval",
        *(s.name for s in SETTINGS if s.name.startswith(SINK_PREFIXES)),
    }
)
"""Settings (by name) a ``POST`` applies at once: UDP, the log level, the HTTP
user and password, the M-Bus poll interval and every MQTT, Graphite and
InfluxDB setting."""

AT_RESTART: frozenset[str] = frozenset(
    {
        "device",
        "protocol",
        "key",
        "auth_key",
        "serial_port",
        "baudrate",
        "parity",
        "http_host",
        "http_port",
        "http_max_connections",
        "http_header_timeout",
        "http_max_header_bytes",
        "http_max_headers",
        "http_max_body",
        "tz",
        "names_file",
        "mbus_address",
        "csv_directory",
        "mdns_enabled",
        "mdns_name",
    }
)
"""Settings (by name) a ``POST`` saves for the next start: the meter, its keys
and serial port, where HTTP listens, the P1 time zone and code table, the wired
M-Bus address, the CSV directory (its ``/files`` routes are set up at start)
and the mDNS announcement."""

EDITABLE: frozenset[str] = LIVE | AT_RESTART
"""The allow-list: every other setting (``http.enabled``, ...) is shown but
can be changed only in the file."""

_CHOICES: dict[str, tuple[str, ...]] = {
    "protocol": ("dlms", "dsmr", "mbus", "auto"),
    "parity": ("even", "none", "odd"),
    "mqtt_mode": ("mbuspico", "evn-raw", "evn-topics", "evn-json", "obis"),
    "mqtt_qos": ("0", "1", "2"),
    "influx_version": ("1", "2"),
}


def _text(value: Any) -> str:
    """A value as the form shows it (and as a submission of it unchanged reads)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _setting(key: str) -> Setting:
    s = _BY_TOML.get(key) or _BY_NAME.get(key)
    if s is None:
        msg = f"unknown setting {key!r}"
        raise ConfigError(msg)
    if s.name not in EDITABLE:
        msg = f"{s.toml} cannot be changed on the settings page; edit the file and restart"
        raise ConfigError(msg)
    return s


def submitted_changes(
    body: bytes, content_type: str | None, saved: Config
) -> tuple[dict[str, Any], str | None]:
    """The settings a ``POST`` body asks to change, by setting name.

    * ``application/json``: an object of TOML keys (``"udp.interval"``) or
      setting names (``"udp_interval"``) and values (numbers, booleans, text;
      ``null`` as an empty value).
    * ``application/x-www-form-urlencoded`` (the page's form): TOML keys and
      text; a field equal to what the form showed for ``saved`` is no change;
      ``csrf`` is the form's token, for the caller to check.

    An empty value for a secret keeps it (it is left out). Values are not
    parsed here: :func:`mbuspico.serve.config.update` does that.

    Args:
        body: The request body (UTF-8).
        content_type: The request's ``Content-Type``.
        saved: The settings the form was made from.

    Returns:
        ``(changes, token)``: the token is the form's ``csrf`` field ("" when
        missing), None for JSON.

    Raises:
        ConfigError: Not JSON or a form, malformed, an unknown setting or one
            not on the allow-list (:data:`EDITABLE`); the message names it.

    """
    mime = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"the request body is not UTF-8 (byte {e.start})"
        raise ConfigError(msg) from None
    changes: dict[str, Any] = {}
    if mime == "application/json":
        import json

        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
            msg = f"the request body is not valid JSON: {e}"
            raise ConfigError(msg) from None
        if not isinstance(doc, dict):
            msg = "the request body must be a JSON object of settings"
            raise ConfigError(msg)
        for key, value in doc.items():
            s = _setting(key)
            if value is None or (s.secret and value == ""):
                if s.secret:
                    continue
                value = ""
            changes[s.name] = value
        return changes, None
    if mime == "application/x-www-form-urlencoded":
        try:
            fields = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except ValueError:
            msg = "the request body is not a valid form submission"
            raise ConfigError(msg) from None
        token = ""
        for key, value in fields:
            if key == "csrf":
                token = value
                continue
            s = _setting(key)
            if s.secret:
                if value:
                    changes[s.name] = value
            elif value != _text(getattr(saved, s.name)):
                changes[s.name] = value
        return changes, token
    msg = "send the settings as application/json or as a form (application/x-www-form-urlencoded)"
    raise ConfigError(msg)


@dataclass(frozen=True)
class Change:
    """A validated change of settings, before anything is written or applied.

    Attributes:
        path: The ``--config`` file to write.
        saved: The settings the file holds afterwards.
        running: The settings the service runs with afterwards (the live
            changes applied, the others waiting for the next start).
        changed: The settings that differ from the saved ones (names).
        updates: What to write: TOML key -> new value.
        restart: TOML keys that take effect at the next start only.

    """

    path: str
    saved: Config
    running: Config
    changed: tuple[str, ...]
    updates: dict[str, Any]
    restart: tuple[str, ...]

    @property
    def live(self) -> frozenset[str]:
        """The changed settings applied now (names)."""
        return frozenset(self.changed) & LIVE

    @property
    def udp(self) -> bool:
        """Whether the UDP sender must restart."""
        return bool(UDP & self.live)

    @property
    def sinks(self) -> bool:
        """Whether the MQTT, Graphite and InfluxDB sinks must be built anew."""
        return any(name.startswith(SINK_PREFIXES) for name in self.live)

    def result(self) -> dict[str, list[str]]:
        """``{"changed": [...], "applied": [...], "restart": [...]}``, as TOML keys."""
        return {
            "changed": [_BY_NAME[n].toml for n in self.changed],
            "applied": [_BY_NAME[n].toml for n in self.changed if n in LIVE],
            "restart": list(self.restart),
        }


def plan_change(
    running: Config, saved: Config, started_with: Config, changes: Mapping[str, Any]
) -> Change:
    """Validate ``changes`` as at start-up and work out what they change.

    Args:
        running: The settings in effect now.
        saved: The settings the ``--config`` file holds now.
        started_with: The settings the reader thread was started with
            (``mqtt.mode = "evn-raw"`` needs the reader to keep the APDUs, so
            switching to it waits for the next start).
        changes: New values by setting name (``{"udp_interval": "5"}``):
            text as in the file, or typed values.

    Raises:
        ConfigError: No ``--config`` file, a setting off the allow-list
            (:data:`EDITABLE`), or an invalid value or combination
            (:func:`mbuspico.serve.config.update`).

    """
    path = running.config_file
    if path is None:
        msg = (
            "the service was started without --config FILE, so there is no file "
            "to save settings in; start it with --config"
        )
        raise ConfigError(msg)
    for name in changes:
        if name not in EDITABLE:
            key = _BY_NAME[name].toml if name in _BY_NAME else name
            msg = f"{key} cannot be changed on the settings page"
            raise ConfigError(msg)
    after = update(saved, changes)
    changed = [s for s in SETTINGS if getattr(after, s.name) != getattr(saved, s.name)]
    live = {s.name: getattr(after, s.name) for s in changed if s.name in LIVE}
    now = dataclasses.replace(running, **live)
    restart = [s.toml for s in changed if s.name not in LIVE]
    raw = started_with.mqtt_enabled and started_with.mqtt_mode == "evn-raw"
    wants_raw = now.mqtt_enabled and now.mqtt_mode == "evn-raw"
    if wants_raw and not raw and {"mqtt_enabled", "mqtt_mode"} & live.keys():
        restart.append("mqtt.mode")
    return Change(
        path=path,
        saved=after,
        running=now,
        changed=tuple(s.name for s in changed),
        updates={s.toml: getattr(after, s.name) for s in changed},
        restart=tuple(restart),
    )


PASSKEY_FILE = "settings-passkey"
"""The file beside the ``--config`` file that holds the settings page's passkey."""


def passkey(config_file: str | os.PathLike[str]) -> tuple[Path, str, bool]:
    """The settings page's passkey when no HTTP password is set: read, or made and kept.

    As EVN Kaifa to MQTT protects its page with a generated passkey: 22
    URL-safe characters (128 bits from :func:`secrets.token_urlsafe`), written
    once to ``settings-passkey`` beside the configuration file, mode 0600,
    created exclusively (never replacing a file), and read back at every
    later start.

    Returns:
        The file, the passkey, and whether it was made now.

    Raises:
        OSError: The file can neither be read nor made.

    """
    import secrets

    path = Path(config_file).parent / PASSKEY_FILE
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return path, key, False
    key = secrets.token_urlsafe(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return path, key, True


def same_origin(headers: Mapping[str, str]) -> bool:
    """Whether a request comes from a page of this service (CSRF defence).

    A browser sends ``Origin`` (or at least ``Referer``) with a ``POST``; its
    host and port must be the request's ``Host``. A request with neither is not
    a browser's cross-site one (curl, scripts) and passes; the form's token
    and the JSON content type are checked besides (see the README).

    Args:
        headers: The request headers (case-insensitive mapping).

    Returns:
        False for an ``Origin`` or ``Referer`` of another host, or ``null``.

    """
    host = (headers.get("Host") or "").strip().lower()
    for name in ("Origin", "Referer"):
        value = headers.get(name)
        if value is not None:
            try:
                netloc = urlsplit(value.strip()).netloc.lower()
            except ValueError:
                return False
            return bool(host) and netloc == host
    return True


def describe(running: Config, saved: Config) -> dict[str, Any]:
    """The settings as ``GET /api/settings`` returns them.

    Args:
        running: The configuration in effect.
        saved: The configuration written to the file (differs from ``running``
            in settings that apply at the next start).

    Returns:
        ``{"file": path or None, "settings": {toml key: entry}}`` in the order
        of :data:`mbuspico.serve.config.SETTINGS`, where an entry is ``{"value": ...,
        "help": ..., "editable": bool, "live": bool}``; a secret has ``"set":
        bool`` (and ``"secret": true``) instead of ``"value"``. A setting saved
        but not yet in effect adds ``"atRestart"``: the saved value (for a
        secret: true).

    """
    out: dict[str, Any] = {}
    for s in SETTINGS:
        now, then = getattr(running, s.name), getattr(saved, s.name)
        entry: dict[str, Any] = {"help": s.help}
        if s.secret:
            entry["secret"] = True
            entry["set"] = bool(now)
        else:
            entry["value"] = now
        entry["editable"] = s.name in EDITABLE
        entry["live"] = s.name in LIVE
        if now != then:
            entry["atRestart"] = True if s.secret else then
        out[s.toml] = entry
    return {"file": running.config_file, "settings": out}


def _field(s: Setting, saved: Config) -> str:
    esc = html.escape
    value = getattr(saved, s.name)
    name = esc(s.toml)
    if s.name not in EDITABLE:
        return "set" if s.secret and value else ("" if s.secret else esc(_text(value)))
    if s.secret:
        hint = "set; type a new one to replace it" if value else "not set"
        return (
            f'<input type=password name="{name}" autocomplete=new-password '
            f'placeholder="{esc(hint)}" id="{name}">'
        )
    options: tuple[str, ...] | None = _CHOICES.get(s.name)
    if options is None and isinstance(value, bool):
        options = ("true", "false")
    shown = _text(value)
    if options is not None:
        items = "".join(
            f"<option{' selected' if o == shown else ''}>{esc(o)}</option>" for o in options
        )
        return f'<select name="{name}" id="{name}">{items}</select>'
    return f'<input name="{name}" value="{esc(shown)}" id="{name}">'


def render(
    running: Config,
    saved: Config,
    token: str,
    *,
    message: str | None = None,
    error: str | None = None,
) -> str:
    """The settings page: an HTML form posting to ``/settings``.

    Args:
        running: The configuration in effect.
        saved: The configuration in the file (the form's values).
        token: The service's form token (hidden field ``csrf``).
        message: A line to show (what the last change did), or None.
        error: Why the last change was refused, or None.

    Returns:
        The page (UTF-8 text); no secret's value is in it.

    """
    esc = html.escape
    rows = []
    for s in SETTINGS:
        when = "now" if s.name in LIVE else ("at restart" if s.name in EDITABLE else "in the file")
        pending = ""
        if getattr(running, s.name) != getattr(saved, s.name):
            pending = " <b>saved, applies at restart</b>"
        rows.append(
            f'<tr><td><label for="{esc(s.toml)}">{esc(s.toml)}</label></td>'
            f"<td>{_field(s, saved)}</td>"
            f"<td>{esc(s.help)} ({when}){pending}</td></tr>"
        )
    notice = ""
    if error:
        notice = f"<p class=err>{esc(error)}</p>"
    elif message:
        notice = f"<p class=ok>{esc(message)}</p>"
    where = (
        f"Saved to {esc(running.config_file)}."
        if running.config_file
        else "The service was started without <code>--config FILE</code>: nothing can be saved."
    )
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>mbuspico settings</title>
<style>body{{font:15px system-ui,sans-serif;margin:2em}}td{{padding:2px 12px}}
.err{{color:#b00}}.ok{{color:#070}}</style></head><body>
<h1>mbuspico settings</h1>{notice}
<p>{where} Secrets are never shown; leave a password field empty to keep it.</p>
<form method=post action="/settings">
<input type=hidden name=csrf value="{esc(token)}">
<table>{"".join(rows)}</table>
<p><button>Save</button></p></form>
<p><a href="/status.html">status</a> · <a href="/api/settings">JSON</a></p></body></html>
"""


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *tables, leaf = dotted.split(".")
    node = doc
    for part in tables:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is None:
                return
            child = node[part] = {}
        node = child
    if value is None:
        node.pop(leaf, None)
        if tables and not node:
            doc.pop(tables[0], None)  # every setting is at most one table deep
    else:
        node[leaf] = value


def write_settings(path: str | os.PathLike[str], updates: Mapping[str, Any]) -> None:
    """Change settings in a TOML file atomically, keeping everything else.

    The file is read, the ``updates`` (TOML key such as ``"udp.interval"`` ->
    value; None removes the key) are set, and the result is written with
    ``tomli-w`` to a temporary file in the same directory, flushed to disk
    (``fsync``), given the old file's permission bits (and owner, where
    allowed) and renamed over it (``os.replace``), so a reader or a power cut
    sees the old file or the new one, never a mix. A symlink is followed and
    its target replaced. Comments and layout are not kept (``tomli-w`` writes
    the data only). On any exception (an interrupt too) the temporary file is
    removed; one left by a crash is removed at the next start
    (:func:`remove_leftover_temp_files`).

    Args:
        path: The file; a missing file is created (mode 0600).
        updates: TOML key -> new value (str, int, float, bool) or None.

    Raises:
        OSError: The file or its directory cannot be read or written.
        ConfigError: The file is not valid TOML (nothing is written).

    """
    import tomli_w

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the interpreter
        import tomli as tomllib

    target = Path(os.path.realpath(path))
    try:
        with target.open("rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
        st: os.stat_result | None = target.stat()
    except FileNotFoundError:
        doc, st = {}, None
    except tomllib.TOMLDecodeError as e:
        msg = f"{target} is no longer valid TOML ({e}); not changed"
        raise ConfigError(msg) from None
    for key, value in updates.items():
        _set(doc, key, value)
    data = tomli_w.dumps(doc).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=TEMP_SUFFIX)
    try:
        try:
            out = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o600)
        if st is not None and hasattr(os, "chown"):
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # the rename itself reaches the disk with the directory
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
