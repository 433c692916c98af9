// Manager page (P3): the day's arrivals, claims, time to claim, missed customers and
// false-match reports, live over the same WebSocket the phones use (every alert change
// reloads the day); staff accounts; the floor report; phone onboarding; customer privacy.
// Plain JS, no framework; every value goes in with textContent (never innerHTML).
const $ = (id) => document.getElementById(id);
const time = (t) => (t == null ? "" : new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
const secs = (s) => (s == null ? "—" : s < 90 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`);
const localToday = () => {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
};
const state = { me: null, day: null, socket: null, retryMs: 500, reloadTimer: null };

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET") {
    headers["X-CSRF-Token"] = state.me ? state.me.csrf_token : "";
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, { credentials: "same-origin", ...options, headers });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (res.status === 401) { location.href = "/"; throw new Error("logged out"); }
  if (!res.ok) throw new Error((data && (data.detail.message || data.detail)) || `HTTP ${res.status}`);
  return data;
}

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

// One list row: a bold head (left and right) and a muted line under it.
function row(left, right, sub, rightClass = "") {
  const li = el("li");
  const head = el("div", "row-head");
  head.append(el("span", null, left));
  if (right != null) head.append(el("span", rightClass, right));
  li.append(head);
  if (sub) li.append(el("div", "row-sub", sub));
  return li;
}

function fill(id, items, render, empty) {
  const ul = $(id);
  ul.replaceChildren(...items.map(render));
  if (!items.length) ul.append(el("li", "empty", empty));
}

const who = (x) => x.customer_name || `customer ${x.customer_id}`;
const door = (x) => x.entrance_name || x.camera_id;  // the store YAML's display_name

async function loadDay() {
  const q = state.day ? `?date=${state.day}` : "";
  const [data, missed] = await Promise.all([api(`/api/manager/day${q}`), api(`/api/manager/missed${q}`)]);
  const today = localToday();
  $("title").textContent = data.date === today ? "Today" : new Date(`${data.date}T12:00`).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });
  const claimed = data.alerts.filter((a) => a.claimed_by).length;
  $("n-alerts").textContent = data.summary.alerts;
  $("n-claimed").textContent = claimed;
  $("median").textContent = secs(data.summary.median_seconds_to_claim);
  $("n-missed").textContent = missed.count;
  $("n-false").textContent = data.summary.false_matches;
  fill("missed", missed.alerts, (a) =>
    row(who(a), time(a.arrived_at), `${door(a)} · nobody accepted in time` +
      (a.claim_attempts ? ` · ${a.claim_attempts} late tries` : "")),
  "No missed customers.");
  fill("alerts", data.alerts, (a) => {
    const sub = [time(a.created_at), door(a)];
    if (a.claimed_by_name) sub.push(`${a.claimed_by_name} in ${secs(a.seconds_to_claim)}`);
    return row(who(a), a.state, sub.join(" · "), `state ${a.state}`);
  }, "No arrivals yet.");
  fill("staff", data.staff, (s) =>
    row(s.name, `${s.claimed} claimed`, `median time to claim ${secs(s.median_seconds_to_claim)}`),
  "Nobody has claimed a customer yet.");
  fill("false", data.false_matches, (f) =>
    row(who(f), time(f.at), [`reported by ${f.staff_name}`, door(f),
      f.best_distance == null ? null : `distance ${f.best_distance.toFixed(3)}`].filter(Boolean).join(" · ")),
  "No false-match reports.");
}

async function loadStaff() {
  const staff = await api("/api/manager/staff");
  fill("staff-list", staff, (s) => {
    const li = row(s.name, s.active ? s.role : "disabled", `id ${s.staff_id}`, s.active ? "state" : "state disabled");
    li.dataset.staffId = s.staff_id;
    const actions = el("div", "row-actions");
    if (s.staff_id !== state.me.staff_id) {
      const toggle = el("button", s.active ? "disable" : "enable", s.active ? "Disable" : "Enable");
      toggle.type = "button";
      toggle.addEventListener("click", () => staffAction(`/api/manager/staff/${encodeURIComponent(s.staff_id)}/active`,
        { active: !s.active }, `${s.name} ${s.active ? "disabled: their phones are logged out" : "enabled"}`));
      actions.append(toggle);
    }
    const reset = el("button", "reset", "Reset password");
    reset.type = "button";
    reset.addEventListener("click", () => {
      const pw = prompt(`New password for ${s.name} (at least 8 characters):`);
      if (pw) staffAction(`/api/manager/staff/${encodeURIComponent(s.staff_id)}/password`,
        { password: pw }, `New password set for ${s.name}; their phones must log in again`);
    });
    actions.append(reset);
    li.append(actions);
    return li;
  }, "No staff accounts.");
}

async function staffAction(path, body, done) {
  $("staff-result").textContent = "";
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    $("staff-result").textContent = done;
    await loadStaff();
  } catch (e) { $("staff-result").textContent = e.message; }
}

async function loadReport() {
  // The page never sends a manager to a raw error: a link shows only for a report that exists.
  const links = [["report-day", "/reports/latest"], ["report-week", "/reports/weeks/latest"],
    ["report-month", "/reports/months/latest"]];
  try {
    const found = await Promise.all(links.map(async ([id, url]) => {
      const res = await fetch(url, { credentials: "same-origin" });
      $(id).hidden = !res.ok;
      return res.ok;
    }));
    $("report-state").textContent = found.some(Boolean)
      ? "The nightly floor reports (heatmap, zones, insights):"
      : "No floor report yet: the hub writes one every night.";
  } catch {
    $("report-state").textContent = "The report cannot be checked right now.";
  }
}

function reloadSoon() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => loadDay().catch(showError), 250);
}

function setLive(on) {
  $("live").dataset.state = on ? "online" : "offline";
  $("live").textContent = on ? "live" : "offline";
}

// Live: the phones' socket; any alert change (arrival, claim, expiry) reloads today's view.
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  state.socket = ws;
  ws.onopen = () => { state.retryMs = 500; };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === "snapshot") setLive(true);
    if (["snapshot", "alert", "gone"].includes(msg.type) && !state.day) reloadSoon();
  };
  ws.onclose = (ev) => {
    setLive(false);
    if (ev.code === 1008) { location.href = "/"; return; }
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 10000);
  };
}

function showError(e) { $("error").textContent = e.message; }

async function forget() {
  const id = $("forget-id").value.trim();
  if (!confirm(`Erase customer ${id}? This cannot be undone.`)) return;
  const data = await api(`/api/manager/customers/${encodeURIComponent(id)}/forget`, {
    method: "POST", body: JSON.stringify({ reason: $("forget-reason").value }),
  });
  $("forget-result").textContent = `Erased ${data.customer_id}: ` +
    `${data.profile_deleted ? "face profile deleted" : "no face profile"}, ` +
    `${data.receipts_unlinked} receipts unlinked.`;
  await loadDay();  // their alerts are gone from the lists too
}

async function withdraw() {
  const id = $("withdraw-id").value.trim();
  await api(`/api/manager/customers/${encodeURIComponent(id)}/withdraw-photo`, {
    method: "POST", body: JSON.stringify({ reason: "withdrawn in store (manager page)" }),
  });
  $("withdraw-result").textContent = `${id}: photo no longer shown to staff.`;
}

// The forms are wired before /api/me answers: a button pressed while the page is still
// loading must not fall through to the browser's own GET submit (which reloads the page and
// loses the action); it waits for the login check instead, and then runs or shows why not.
let settle = null;
const ready = new Promise((resolve, reject) => { settle = { resolve, reject }; });
ready.catch(() => {});  // a refusal is shown where the form was used, not as an unhandled rejection

function onSubmit(id, fn, out) {
  $(id).addEventListener("submit", (ev) => {
    ev.preventDefault();
    $(out).textContent = "";
    ready.then(fn).catch((e) => { $(out).textContent = e.message; });
  });
}

async function main() {
  onSubmit("forget", forget, "forget-result");
  onSubmit("withdraw", withdraw, "withdraw-result");
  onSubmit("staff-form", async () => {
    const body = { staff_id: $("new-id").value.trim(), name: $("new-name").value.trim(),
      role: $("new-role").value, password: $("new-pw").value };
    await api("/api/manager/staff", { method: "POST", body: JSON.stringify(body) });
    $("staff-form").reset();
    $("staff-result").textContent = `Added ${body.name} (${body.staff_id}).`;
    await loadStaff();
  }, "staff-result");
  const me = await fetch("/api/me", { credentials: "same-origin" });
  if (me.status === 401) { location.href = "/"; return; }
  state.me = await me.json();
  $("who").textContent = state.me.name;
  if (state.me.role !== "manager") {
    $("error").textContent = "Managers only.";
    settle.reject(new Error("Managers only."));
    return;
  }
  settle.resolve();
  $("day").value = localToday();
  $("day").max = localToday();
  $("day").addEventListener("change", () => {
    const today = localToday();
    state.day = $("day").value && $("day").value !== today ? $("day").value : null;
    loadDay().catch(showError);
  });
  await Promise.all([loadDay(), loadStaff(), loadReport()]);
  connect();
}
main().catch((e) => { settle.reject(e); showError(e); });
