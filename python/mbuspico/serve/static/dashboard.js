"use strict";
// mbuspico's dashboard: the latest reading pushed by /api/events (Server-Sent
// Events), plots drawn on canvas from /api/history. No library, no external
// resource. The names come from mbuspico.names (the JSON in #names).
(function () {
  const $ = (id) => document.getElementById(id);
  const NAMES = JSON.parse($("names").textContent);
  const init = JSON.parse($("initial").textContent);
  let reading = init.reading;
  let at = init.at;
  let status = init.status;
  let skew = status ? status.now - Date.now() / 1000 : 0; // service clock - browser clock
  let connected = true;
  const HOUR = 3600;
  const live = []; // [t, import W, export W] of the last hour, from the event stream
  const seeded = []; // the same from /api/history (raw) at load
  const last = {}; // counters at the previous status event
  const rose = {}; // counter -> when it last rose (service time)
  let recorded = null; // /api/history's field list; false: no history

  const now = () => Date.now() / 1000 + skew;
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  // -- values ---------------------------------------------------------------
  function shown(value, unit, field) {
    if (value === null || value === undefined) return ["—", unit || ""];
    if (typeof value === "boolean") return [value ? "yes" : "no", ""];
    if (typeof value === "number") {
      const n = field && NAMES.fields[field];
      if (n && n.unit === unit) return [(value * n.scale).toFixed(n.digits), n.displayUnit || ""];
      if (unit === "Wh" || unit === "varh") return [(value / 1000).toFixed(3), "k" + unit];
      if (unit === "kWh") return [value.toFixed(3), unit];
      return [String(value), unit || ""];
    }
    if (Array.isArray(value)) {
      const parts = value.map((x) => (Array.isArray(x) ? x.filter((y) => y !== null).join(" ") : x)).filter((x) => x !== null);
      return [parts.join("; ") || "—", unit || ""];
    }
    const text = String(value);
    return [/^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(text) ? text.replace("T", " ") : text, unit || ""];
  }
  // A P1 equipment identifier sent as hex: its text when printable.
  function identifier(code, value) {
    if (!/:96\.1\.[01]$/.test(code) || typeof value !== "string" || !/^([0-9a-fA-F]{2})+$/.test(value)) return value;
    const text = value.match(/../g).map((h) => String.fromCharCode(parseInt(h, 16))).join("");
    return /^[\x20-\x7e]+$/.test(text) ? text : value;
  }
  const label = (f) => (NAMES.fields[f] ? NAMES.fields[f].label : f);
  const codeLabel = (code, name) =>
    NAMES.obis[code] || (name ? name.replace(/[_/]+/g, " ").replace(/^./, (c) => c.toUpperCase()) : code);

  function rows(list) {
    return list
      .map((r) => `<tr><td>${esc(r[0])}</td><td class=n>${esc(r[1])}</td><td>${esc(r[2])}</td>${r.length > 3 ? `<td class=c>${esc(r[3])}</td>` : ""}</tr>`)
      .join("");
  }

  function fieldRow(f) {
    const v = reading[f];
    if (v === null || v === undefined) return null;
    const [text, unit] = shown(v, NAMES.fields[f].unit, f);
    return [label(f), text, unit];
  }

  function renderReading() {
    document.querySelector(".head").hidden = !!reading && reading.protocol === "mbus"; // no power
    for (const [id, f] of [["power-import", "activePowerPlus"], ["power-export", "activePowerMinus"]]) {
      const el = $(id);
      const v = reading ? reading[f] : null;
      el.textContent = typeof v === "number" ? String(Math.round(v)) : "—";
      el.dataset.value = typeof v === "number" ? String(v) : "";
    }
    if (!reading) return;
    const kind = { dlms: "DLMS push meter", dsmr: "DSMR P1 meter", mbus: "wired M-Bus meter" }[reading.protocol] || "meter";
    const number = reading.meterNumber || reading.id || "";
    const profile = status && status.device !== "auto" ? ` · profile ${status.device}` : "";
    const clock = reading.timestamp ? ` · meter clock ${reading.timestamp.replace("T", " ")}` : "";
    $("meter").textContent = `${kind} ${number}${profile}${clock}`;
    const phases = [];
    for (const p of ["1", "2", "3"]) {
      const u = reading["voltageL" + p];
      const i = reading["currentL" + p];
      if (u === null && i === null) continue;
      if (u === undefined && i === undefined) continue;
      phases.push([`L${p}`, shown(u, "V", "voltageL" + p).join(" "), shown(i, "A", "currentL" + p).join(" ")]);
    }
    let html = phases.length ? "<tr><th>Phase</th><th class=n>Voltage</th><th class=n>Current</th></tr>" : "";
    html += phases.map((r) => `<tr><td>${r[0]}</td><td class=n>${esc(r[1])}</td><td class=n>${esc(r[2])}</td></tr>`).join("");
    const pf = reading.powerFactor;
    if (typeof pf === "number") html += `<tr><td>${esc(label("powerFactor"))}</td><td class=n colspan=2>${pf.toFixed(3)}</td></tr>`;
    $("phases").innerHTML = html || "<tr><td>not sent by this meter</td></tr>";
    const energy = ["activeEnergyPlus", "activeEnergyMinus", "reactiveEnergyPlus", "reactiveEnergyMinus"].map(fieldRow).filter((r) => r);
    $("energy").innerHTML = rows(energy) || "<tr><td>not sent by this meter</td></tr>";
    const all = [];
    if (reading.protocol === "mbus") {
      for (const r of reading.records || []) {
        const [text, unit] = shown(r.value, r.unit);
        const more = r.storageNumber ? ` (storage ${r.storageNumber})` : "";
        all.push([(r.quantity || "Value") + more, text, unit]);
      }
    } else {
      for (const [code, e] of Object.entries(reading.obis || {})) {
        const [text, unit] = shown(identifier(code, e.value), e.unit, NAMES.obisFields[code]);
        all.push([codeLabel(code, e.name), text, unit, code]);
      }
      for (const [ch, d] of Object.entries(reading.mbus || {})) {
        const [text, unit] = shown(d.value, d.unit);
        all.push([`M-Bus channel ${ch}`, text, unit, ""]);
      }
    }
    $("values").innerHTML = rows(all);
  }

  // -- freshness and warnings ------------------------------------------------
  function ago(s) {
    if (s < 90) return `${Math.max(0, Math.round(s))} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${(s / 3600).toFixed(1)} h ago`;
  }

  function renderStatus() {
    const age = at ? now() - at : null;
    const threshold = status ? status.staleAfterSeconds : 10;
    const stale = age !== null && age > threshold;
    $("fresh").textContent = age === null ? "waiting for the meter" : `updated ${ago(age)}`;
    document.querySelector(".head").classList.toggle("stale", stale || !connected);
    const list = status ? status.warnings.slice() : [];
    const kinds = new Set(list.map((w) => w.kind));
    if (stale && !kinds.has("stale")) {
      list.push({ kind: "stale", text: `No reading from the meter for ${Math.round(age)} s (stale after ${Math.round(threshold)} s): check the cable to the meter and that its customer interface is enabled.` });
    }
    const recent = (k) => rose[k] !== undefined && now() - rose[k] < 60;
    if (recent("decryptionFailures") && !kinds.has("key")) {
      list.push({ kind: "key", text: "Telegrams could not be decrypted in the last minute: is the key on the Settings page the one your grid operator gave you for this meter?" });
    }
    if (recent("badChecksum") && !kinds.has("checksum")) {
      list.push({ kind: "checksum", text: "Frames with bad checksums in the last minute: check the wiring, the baud rate and the parity." });
    }
    if (!connected) list.push({ kind: "connection", text: "Lost the connection to the service; trying again." });
    const html = list.map((w) => `<p class=warn data-kind="${esc(w.kind)}">${esc(w.text)}</p>`).join("");
    if ($("warnings").innerHTML !== html) $("warnings").innerHTML = html;
  }

  function noteCounters() {
    if (!status) return;
    for (const [k, v] of Object.entries(status.telegrams)) {
      if (last[k] !== undefined && v > last[k]) rose[k] = status.now;
      last[k] = v;
    }
  }

  // -- charts ----------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function canvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = css("--muted");
    g.strokeStyle = css("--line");
    return [g, w, h];
  }

  function ticks(lo, hi, n) {
    const span = hi - lo || 1;
    const raw = span / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function frame(g, w, h, lo, hi, unit) {
    const box = { l: 44, r: w - 6, t: 14, b: h - 18 };
    const y = (v) => box.b - ((v - lo) / (hi - lo || 1)) * (box.b - box.t);
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of ticks(lo, hi, 4)) {
      g.beginPath();
      g.moveTo(box.l, y(v));
      g.lineTo(box.r, y(v));
      g.stroke();
      g.fillText(Math.abs(v) >= 10000 ? `${v / 1000}k` : String(v), box.l - 4, y(v));
    }
    g.textAlign = "left";
    g.textBaseline = "top";
    g.fillText(unit, 2, 0);
    return [box, y];
  }

  function message(c, text) {
    const [g, w, h] = canvas(c);
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText(text, w / 2, h / 2);
    c.dataset.points = "0";
  }

  // Times are labelled in the service's time zone (the `tz` of /api/history:
  // its hours, days and months are buckets of that zone), not the browser's.
  let zone; // undefined: the browser's, until a history answer names one
  let zoneParts = null;
  function local(t) {
    if (!zoneParts) {
      try {
        zoneParts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" });
      } catch (e) {
        zoneParts = new Intl.DateTimeFormat("en-GB", { hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" });
      }
    }
    const p = {};
    for (const { type, value } of zoneParts.formatToParts(new Date(t * 1000))) p[type] = Number(value);
    return p;
  }
  const hhmm = (t) => { const d = local(t); return `${d.hour}:${String(d.minute).padStart(2, "0")}`; };

  // series: [{t: [], v: [], lo: [], hi: [], color}], x from..to (unix s)
  function lineChart(c, from, to, series, unit, gap) {
    const count = series.reduce((n, s) => n + s.t.length, 0);
    if (!count) return message(c, "no readings in this period yet");
    const [g, w, h] = canvas(c);
    let lo = 0;
    let hi = 1;
    for (const s of series) for (const a of [s.v, s.lo || [], s.hi || []]) for (const v of a) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const tk = ticks(lo, hi * 1.05, 4);
    hi = Math.max(hi, tk[tk.length - 1]);
    const [box, y] = frame(g, w, h, lo, hi, unit);
    const x = (t) => box.l + ((t - from) / (to - from)) * (box.r - box.l);
    const steps = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
    const step = steps.find((s) => (to - from) / s <= Math.max(2, (box.r - box.l) / 60)) || 43200;
    g.textAlign = "center";
    for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
      if (x(t) > box.l + 16 && x(t) < box.r - 12) g.fillText(hhmm(t), x(t), box.b + 3);
    }
    for (const s of series) {
      if (s.lo && s.hi) {
        g.fillStyle = css("--band");
        for (let i = 0; i < s.t.length; i++) {
          const x0 = x(s.t[i]);
          g.fillRect(x0, y(s.hi[i]), Math.max(1, x(s.t[i] + 60) - x0), y(s.lo[i]) - y(s.hi[i]));
        }
      }
      g.strokeStyle = css(s.color);
      g.lineWidth = 1.5;
      g.beginPath();
      for (let i = 0; i < s.t.length; i++) {
        const broken = i === 0 || s.t[i] - s.t[i - 1] > gap;
        if (broken) g.moveTo(x(s.t[i]), y(s.v[i]));
        else g.lineTo(x(s.t[i]), y(s.v[i]));
        if (broken && (i + 1 >= s.t.length || s.t[i + 1] - s.t[i] > gap)) g.fillRect(x(s.t[i]) - 1, y(s.v[i]) - 1, 2, 2);
      }
      g.stroke();
      g.lineWidth = 1;
    }
    c.dataset.points = String(count);
  }

  // t: bucket starts; groups: [{v: {t: value}, color}]
  function barChart(c, t, groups, unit, fmt) {
    if (!t.length) return message(c, "no energy recorded in this period yet");
    const [g, w, h] = canvas(c);
    let hi = 0;
    let lo = 0;
    for (const gr of groups) for (const k of t) { const v = gr.v[k] || 0; if (v > hi) hi = v; if (v < lo) lo = v; }
    const tk = ticks(lo, hi || 1, 4);
    hi = Math.max(hi, tk[tk.length - 1]);
    const [box, y] = frame(g, w, h, lo, hi, unit);
    const slot = (box.r - box.l) / t.length;
    const bw = Math.max(1, (slot * 0.8) / groups.length);
    groups.forEach((gr, j) => {
      g.fillStyle = css(gr.color);
      t.forEach((k, i) => {
        const v = gr.v[k];
        if (v === undefined) return;
        const x0 = box.l + i * slot + slot * 0.1 + j * bw;
        g.fillRect(x0, Math.min(y(v), y(0)), bw, Math.abs(y(0) - y(v)));
      });
    });
    g.fillStyle = css("--muted");
    g.textAlign = "center";
    const every = Math.ceil(t.length / Math.max(1, (box.r - box.l) / 44));
    t.forEach((k, i) => { if (i % every === 0) g.fillText(fmt(k), box.l + (i + 0.5) * slot, box.b + 3); });
    c.dataset.points = String(t.length);
    const lastValue = groups.length ? groups[0].v[t[t.length - 1]] : undefined;
    c.dataset.last = lastValue === undefined ? "" : String(lastValue);
  }

  function drawHour() {
    const to = now();
    const from = to - HOUR;
    const pts = seeded.concat(live).filter((p) => p[0] >= from);
    const series = [
      { t: [], v: [], color: "--imp" },
      { t: [], v: [], color: "--exp" },
    ];
    for (const p of pts) {
      for (const j of [0, 1]) {
        if (typeof p[j + 1] === "number") { series[j].t.push(p[0]); series[j].v.push(p[j + 1]); }
      }
    }
    // A line joins readings up to 150 s apart (the history's raw readings, or a meter's push).
    const gap = Math.max(150, 3 * (status ? status.staleAfterSeconds : 10));
    lineChart($("chart-hour"), from, to, series, "W", gap);
  }

  function pushLive() {
    if (!reading || !at) return;
    const p = [at, reading.activePowerPlus, reading.activePowerMinus];
    if (typeof p[1] !== "number" && typeof p[2] !== "number") return;
    if (live.length && live[live.length - 1][0] >= at) return;
    live.push(p);
    while (live.length && (live[0][0] < at - HOUR || live.length > 20000)) live.shift();
  }

  async function history(field, from, to, step) {
    const url = `/api/history?field=${encodeURIComponent(field)}&from=${Math.floor(from)}&to=${Math.ceil(to)}&step=${step}`;
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${r.status}`);
    const d = await r.json();
    if (d.tz && d.tz !== zone) { zone = d.tz; zoneParts = null; }
    return d;
  }

  function has(field) {
    return Array.isArray(recorded) && recorded.some((f) => f.field === field);
  }

  async function loadFields() {
    try {
      const r = await fetch("/api/history", { headers: { Accept: "application/json" } });
      recorded = r.ok ? await r.json() : false;
    } catch (e) {
      recorded = null; // try again later
    }
    if (recorded === false || (Array.isArray(recorded) && !recorded.length)) {
      for (const id of ["chart-day", "chart-hourly", "chart-daily", "chart-monthly"]) {
        message($(id), recorded === false ? "no history recorded by this service" : "nothing recorded yet");
      }
    }
  }

  async function loadPowerDay() {
    if (!has("activePowerPlus")) return;
    const to = now();
    const series = [];
    for (const [f, color] of [["activePowerPlus", "--imp"], ["activePowerMinus", "--exp"]]) {
      if (!has(f)) continue;
      try {
        const d = await history(f, to - 24 * HOUR, to, "1m");
        const s = { t: [], v: [], lo: [], hi: [], color };
        const mean = d.mean || d.value;
        d.t.forEach((t, i) => {
          if (typeof mean[i] !== "number") return; // a minute without readings
          s.t.push(t);
          s.v.push(mean[i]);
          s.lo.push(d.min ? d.min[i] : mean[i]);
          s.hi.push(d.max ? d.max[i] : mean[i]);
        });
        series.push(s);
      } catch (e) { /* shown as no data */ }
    }
    lineChart($("chart-day"), to - 24 * HOUR, to, series, "W", 180);
  }

  async function seedHour() {
    if (!has("activePowerPlus")) return;
    const to = now();
    try {
      const imp = await history("activePowerPlus", to - HOUR, to, "raw");
      const exp = has("activePowerMinus") ? await history("activePowerMinus", to - HOUR, to, "raw") : { t: [], value: [] };
      const minus = new Map(exp.t.map((t, i) => [t, exp.value[i]]));
      seeded.length = 0;
      const first = live.length ? live[0][0] : Infinity;
      imp.t.forEach((t, i) => {
        if (t < first && typeof imp.value[i] === "number") seeded.push([t, imp.value[i], minus.get(t)]);
      });
      drawHour();
    } catch (e) { /* the live points alone */ }
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const PLOTS = [
    ["chart-hourly", 48 * HOUR, "1h", (t) => String(local(t).hour)],
    ["chart-daily", 62 * 24 * HOUR, "1d", (t) => { const d = local(t); return `${d.day}.${d.month}.`; }],
    ["chart-monthly", 731 * 24 * HOUR, "1mo", (t) => { const d = local(t); return `${MONTHS[d.month - 1]} ${String(d.year).slice(2)}`; }],
  ];

  async function loadEnergy() {
    const fields = [["activeEnergyPlus", "--imp"], ["activeEnergyMinus", "--exp"]].filter(([f]) => has(f));
    if (!fields.length) return;
    const to = now();
    const period = [];
    for (const [id, span, step, fmt] of PLOTS) {
      const groups = [];
      const t = new Set();
      const current = [];
      for (const [f, color] of fields) {
        try {
          const d = await history(f, to - span, to, step);
          const v = {};
          d.t.forEach((k, i) => {
            if (typeof d.value[i] !== "number") return; // no reading in the bucket
            v[k] = d.value[i] / 1000;
            t.add(k);
          });
          groups.push({ v, color });
          // The bucket in progress (this hour, today, this month): its energy so far.
          const n = d.t.length;
          const since = { "1h": HOUR, "1d": 25 * HOUR, "1mo": 31 * 24 * HOUR }[step];
          current.push(n && to - d.t[n - 1] < since && typeof d.value[n - 1] === "number" ? (d.value[n - 1] / 1000).toFixed(3) : "—");
        } catch (e) { current.push("—"); }
      }
      barChart($(id), [...t].sort((a, b) => a - b), groups, "kWh", fmt);
      period.push([{ "1h": "This hour", "1d": "Today", "1mo": "This month" }[step], ...current]);
    }
    const heads = fields.map(([f]) => (f === "activeEnergyPlus" ? "Import" : "Export"));
    $("period").innerHTML =
      `<tr><th></th>${heads.map((h) => `<th class=n>${h}</th>`).join("")}</tr>` +
      period.map((r) => `<tr><td>${r[0]}</td>${r.slice(1).map((v) => `<td class=n>${v} kWh</td>`).join("")}</tr>`).join("");
  }

  // Other registers (P1 gas or water channels, a wired M-Bus heat or water
  // meter): consumption per day over the last two months, one plot each.
  const ELECTRIC = ["activeEnergyPlus", "activeEnergyMinus", "reactiveEnergyPlus", "reactiveEnergyMinus"];
  const MEDIA = { gas: "Gas", water: "Water", heat: "Heat", cooling: "Cooling" };

  async function loadOthers() {
    const others = recorded.filter(
      (f) => (f.kind === "total" || f.kind === "energy") && !ELECTRIC.includes(f.field) && !/^\d-\d:/.test(f.field)
    );
    const to = now();
    for (const f of others.slice(0, 4)) {
      const id = "chart-" + f.field.replace(/[^A-Za-z0-9_]/g, "_");
      let c = $(id);
      if (!c) {
        const card = document.createElement("section");
        card.className = "card";
        const what = MEDIA[f.medium] || f.field.replace(/_/g, " ");
        card.innerHTML = `<h2>${esc(what)} per day, last two months</h2><canvas id="${id}" data-points=0></canvas>`;
        $("values").closest("section").before(card);
        c = $(id);
      }
      const kilo = f.unit === "Wh" ? 1000 : 1;
      try {
        const d = await history(f.field, to - 62 * 24 * HOUR, to, "1d");
        const v = {};
        const t = [];
        d.t.forEach((k, i) => {
          if (typeof d.value[i] === "number") { v[k] = d.value[i] / kilo; t.push(k); }
        });
        barChart(c, t, [{ v, color: "--imp" }], kilo > 1 ? "kWh" : f.unit || "", PLOTS[1][3]);
      } catch (e) { message(c, "not available"); }
    }
  }

  async function loadHistory() {
    if (recorded === null) await loadFields();
    if (!Array.isArray(recorded)) return;
    await seedHour();
    await loadPowerDay();
    await loadEnergy();
    await loadOthers();
  }

  // -- live ------------------------------------------------------------------
  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource("/api/events");
    es.addEventListener("reading", (e) => {
      const d = JSON.parse(e.data);
      reading = d.reading;
      at = d.at;
      pushLive();
      renderReading();
      renderStatus();
      drawHour();
    });
    es.addEventListener("status", (e) => {
      status = JSON.parse(e.data);
      skew = status.now - Date.now() / 1000;
      connected = true;
      noteCounters();
      renderStatus();
    });
    es.onerror = () => {
      connected = false;
      renderStatus();
      if (es.readyState === 2) setTimeout(connect, 5000); // refused (busy): try again later
    };
  }

  noteCounters();
  pushLive();
  renderReading();
  renderStatus();
  drawHour();
  connect();
  setInterval(renderStatus, 1000);
  setInterval(drawHour, 10000);
  loadHistory();
  setInterval(() => { recorded = Array.isArray(recorded) ? recorded : null; loadHistory(); }, 5 * 60 * 1000);
  let resized = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => { drawHour(); loadHistory(); }, 200);
  });
})();
