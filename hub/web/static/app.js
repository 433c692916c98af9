// Storesense phone app: plain modern JS, no framework, no third-party code.
//
// Alerts arrive over one WebSocket (/ws). The rule that keeps phones honest is the same as
// on MQTT: keep the highest `seq` per alert and ignore an older state arriving late, so a
// claimed alert never reappears as open. (This is the browser's own copy of the rule; the
// server side codes it once, in storesense/alert_state.py.) On every (re)connect the server sends a snapshot of
// every state newer than our highest seq plus the ids open right now; anything we show that
// is not in that list is closed at once.

const $ = (id) => document.getElementById(id);

const state = {
  me: null,              // {staff_id, name, role, csrf_token}
  alerts: new Map(),     // alert_id -> alert (highest seq seen)
  maxSeq: 0,
  skew: 0,               // server clock - our clock, seconds
  socket: null,
  retryMs: 500,
  current: null,         // {alert_id, customer_id} while the customer view is open
};

// ---- HTTP -------------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET") {
    headers["X-CSRF-Token"] = state.me ? state.me.csrf_token : "";
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, { credentials: "same-origin", ...options, headers });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.detail) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- views ------------------------------------------------------------------------------
function show(view) {
  for (const v of ["login-view", "alerts-view", "customer-view"]) $(v).hidden = v !== view;
}

function setConnection(online) {
  const el = $("conn");
  el.dataset.state = online ? "online" : "offline";
  el.textContent = online ? "live" : "offline";
}

function note(text, kind = "info") {
  const div = document.createElement("div");
  div.className = `note ${kind}`;
  div.dataset.testid = "note";
  div.textContent = text;
  $("notes").prepend(div);
  setTimeout(() => div.remove(), 8000);
}

const time = (epoch) =>
  new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function isOpen(a) {
  return a.state === "open" && a.expires_at > Date.now() / 1000 + state.skew;
}

function renderAlerts() {
  const list = $("alerts");
  const open = [...state.alerts.values()].filter(isOpen).sort((a, b) => b.arrived_at - a.arrived_at);
  const keep = new Set(open.map((a) => a.alert_id));
  for (const li of [...list.children]) if (!keep.has(li.dataset.alertId)) li.remove();
  for (const a of open) {
    if (list.querySelector(`[data-alert-id="${CSS.escape(a.alert_id)}"]`)) continue;
    const li = $("alert-card").content.firstElementChild.cloneNode(true);
    li.dataset.alertId = a.alert_id;
    li.querySelector(".name").textContent = a.customer_name;
    const tier = li.querySelector(".tier");
    tier.textContent = a.tier || "";
    tier.hidden = !a.tier;
    li.querySelector(".greeting").textContent = a.greeting;
    li.querySelector(".arrived").textContent = `arrived ${time(a.arrived_at)} · ${a.camera_id}`;
    li.querySelector(".accept").addEventListener("click", () => act(a, "claim", li));
    li.querySelector(".wrong").addEventListener("click", () => act(a, "reject", li));
    list.prepend(li);
  }
  $("no-alerts").hidden = open.length > 0;
}

// ---- alert state ------------------------------------------------------------------------
function closedText(a) {
  const who = (name, id) => (id === state.me.staff_id ? "you" : name || id);
  if (a.state === "claimed" || a.state === "done")
    return `${a.customer_name}: taken by ${who(a.claimed_by_name, a.claimed_by)}`;
  if (a.state === "rejected")
    return `${a.customer_name}: not this person (${who(a.closed_by_name, a.closed_by)})`;
  return `${a.customer_name}: alert expired`;
}

function applyAlert(a) {
  const known = state.alerts.get(a.alert_id);
  if (known && known.seq >= a.seq) return;   // an older state arriving late: ignore
  state.alerts.set(a.alert_id, a);
  state.maxSeq = Math.max(state.maxSeq, a.seq);
  const byMe = a.claimed_by === state.me.staff_id || a.closed_by === state.me.staff_id;
  if (known && isOpen(known) && a.state !== "open" && !byMe) note(closedText(a));
}

