// moodwire dashboard: draws the JSON view (docs/dashboard.md) that /api/events pushes a few times a second.
// Plain JS, SVG and canvas; nothing is loaded from elsewhere. Text from the stream goes in with
// textContent only, never as HTML. Elements carry stable ids and data-* attributes (the values shown),
// which tests/test_dashboard.py reads.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
// Same colours as `moodwire view` (pipeline/viewer/draw.py PALETTE, there in BGR), by track id.
const PALETTE = ["#28a0ff", "#ffc83c", "#ff5ac8", "#a0ff5a", "#785aff", "#ff7828"];
const NO_FACE = "#dcdcdc";

function colour(key) {
  return key === "voice" ? NO_FACE : PALETTE[Number(key) % PALETTE.length];
}

function personName(key) {
  return key === "voice" ? "voice only" : "#" + key;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(x, digits = 2, signed = true) {
  if (x === null || x === undefined) return "–";
  return (signed && x >= 0 ? "+" : "") + x.toFixed(digits);
}

// ------------------------------------------------------------------ header

function drawHeader(view) {
  const status = document.getElementById("stream-status");
  const alive = view.stream.alive;
  status.dataset.alive = String(alive);
  if (alive) status.textContent = "live";
  else if (view.stream.frame_age_s === null) status.textContent = "waiting for affect.frame";
  else status.textContent = `stream stopped: no affect.frame for ${view.stream.frame_age_s.toFixed(1)} s`;
  const sub = view.subscriber || {};
  if (sub.handshake_error) status.textContent += ` (${sub.handshake_error})`;
  const frame = view.frame;
  document.getElementById("frame").dataset.frameIndex = frame ? String(frame.frame_index) : "";
  document.getElementById("frame-index").textContent = frame ? String(frame.frame_index) : "–";
  document.getElementById("fps").textContent = view.stream.fps === null ? "–" : view.stream.fps.toFixed(1);
  const missing = document.getElementById("missing");
  missing.textContent = frame && frame.missing.length
    ? "missing: " + frame.missing.map((m) => `${m} (${frame.notes[m] || "?"})`).join(", ") : "";
  document.getElementById("endpoint").textContent = sub.endpoint ? "from " + sub.endpoint : "";
}

// ------------------------------------------------------------------ circumplex

function drawCircumplex(view) {
  const group = document.getElementById("trails");
  group.replaceChildren();
  for (const person of view.persons) {
    if (person.valence === null || person.arousal === null) continue;
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("points", person.trail.map(([v, a]) => `${v},${-a}`).join(" "));
    line.setAttribute("class", "trail");
    line.setAttribute("stroke", colour(person.key));
    const dot = document.createElementNS(SVG_NS, "circle");
    dot.setAttribute("id", "dot-" + person.key);
    dot.setAttribute("class", "dot");
    dot.setAttribute("cx", String(person.valence));
    dot.setAttribute("cy", String(-person.arousal));  // up is aroused
    dot.setAttribute("r", "0.06");
    dot.setAttribute("fill", colour(person.key));
    dot.dataset.valence = String(person.valence);
    dot.dataset.arousal = String(person.arousal);
    const label = document.createElementNS(SVG_NS, "text");
    label.setAttribute("x", String(person.valence + 0.08));
    label.setAttribute("y", String(-person.arousal + 0.03));
    label.setAttribute("class", "dot-label");
    label.textContent = personName(person.key);
    group.append(line, dot, label);
  }
}

// ------------------------------------------------------------------ persons

function drawPersons(view) {
  const box = document.getElementById("persons");
  box.replaceChildren();
  if (!view.persons.length) {
    box.append(el("p", { class: "dim" }, view.frame ? "no one in view and no one speaking" : "no one yet"));
    return;
  }
  for (const person of view.persons) box.append(personCard(person, view.frame.frame_index));
}

function personCard(person, frameIndex) {
  const card = el("div", {
    id: "person-" + person.key, class: "person", "data-track": person.key, "data-label": person.label,
    "data-valence": String(person.valence), "data-arousal": String(person.arousal),
    "data-confidence": String(person.confidence), "data-frame-index": String(frameIndex),
  });
  card.style.borderColor = colour(person.key);
  const head = el("div", { class: "person-head" });
  head.append(el("b", {}, personName(person.key) + " "), el("span", { class: "label" }, person.label || "–"),
    el("span", { class: "dim" }, ` confidence ${fmt(person.confidence, 2, false)}`));
  const va = el("div", { class: "va" });
  va.append(el("span", { class: "valence" }, "valence " + fmt(person.valence)),
    el("span", { class: "arousal" }, " arousal " + fmt(person.arousal)),
    el("span", { class: "dim" }, ` (this frame, unsmoothed: ${fmt(person.valence_raw)} / ${fmt(person.arousal_raw)})`));
  card.append(head, va, modalityLine(person.inputs), bars(person));
  return card;
}

function modalityLine(inputs) {
  const line = el("div", { class: "modalities" });
  for (const input of inputs) {
    const text = input.present ? `${input.modality} ${Math.round(input.weight * 100)}%` : `${input.modality}: ${input.reason || "absent"}`;
    line.append(el("span", { class: "chip " + (input.present ? "live" : "absent"), "data-modality": input.modality,
      "data-present": String(input.present), title: input.reason || "" }, text));
  }
  return line;
}

function bars(person) {
  const table = el("div", { class: "bars" });
  person.labels.forEach((name, k) => {
    const p = person.probs[k] || 0;
    const row = el("div", { class: "bar-row", "data-label": name, "data-p": String(p) });
    const track = el("div", { class: "bar-track" });
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = (100 * Math.min(Math.max(p, 0), 1)).toFixed(1) + "%";
    fill.style.background = colour(person.key);
    track.append(fill);
    row.append(el("span", { class: "bar-name" }, name), track, el("span", { class: "bar-value" }, p.toFixed(2)));
    table.append(row);
  });
  return table;
}

// ------------------------------------------------------------------ rolling plot

function drawPlot(view) {
  const canvas = document.getElementById("va-plot");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  const windowS = view.series.window_s;
  const x = (t) => pad + (w - pad - 6) * (1 + t / windowS);  // t: seconds before now (negative)
  const y = (value) => 6 + (h - 12) * (1 - value) / 2;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#555"; ctx.fillStyle = "#999"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.font = "11px sans-serif";
  for (const [level, name] of [[1, "+1"], [0, "0"], [-1, "−1"]]) {
    ctx.beginPath(); ctx.moveTo(pad, y(level)); ctx.lineTo(w - 6, y(level)); ctx.stroke();
    ctx.fillText(name, 2, y(level) + 4);
  }
  for (let s = 0; s <= windowS; s += 10) ctx.fillText(s ? `-${s}s` : "now", x(-s) - 12, h - 1);
  for (const [key, points] of Object.entries(view.series.persons)) {
    ctx.strokeStyle = colour(key); ctx.lineWidth = 2;
    for (const [column, dash] of [[1, []], [2, [5, 4]]]) {
      ctx.setLineDash(dash); ctx.beginPath();
      points.forEach((point, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(point[0]), y(point[column])));
      ctx.stroke();
    }
  }
  canvas.dataset.points = String(Object.values(view.series.persons).reduce((n, p) => n + p.length, 0));
}

// ------------------------------------------------------------------ transcript

function drawTranscript(view) {
  document.getElementById("hearing").textContent = view.hearing ? "hearing: " + view.hearing + " …" : "";
  const list = document.getElementById("transcript");
  list.replaceChildren();
  for (const utt of view.utterances) {
    const item = el("li", { class: "utterance", "data-utterance-id": utt.utterance_id, "data-stage": utt.stage,
      "data-label": utt.label,
      "data-valence": String(utt.valence), "data-arousal": String(utt.arousal) });
    const who = utt.speaker_track_id === null ? "?" : "#" + utt.speaker_track_id;
    const meta = el("div", { class: "utt-meta" });
    meta.append(el("b", { title: utt.speaker_reason }, who + " "), el("span", { class: "label" }, utt.label || "–"),
      el("span", { class: "dim" }, ` v ${fmt(utt.valence)} a ${fmt(utt.arousal)} conf ${fmt(utt.confidence, 2, false)}` +
        ` · from ${utt.modalities.join("+") || "nothing"}` +
        (utt.missing.length ? ` · missing ${utt.missing.map((m) => `${m} (${utt.notes[m] || "?"})`).join(", ")}` : "") +
        ` · ${utt.age_s.toFixed(0)} s ago`));
    const none = utt.stage === "acoustic" ? "(the words are coming)" : "(no words)";  // the final record replaces it
    item.append(el("div", { class: "text" }, utt.text || none), meta);
    list.append(item);
  }
}

// ------------------------------------------------------------------ health and latency

function drawHealth(view) {
  const lat = view.latency;
  document.getElementById("latency-fusion").textContent = `${fmt(lat.fusion_ms_p50, 1, false)} / ${fmt(lat.fusion_ms_p90, 1, false)} ms`;
  document.getElementById("latency-receive").textContent = `${fmt(lat.receive_ms_p50, 1, false)} / ${fmt(lat.receive_ms_p90, 1, false)} ms`;
  document.getElementById("latency-utterance").textContent = lat.utterance_delay_ms === null ? "–" : `${lat.utterance_delay_ms.toFixed(0)} ms`;
  const rows = document.getElementById("health-rows");
  const notes = document.getElementById("health-notes");
  if (!view.health) return;
  rows.replaceChildren();
  for (const node of view.health.nodes) {
    const row = el("tr", { class: "node " + (node.alive ? "up" : "down"), "data-node": node.name,
      "data-alive": String(node.alive), "data-state": node.state });
    for (const cell of [node.name, node.state, node.rate_hz.toFixed(1), String(node.restarts),
      `${node.uptime_s.toFixed(0)} s`, node.last_error]) row.append(el("td", {}, cell));
    rows.append(row);
  }
  notes.replaceChildren(...view.health.notes.map((n) => el("li", {}, n)));
  if (view.health.age_s > 3) notes.append(el("li", {}, `system.health is ${view.health.age_s.toFixed(0)} s old`));
}

function drawRules(view) {
  for (const modality of ["face", "voice", "text"]) {
    if (view.rules[modality]) document.getElementById("rule-" + modality).textContent = view.rules[modality];
  }
}

// ------------------------------------------------------------------ wiring

function draw(view) {
  drawHeader(view);
  drawCircumplex(view);
  drawPersons(view);
  drawPlot(view);
  drawTranscript(view);
  drawHealth(view);
  drawRules(view);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("state", (event) => draw(JSON.parse(event.data)));
  events.onerror = () => {
    const status = document.getElementById("stream-status");
    status.dataset.alive = "false";
    status.textContent = "lost the dashboard server; retrying…";
  };
}

connect();
