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

The page is in sections (:data:`mbuspico.serve.config.SECTIONS`); each setting shows
its label, the value in effect and where it came from
(:data:`mbuspico.serve.config.SOURCES`: under ``--demo`` what the demo runs with),
and when a change applies. Section, label and when a change applies are fields
of each :class:`mbuspico.serve.config.Setting`, the one place they are kept.

Secrets (the ``secret=True`` settings of :data:`mbuspico.serve.config.SETTINGS`: keys,
passwords, tokens) are never shown: only whether they are set. They can be
replaced (a non-empty value), never read back; an empty value keeps the old one.

Source: the project's issue 12 ("Settings page": EVN Kaifa to MQTT configures
the device from a web page behind a passkey) and issue 21 (a page a person can
read: sections, labels, the value in effect and its source, 360 px wide); the
cross-site defences follow the OWASP CSRF Prevention Cheat Sheet (origin check, synchronizer token,
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
    SECTIONS,
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
    "label_of",
    "passkey",
    "plan_change",
    "remove_leftover_temp_files",
    "render",
    "same_origin",
    "section_of",
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

LIVE: frozenset[str] = frozenset(s.name for s in SETTINGS if s.applies == "now")
"""Settings (by name) a ``POST`` applies at once (``applies="now"`` in
:data:`mbuspico.serve.config.SETTINGS`): UDP, the log level, the HTTP user and
password, the M-Bus poll interval and every MQTT, Graphite and InfluxDB
setting."""

AT_RESTART: frozenset[str] = frozenset(s.name for s in SETTINGS if s.applies == "restart")
"""Settings (by name) a ``POST`` saves for the next start (``applies="restart"``):
the meter, its keys and serial port, where HTTP listens, the P1 time zone and
code table, the wired M-Bus address, the CSV directory (its ``/files`` routes
are set up at start) and the mDNS announcement."""

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
        overridden: TOML keys of changed settings the service was started
            with a flag for: at the next start with the same command line the
            flag, not the file, sets them.

    """

    path: str
    saved: Config
    running: Config
    changed: tuple[str, ...]
    updates: dict[str, Any]
    restart: tuple[str, ...]
    overridden: tuple[str, ...] = ()

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
        """``{"changed": [...], "applied": [...], "restart": [...]}``, as TOML keys.

        ``"overridden"`` (:attr:`overridden`) is added when a changed setting
        was set by a flag at start.
        """
        result = {
            "changed": [_BY_NAME[n].toml for n in self.changed],
            "applied": [_BY_NAME[n].toml for n in self.changed if n in LIVE],
            "restart": list(self.restart),
        }
        if self.overridden:
            result["overridden"] = list(self.overridden)
        return result


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
    sources = {**running.sources, **{name: after.source(name) for name in live}}
    now = dataclasses.replace(running, sources=sources, **live)
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
        overridden=tuple(s.toml for s in changed if started_with.source(s.name) == "flag"),
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


def section_of(s: Setting) -> str:
    """The settings page's section of ``s``: its own, else the one its TOML table names."""
    if s.section:
        return s.section
    table = s.toml.split(".")[0] if "." in s.toml else ""
    return _TABLE_SECTIONS.get(table, "Meter")


def label_of(s: Setting) -> str:
    """The name people read for ``s``: its label, else its TOML key's last part."""
    if s.label:
        return s.label
    leaf = s.toml.rsplit(".", 1)[-1].replace("_", " ")
    return leaf[:1].upper() + leaf[1:]


_TABLE_SECTIONS = {
    "serial": "Meter",
    "dsmr": "Meter",
    "mbus": "Meter",
    "http": "HTTP",
    "udp": "UDP",
    "mqtt": "MQTT",
    "csv": "CSV",
    "graphite": "Graphite",
    "influx": "InfluxDB",
    "mdns": "mDNS",
    "history": "History",
    "log": "Logging",
}

_SWITCHES = {
    "UDP": "udp_enabled",
    "MQTT": "mqtt_enabled",
    "CSV": "csv_directory",
    "Graphite": "graphite_host",
    "InfluxDB": "influx_url",
    "mDNS": "mdns_enabled",
    "History": "history_enabled",
}
"""The setting that turns a section's part of the service on (a value: on)."""


def _origin(s: Setting, config: Config, effect: Mapping[str, Any]) -> tuple[str, str | None]:
    """Where ``s``'s value in effect came from: a kind of SOURCES and what it was.

    A value of ``effect`` under ``--demo`` is the demo's (the simulated meter's
    port and keys); otherwise the value is one worked out from the setting's
    (the default history file's path) and keeps its source.
    """
    kind = "demo" if config.demo and s.name in effect else config.source(s.name)
    where: str | None = {
        "environment": s.env,
        "file": config.config_file,
        "flag": s.flag,
        "demo": "--demo",
        "profile": None if config.profile is None else config.profile.name,
    }.get(kind)
    return kind, where


def _source_text(kind: str, where: str | None) -> str:
    """How the page says where a value came from."""
    if kind in ("environment", "flag", "profile") and where:
        return f"{kind} {where}"
    return kind


def describe(
    running: Config, saved: Config, effect: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The settings as ``GET /api/settings`` returns them.

    Args:
        running: The configuration in effect.
        saved: The configuration written to the file (differs from ``running``
            in settings that apply at the next start).
        effect: Values in effect that are not ``running``'s, by setting name:
            under ``--demo`` the simulated meter's port and keys and the MQTT
            topic prefix (source ``"demo"``), and the history file's path when
            none is set (:meth:`mbuspico.serve.Service.in_effect`).

    Returns:
        ``{"file": path or None, "demo": bool, "sections": [...], "settings":
        {toml key: entry}}`` in the order of
        :data:`mbuspico.serve.config.SETTINGS`, where an entry is ``{"label":
        ..., "section": ..., "help": ..., "value": ..., "source": one of
        :data:`mbuspico.serve.config.SOURCES`, "from": the variable, file,
        flag or profile (None for a default), "applies": "now", "restart" or
        "file", "editable": bool, "live": bool}``; a secret has ``"set":
        bool`` (and ``"secret": true``) instead of ``"value"``. A setting saved
        but not yet in effect adds ``"atRestart"``: the saved value (for a
        secret: true).

    """
    effect = effect or {}
    out: dict[str, Any] = {}
    for s in SETTINGS:
        now, then = getattr(running, s.name), getattr(saved, s.name)
        kind, where = _origin(s, running, effect)
        entry: dict[str, Any] = {"label": label_of(s), "section": section_of(s), "help": s.help}
        shown = effect.get(s.name, now)
        if s.secret:
            entry["secret"] = True
            entry["set"] = bool(shown)
        else:
            entry["value"] = shown
        entry["source"] = kind
        entry["from"] = where
        entry["applies"] = s.applies
        entry["editable"] = s.name in EDITABLE
        entry["live"] = s.name in LIVE
        if now != then:
            entry["atRestart"] = True if s.secret else then
        out[s.toml] = entry
    sections = [n for n in SECTIONS if any(section_of(s) == n for s in SETTINGS)]
    return {
        "file": running.config_file,
        "demo": running.demo,
        "sections": sections,
        "settings": out,
    }


def _shown(value: Any) -> str:
    """A value in effect as the page shows it."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value == "":
        return "empty"
    return str(value)


def _field(s: Setting, saved: Config) -> str:
    esc = html.escape
    value = getattr(saved, s.name)
    name = esc(s.toml)
    described = f'aria-describedby="h-{name}"'
    if s.secret:
        hint = "set; type to replace" if value else "not set"
        return (
            f'<input type=password name="{name}" autocomplete=new-password '
            f'placeholder="{esc(hint)}" id="{name}" {described}>'
        )
    options: tuple[str, ...] | None = _CHOICES.get(s.name)
    if options is None and isinstance(value, bool):
        options = ("true", "false")
    shown = _text(value)
    if options is not None:
        items = "".join(
            f"<option{' selected' if o == shown else ''}>{esc(o)}</option>" for o in options
        )
        return f'<select name="{name}" id="{name}" {described}>{items}</select>'
    return f'<input name="{name}" value="{esc(shown)}" id="{name}" {described}>'


_WHEN = {"now": "applies now", "restart": "at restart", "file": "file only"}


def _row(s: Setting, running: Config, saved: Config, effect: Mapping[str, Any]) -> str:
    """One setting on the page: label, value in effect and its source, field, help."""
    esc = html.escape
    key = esc(s.toml)
    demo = running.demo and s.name in effect
    now = effect.get(s.name, getattr(running, s.name))
    then = getattr(saved, s.name)
    kind, where = _origin(s, running, effect)
    value = ("set" if now else "not set") if s.secret else _shown(now)
    editable = s.name in EDITABLE
    when = _WHEN.get(s.applies, "file only") if editable else _WHEN["file"]
    title = f'<label for="{key}">' if editable else "<span class=lbl>"
    title += esc(label_of(s)) + ("</label>" if editable else "</span>")
    source = esc(_source_text(kind, where))
    lines = [
        f'<div class=set id="s-{key}"><div class=head>{title}'
        f"<span class=tag>{esc(when)}</span></div>",
        f'<div class=eff>in effect: <span class=v>{esc(value)}</span> <span class="src {kind}">'
        f"{source}</span></div>",
    ]
    if getattr(running, s.name) != then:
        pending = "" if s.secret else f": <span class=v>{esc(_shown(then))}</span>"
        lines.append(f"<div class=pend><b>saved, applies at restart</b>{pending}</div>")
    if editable:
        lines.append(_field(s, saved))
        if demo and not s.secret:
            lines.append(
                "<div class=note>the field holds the saved value; the demo runs with its own</div>"
            )
        if saved.source(s.name) == "flag":
            lines.append(
                f"<div class=warn>set by the flag {esc(s.flag)}, which overrides the file "
                "at every start</div>"
            )
    help_text = esc(s.help)
    if not editable:
        help_text += "; change it in the file, then restart"
    names = " · ".join(f"<code>{esc(n)}</code>" for n in (s.toml, s.env, s.flag) if n)
    lines.append(f'<p class=help id="h-{key}">{help_text}<br>{names}</p></div>')
    return "\n".join(lines)


_CSS = """\
:root{color-scheme:light dark;--bg:#fff;--fg:#1c1d1f;--mut:#5c6068;--line:#d5d8dc;
--card:#f5f6f8;--acc:#0a58ca;--err:#a4231c;--ok:#1d6b31;--warn:#7d4d00;--pend:#fff4d6}
@media (prefers-color-scheme:dark){:root{--bg:#121416;--fg:#e4e6e8;--mut:#a2a7ad;
--line:#34383d;--card:#1b1e21;--acc:#8cb6ff;--err:#ffb4ab;--ok:#8fd19e;--warn:#f3c26b;
--pend:#3a3113}}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:46rem;padding:.8rem;
background:var(--bg);color:var(--fg);overflow-wrap:anywhere}
a{color:var(--acc)}
header{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:baseline;
justify-content:space-between}
h1{font-size:1.35rem;margin:.2rem 0}
nav a{margin-right:.9rem;white-space:nowrap}
.toc a{margin-right:.6rem}
details{border:1px solid var(--line);border-radius:8px;margin:.7rem 0;background:var(--card)}
summary{cursor:pointer;padding:.55rem .75rem;font-weight:600;font-size:1.05rem}
summary small{font-weight:400;color:var(--mut)}
.set{padding:.55rem .75rem;border-top:1px solid var(--line)}
.head{display:flex;flex-wrap:wrap;gap:.2rem .5rem;align-items:baseline;
justify-content:space-between}
label,.lbl{font-weight:600}
.tag{font-size:.78rem;padding:0 .4rem;border:1px solid var(--line);border-radius:4px;
color:var(--mut);white-space:nowrap}
.eff{margin:.15rem 0 .3rem}
.v{font-family:ui-monospace,monospace;font-size:.92em}
.src{font-size:.8rem;color:var(--mut);white-space:nowrap}
.src.demo{color:var(--warn)}
input,select{display:block;width:100%;max-width:100%;font:inherit;padding:.35rem .5rem;
border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
.help{margin:.3rem 0 0;font-size:.85rem;color:var(--mut)}
.help code{white-space:nowrap}
code{font-size:.9em}
.pend{background:var(--pend);padding:.1rem .4rem;border-radius:4px;margin:.2rem 0}
.note,.warn{font-size:.85rem;margin-top:.25rem}
.warn{color:var(--warn)}
.err{color:var(--err);font-weight:600}
.ok{color:var(--ok);font-weight:600}
.demo-bar{border:1px solid var(--warn);border-radius:8px;padding:.5rem .75rem}
.save{position:sticky;bottom:0;background:var(--bg);padding:.6rem 0;margin:0;
border-top:1px solid var(--line)}
button{font:inherit;font-weight:600;padding:.45rem 1.6rem}
"""


def render(
    running: Config,
    saved: Config,
    token: str,
    *,
    message: str | None = None,
    error: str | None = None,
    effect: Mapping[str, Any] | None = None,
) -> str:
    """The settings page: an HTML form posting to ``/settings``, in sections.

    Each setting shows its label, the value in effect and where it came from
    (:data:`mbuspico.serve.config.SOURCES`), when a change applies, the field
    holding the saved value, and its help with its TOML key, environment
    variable and flag. A section whose part of the service is off starts
    folded.

    Args:
        running: The configuration in effect.
        saved: The configuration in the file (the form's values).
        token: The service's form token (hidden field ``csrf``).
        message: A line to show (what the last change did), or None.
        error: Why the last change was refused, or None.
        effect: Values in effect that are not ``running``'s (see :func:`describe`).

    Returns:
        The page (UTF-8 text); no secret's value is in it.

    """
    esc = html.escape
    effect = effect or {}
    parts: list[str] = []
    toc: list[str] = []
    for section in SECTIONS:
        members = [s for s in SETTINGS if section_of(s) == section]
        if not members:
            continue
        anchor = section.lower()
        toc.append(f'<a href="#{anchor}">{esc(section)}</a>')
        switch = _SWITCHES.get(section)
        on = True if switch is None else bool(getattr(running, switch, True))
        state = "" if switch is None else f" <small>{'on' if on else 'off'}</small>"
        rows = "\n".join(_row(s, running, saved, effect) for s in members)
        parts.append(
            f'<details id="{anchor}"{" open" if on else ""}><summary>{esc(section)}{state}'
            f"</summary>\n{rows}\n</details>"
        )
    notice = ""
    if error:
        notice = f"<p class=err>{esc(error)}</p>"
    elif message:
        notice = f"<p class=ok>{esc(message)}</p>"
    where = (
        f"Saved to <code>{esc(running.config_file)}</code>."
        if running.config_file
        else "The service was started without <code>--config FILE</code>: nothing can be saved."
    )
    demo = ""
    if running.demo:
        port = effect.get("serial_port", running.serial_port)
        demo = (
            f"<p class=demo-bar><b>Demo</b>: reading a simulated meter on "
            f"<code>{esc(str(port))}</code>. Values marked <i>demo</i> are what the demo "
            "runs with; the fields hold what is saved for the real meter.</p>"
        )
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>mbuspico settings</title>
<style>{_CSS}</style></head><body>
<header><h1>mbuspico settings</h1>
<nav><a href="/dashboard">Dashboard</a><a href="/status.html">Status</a>
<a href="/api/settings">JSON</a></nav></header>
{demo}{notice}
<p>{where} Each setting shows the value in effect and where it came from: default,
profile (the meter profile's), environment, file, flag or demo. Secrets are never shown,
only whether they are set; leave a password field empty to keep it. Flags override the
file, the file overrides the environment.</p>
<p class=toc>{" ".join(toc)}</p>
<form method=post action="/settings">
<input type=hidden name=csrf value="{esc(token)}">
{"".join(parts)}
<p class=save><button>Save</button></p></form>
<p><a href="/dashboard">Dashboard</a> · <a href="/status.html">Status</a> ·
<a href="/api/settings">JSON</a></p></body></html>
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
