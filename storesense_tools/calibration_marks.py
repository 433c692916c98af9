"""The installer's marking page: click floor marks on a camera still, type their metres.

``storesense calibrate-marks --image still.png --out marks.html`` writes one self-contained
HTML file (the still embedded as a data URL, no server, no network: it opens from a USB stick
on the installer's laptop). In it the installer clicks each measured floor mark and types its
floor position in metres, optionally drags a box around each person standing in the still,
and saves ``marks.csv`` (``u,v,x,y``) and ``people.csv`` (``x1,y1,x2,y2``): the two files
``storesense calibrate-check`` reads, which fits the map, reports every mark's residual and
leave-one-out error, checks people's heights against it and refuses a calibration that would
misplace people by more than 0.5 m. The page only records clicks; the judgement stays in one
place (``edge.floor.geometry.check_calibration``). Pixel coordinates are the still's own
pixels whatever size the page draws it at.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import cv2

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Floor marks: __TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #17324d; background: #f4f6f8; }
header { background: #17324d; color: #fff; padding: 10px 16px; }
header h1 { font-size: 18px; margin: 0; }
main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
#wrap { position: relative; max-width: 100%; }
#still { display: block; max-width: 100%; cursor: crosshair; }
#marks-layer { position: absolute; inset: 0; pointer-events: none; }
aside { flex: 1; min-width: 320px; }
.mode button { font-size: 15px; padding: 6px 12px; margin-right: 6px; }
.mode button[aria-pressed=true] { background: #17324d; color: #fff; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-top: 8px; }
th, td { border-bottom: 1px solid #dde3ea; padding: 4px 6px; text-align: left; font-size: 14px; }
td input { width: 6em; font-size: 14px; }
.help { font-size: 14px; line-height: 1.4; }
.warn { color: #a4262c; font-weight: 600; }
code { background: #e8edf2; padding: 1px 4px; }
</style></head>
<body>
<header><h1>Floor marks on __TITLE__ (__W__ &times; __H__ px)</h1></header>
<main>
<div id="wrap"><img id="still" alt="camera still" src="__SRC__" width="__W__" height="__H__">
<svg id="marks-layer" viewBox="0 0 __W__ __H__" preserveAspectRatio="none"></svg></div>
<aside>
<p class="help"><b>Floor marks</b>: click where a measured mark touches the floor, then type
its position on the floor plan in metres (x from the left wall, y from the front). At least 5
marks, spread over the floor the camera sees, near and far.<br><b>People</b>: drag a box
from head to feet around someone standing in the still (optional: it checks the height).</p>
<div class="mode">
<button id="mode-marks" aria-pressed="true">Floor marks</button>
<button id="mode-people" aria-pressed="false">People</button></div>
<table id="marks"><thead><tr><th>#</th><th>u px</th><th>v px</th><th>x m</th><th>y m</th>
<th></th></tr></thead><tbody></tbody></table>
<p id="marks-status" class="warn"></p>
<table id="people"><thead><tr><th>person</th><th>box px</th><th></th></tr></thead>
<tbody></tbody></table>
<p><button id="save-marks">Save marks.csv</button>
<button id="save-people">Save people.csv</button></p>
<p class="help">Then check it:<br><code>storesense calibrate-check --image __NAME__
--points marks.csv --boxes people.csv --out check.png --calibration-out cam.yaml</code></p>
</aside></main>
<script>
"use strict";
const W = __W__, H = __H__;
const img = document.getElementById("still");
const layer = document.getElementById("marks-layer");
const marks = [];   // {u, v, x, y}
const people = [];  // [x1, y1, x2, y2]
let mode = "marks", dragFrom = null;

function toPx(ev) {  // the still's own pixels, whatever size it is drawn at
  const r = img.getBoundingClientRect();
  return [(ev.clientX - r.left) * W / r.width, (ev.clientY - r.top) * H / r.height];
}
const r1 = (n) => Math.round(n * 10) / 10;

function draw() {
  const ns = "http://www.w3.org/2000/svg";
  layer.replaceChildren();
  marks.forEach((m, i) => {
    const c = document.createElementNS(ns, "circle");
    Object.entries({ cx: m.u, cy: m.v, r: Math.max(3, W / 120), fill: "none",
      stroke: "#ff2d55", "stroke-width": Math.max(1.5, W / 320) })
      .forEach(([k, v]) => c.setAttribute(k, v));
    const t = document.createElementNS(ns, "text");
    Object.entries({ x: m.u + W / 90, y: m.v - W / 90, fill: "#ff2d55",
      "font-size": Math.max(10, W / 40), "font-weight": 700 })
      .forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = String(i + 1);
    layer.append(c, t);
  });
  people.forEach((b) => {
    const rc = document.createElementNS(ns, "rect");
    Object.entries({ x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1], fill: "none",
      stroke: "#34c759", "stroke-width": Math.max(1.5, W / 320) })
      .forEach(([k, v]) => rc.setAttribute(k, v));
    layer.append(rc);
  });
  const body = document.querySelector("#marks tbody");
  body.replaceChildren(...marks.map((m, i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${i + 1}</td><td>${m.u}</td><td>${m.v}</td>` +
      `<td><input data-k="x" inputmode="decimal" aria-label="mark ${i + 1} x metres"></td>` +
      `<td><input data-k="y" inputmode="decimal" aria-label="mark ${i + 1} y metres"></td>` +
      `<td><button aria-label="remove mark ${i + 1}">&times;</button></td>`;
    tr.querySelectorAll("input").forEach((inp) => {
      inp.value = m[inp.dataset.k] ?? "";
      inp.addEventListener("input", () => { m[inp.dataset.k] = inp.value.trim(); status(); });
    });
    tr.querySelector("button").onclick = () => { marks.splice(i, 1); draw(); };
    return tr;
  }));
  const pbody = document.querySelector("#people tbody");
  pbody.replaceChildren(...people.map((b, i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${i + 1}</td><td>${b.join(", ")}</td>` +
      `<td><button aria-label="remove person ${i + 1}">&times;</button></td>`;
    tr.querySelector("button").onclick = () => { people.splice(i, 1); draw(); };
    return tr;
  }));
  status();
}

const isNum = (s) => s !== undefined && s !== "" && Number.isFinite(Number(s));
function status() {
  const missing = marks.filter((m) => !isNum(m.x) || !isNum(m.y)).length;
  const msg = [];
  if (marks.length < 5) msg.push(`${5 - marks.length} more mark(s) needed (at least 5)`);
  if (missing) msg.push(`${missing} mark(s) without both metres`);
  document.getElementById("marks-status").textContent = msg.join("; ");
  return msg.length === 0;
}

for (const m of ["marks", "people"]) {
  document.getElementById(`mode-${m}`).onclick = () => {
    mode = m;
    for (const o of ["marks", "people"])
      document.getElementById(`mode-${o}`).setAttribute("aria-pressed", String(o === m));
  };
}
img.addEventListener("dragstart", (ev) => ev.preventDefault());
img.addEventListener("mousedown", (ev) => { if (mode === "people") dragFrom = toPx(ev); });
img.addEventListener("mouseup", (ev) => {
  const [u, v] = toPx(ev);
  if (mode === "marks") {
    marks.push({ u: r1(u), v: r1(v) });
  } else if (dragFrom) {
    const [a, b] = dragFrom;
    dragFrom = null;
    if (Math.abs(u - a) < 3 || Math.abs(v - b) < 3) return;  // a click, not a box
    people.push([r1(Math.min(a, u)), r1(Math.min(b, v)), r1(Math.max(a, u)), r1(Math.max(b, v))]);
  }
  draw();
});

function save(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}
document.getElementById("save-marks").onclick = () => {
  if (!status()) return;
  save("marks.csv", "# floor marks on " + __NAME_JSON__ + "\\nu,v,x,y\\n" +
    marks.map((m) => [m.u, m.v, Number(m.x), Number(m.y)].join(",")).join("\\n") + "\\n");
};
document.getElementById("save-people").onclick = () => {
  save("people.csv", "x1,y1,x2,y2\\n" + people.map((b) => b.join(",")).join("\\n") + "\\n");
};
draw();
</script></body></html>
"""


def write_marking_page(image: Path, out: Path) -> tuple[int, int]:
    """Write the page for ``image`` to ``out``; returns the still's (width, height).

    Raises ``ValueError`` if ``image`` is not a readable PNG or JPEG."""
    still = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if still is None:
        raise ValueError(f"{image}: not a readable image (PNG or JPEG)")
    h, w = int(still.shape[0]), int(still.shape[1])
    ok, png = cv2.imencode(".png", still)
    if not ok:
        raise ValueError(f"{image}: cannot encode the still")
    src = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
    text = (
        PAGE.replace("__TITLE__", html.escape(image.name))
        .replace("__NAME_JSON__", json.dumps(image.name).replace("<", "\\u003c"))
        .replace("__NAME__", html.escape(image.name))
        .replace("__SRC__", src)
        .replace("__W__", str(w))
        .replace("__H__", str(h))
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return w, h