function onSnapshot(s) {
  state.skew = s.server_time - Date.now() / 1000;
  for (const a of s.alerts) applyAlert(a);
  const open = new Set(s.open_ids);
  for (const [id, a] of state.alerts) {
    if (a.state === "open" && !open.has(id)) state.alerts.delete(id);  // closed while away
  }
  state.maxSeq = Math.max(state.maxSeq, s.seq);
  if (s.hub_online === false) note("The hub is offline: alerts may be late.", "warn");
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?since=${state.maxSeq}`);
  state.socket = ws;
  let ping = null;
  ws.onopen = () => {
    state.retryMs = 500;
    ping = setInterval(() => ws.readyState === 1 && ws.send("ping"), 20000);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot") { onSnapshot(msg); setConnection(true); }
    else if (msg.type === "alert") applyAlert(msg.alert);
    else if (msg.type === "gone") state.alerts.delete(msg.alert_id);
    renderAlerts();
  };
  ws.onclose = (ev) => {
    clearInterval(ping);
    setConnection(false);
    if (state.socket !== ws || !state.me) return;
    if (ev.code === 1008) { checkSession(); return; }      // session ended: back to login
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 10000);
  };
}

// ---- buttons ----------------------------------------------------------------------------
async function act(a, action, li) {
  for (const b of li ? li.querySelectorAll("button") : []) b.disabled = true;
  try {
    const r = await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/${action}`, { method: "POST" });
    if (r.outcome === "won" || r.outcome === "already_yours") {
      await openCustomer(a.alert_id, r.customer_id);
    } else {
      note(r.message, r.outcome === "rejected" ? "info" : "warn");
    }
  } catch (err) {
    note(err.message, "error");
  } finally {
    for (const b of li ? li.querySelectorAll("button") : []) b.disabled = false;
  }
}

function fillList(id, items, fmt) {
  const ul = $(id);
  ul.replaceChildren();
  for (const item of items || []) {
    const li = document.createElement("li");
    li.textContent = fmt(item);
    ul.append(li);
  }
  if (!ul.children.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "—";
    ul.append(li);
  }
}

const itemText = (i) =>
  typeof i === "string" ? i : [i.description || i.name || i.stock_code, i.category && `(${i.category})`]
    .filter(Boolean).join(" ");
const money = (v, cur) => (v == null ? "—" : `${Number(v).toFixed(2)} ${cur || ""}`.trim());
const get = (obj, ...paths) => {
  for (const p of paths) {
    const v = p.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
    if (v !== undefined && v !== null) return v;
  }
  return null;
};

async function openCustomer(alertId, customerId) {
  const data = await api(`/api/customers/${encodeURIComponent(customerId)}?alert_id=${encodeURIComponent(alertId)}`);
  const c = data.card;
  state.current = { alert_id: alertId, customer_id: customerId };
  const cur = get(c, "currency", "loyalty.currency") || "";
  $("cust-name").textContent = get(c, "name", "customer_name") || customerId;
  $("cust-meta").textContent = `customer ${customerId}`;
  $("cust-tier").textContent = get(c, "tier", "loyalty.tier") || "—";
  $("cust-points").textContent = get(c, "points", "loyalty.points") ?? "—";
  $("cust-spend").textContent = money(get(c, "spend_12m", "loyalty.spend_12m", "totals.spend_12m"), cur);
  fillList("cust-bonuses", get(c, "bonuses", "active_bonuses", "loyalty.bonuses"), (b) =>
    typeof b === "string" ? b : [b.name || b.title, b.description || b.detail].filter(Boolean).join(": "));
  fillList("cust-usual", get(c, "usual_items"), itemText);
  fillList("cust-new", get(c, "new_for_you"), itemText);
  fillList("cust-cats", get(c, "favourite_categories"), (x) =>
    typeof x === "string" ? x : `${x.category || x.name} · ${money(x.spend ?? x.revenue, cur)}`);
  fillList("cust-baskets", get(c, "recent_baskets"), (b) =>
    `${(b.at || b.date || "").slice(0, 10)} · ${b.items ?? b.lines ?? "?"} items · ${money(b.total, cur)}`);
  $("cust-msg").textContent = "";
  show("customer-view");
}

async function endCustomer(action) {
  if (!state.current) return;
  try {
    const r = await api(`/api/alerts/${encodeURIComponent(state.current.alert_id)}/${action}`, { method: "POST" });
    note(r.message);
    state.current = null;
    show("alerts-view");
    renderAlerts();
  } catch (err) {
    $("cust-msg").textContent = err.message;
  }
}

// ---- session ----------------------------------------------------------------------------
function startSession(me) {
  state.me = me;
  $("who").textContent = me.name;
  $("logout").hidden = false;
  $("manager-link").hidden = me.role !== "manager";
  show("alerts-view");
  renderAlerts();
  connect();
}

async function checkSession() {
  try {
    startSession(await api("/api/me"));
  } catch {
    state.me = null;
    state.socket = null;
    $("who").textContent = "";
    $("logout").hidden = true;
    $("manager-link").hidden = true;
    show("login-view");
  }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const me = await api("/api/login", {
      method: "POST",
      body: JSON.stringify({ staff_id: $("login-id").value.trim(), password: $("login-pw").value }),
    });
    $("login-pw").value = "";
    startSession(me);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST" }); } catch { /* already gone */ }
  const ws = state.socket;
  state.me = null;
  state.socket = null;
  if (ws) ws.close();
  checkSession();
});
$("back").addEventListener("click", () => { show("alerts-view"); renderAlerts(); });
$("done").addEventListener("click", () => endCustomer("done"));
$("wrong").addEventListener("click", () => endCustomer("reject"));
setInterval(renderAlerts, 1000);  // expiry on the phone's clock (corrected by the server's)

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
checkSession();
