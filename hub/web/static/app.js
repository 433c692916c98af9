// Storesense phone app: plain modern JS, no framework, no third-party code.
//
// Alerts arrive over one WebSocket (/ws). The rule that keeps phones honest is the same as
// on MQTT: keep the highest `seq` per alert and ignore an older state arriving late, so a
// claimed alert never reappears as open. (This is the browser's own copy of the rule; the
// server side codes it once, in storesense/alert_state.py.) On every (re)connect the server
// sends a snapshot of every state newer than our highest seq plus the ids open right now;
// anything we show that is not in that list is closed at once.
//
// Honest connection state: the page pings every PING_MS and counts the link dead when nothing
// (pong, alert, status) came back for PONG_TIMEOUT_MS; the browser's offline/online events,
// the hub's liveness and the door cameras' health (relayed by the gateway from hub/status and
// hub/nodes) each have a banner. While the state is unknown the cards cannot be pressed: a
// stale card must not look actionable.
//
// Notifications: a new open alert raises a system notification through the service worker
// (tag = alert id, so a re-send replaces it); when the alert is taken, ends or expires, the
// notification is closed. Accept in the notification claims from the service worker (sw.js).

const $ = (id) => document.getElementById(id);
const PING_MS = 3000;
const PONG_TIMEOUT_MS = 8000;  // ≤ 10 s from the last sign of life to "hub unreachable"

const state = {
  me: null,              // {staff_id, name, role, csrf_token}
  alerts: new Map(),     // alert_id -> alert (highest seq seen)
  maxSeq: 0,
  skew: 0,               // server clock - our clock, seconds
  socket: null,
  retryMs: 500,
  current: null,         // {alert_id, customer_id} while the customer view is open
  mine: [],              // "My customers": claimed by me, not done (from the hub's table)
  live: false,           // socket open, snapshot applied, heard from within PONG_TIMEOUT_MS
  lastHeard: 0,          // performance.now() of the last message on the socket
  hubOnline: null,       // as the hub's retained status says (null: not known yet)
  gatewayOnline: null,
  doorsDown: [],         // display names of the door cameras the hub reports down
  notified: new Map(),   // alert_id -> Notification (page fallback when no service worker)
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
    // The session ended (expiry, logout elsewhere, account disabled): back to login at once.
    if (res.status === 401 && state.me && path !== "/api/login") toLogin();
    throw err;
  }
  return data;
}

// ---- views ------------------------------------------------------------------------------
function show(view) {
  for (const v of ["login-view", "alerts-view", "customer-view"]) $(v).hidden = v !== view;
}

// One place decides what the phone may claim, and every banner follows from it.
function renderConnection() {
  const phoneOffline = !navigator.onLine;
  const hubDown = !phoneOffline && (state.hubOnline === false || state.gatewayOnline === false
    || (state.socket !== null && !state.live && state.lastHeard > 0));
  const el = $("conn");
  const online = state.live && !phoneOffline && state.hubOnline !== false && state.gatewayOnline !== false;
  el.dataset.state = online ? "online" : phoneOffline ? "offline" : state.live ? "degraded" : "offline";
  el.textContent = online ? "live" : phoneOffline ? "offline" : "no hub";
  $("banner-offline").hidden = !(state.me && phoneOffline);
  $("banner-hub").hidden = !(state.me && hubDown);
  const doors = state.doorsDown;
  $("banner-door").hidden = !(state.me && doors.length && !phoneOffline);
  $("banner-door-text").textContent = doors.length === 1
    ? `Door camera down: ${doors[0]}. People coming in there are not recognised.`
    : `Door cameras down: ${doors.join(", ")}. People coming in there are not recognised.`;
  document.body.dataset.live = online ? "yes" : "no";
  for (const b of document.querySelectorAll("#alerts button")) b.disabled = !online;
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
const entrance = (a) => a.entrance_name || a.camera_id;
// A customer with no purchase on file is new: no entry tier shown as if they had earned it.
const standing = (a) => (a.new_customer ? "New customer" : a.tier || "");

function isOpen(a) {
  return a.state === "open" && a.expires_at > Date.now() / 1000 + state.skew;
}

// Every phone shows the same order: who has waited longest first (arrival time, then id, so
// two people arriving in the same second are ordered alike everywhere).
const byArrival = (a, b) => a.arrived_at - b.arrived_at || (a.alert_id < b.alert_id ? -1 : 1);

function renderAlerts() {
  const list = $("alerts");
  const open = [...state.alerts.values()].filter(isOpen).sort(byArrival);
  const keep = new Set(open.map((a) => a.alert_id));
  for (const li of [...list.children]) if (!keep.has(li.dataset.alertId)) li.remove();
  for (const a of open) {
    let li = list.querySelector(`[data-alert-id="${CSS.escape(a.alert_id)}"]`);
    if (!li) {
      li = $("alert-card").content.firstElementChild.cloneNode(true);
      li.dataset.alertId = a.alert_id;
      li.querySelector(".name").textContent = a.customer_name;
      const tier = li.querySelector(".tier");
      tier.textContent = standing(a);
      tier.hidden = !standing(a);
      tier.classList.toggle("new-customer", !!a.new_customer);
      li.querySelector(".greeting").textContent = a.greeting;
      li.querySelector(".arrived").textContent = `arrived ${time(a.arrived_at)} · ${entrance(a)}`;
      li.querySelector(".accept").addEventListener("click", () => act(a, "claim", li));
      li.querySelector(".wrong").addEventListener("click", () => act(a, "reject", li));
      decorateAlertCard(li, a);  // card (P3): photo or hint, when the customer chose one
    }
    list.append(li);  // (re)appending keeps the DOM in the shared order
  }
  $("no-alerts").hidden = open.length > 0;
  for (const id of [...state.notified.keys()]) if (!keep.has(id)) closeNotification(id);
  renderConnection();
}

function renderMine() {
  const list = $("mine");
  list.replaceChildren();
  for (const h of state.mine) {
    const li = $("mine-card").content.firstElementChild.cloneNode(true);
    li.dataset.alertId = h.alert_id;
    li.querySelector(".name").textContent = h.customer_name;
    li.querySelector(".since").textContent =
      `with you since ${time(h.claimed_at || h.arrived_at)} · came in at ${h.entrance_name}`;
    li.querySelector(".open").addEventListener("click", () =>
      openCustomer(h.alert_id, h.customer_id).catch((err) => note(err.message, "error")));
    li.querySelector(".done").addEventListener("click", () => endCustomer("done", h.alert_id));
    li.querySelector(".handover").addEventListener("click", () => endCustomer("handover", h.alert_id));
    li.querySelector(".keep").addEventListener("click", () => keepCustomer(h.alert_id));
    list.append(li);
  }
  $("mine-section").hidden = state.mine.length === 0;
  askIdle();
}

// A claim with no press for claim_idle_s asks "still with …?"; unanswered, the hub ends it
// at ends_at (the note then says so when the alert turns "done").
function askIdle() {
  const now = Date.now() / 1000 + state.skew;
  for (const li of $("mine").children) {
    const h = state.mine.find((x) => x.alert_id === li.dataset.alertId);
    if (!h) continue;
    const asking = now >= h.ask_at;
    li.classList.toggle("asking", asking);
    const ask = li.querySelector(".ask");
    ask.hidden = !asking;
    if (asking) {
      const left = Math.max(0, Math.round(h.ends_at - now));
      ask.firstElementChild.textContent =
        `Still with ${h.customer_name}? Without an answer this ends in ${Math.ceil(left / 60)} min.`;
    }
  }
}

async function keepCustomer(alertId) {
  try {
    await api(`/api/alerts/${encodeURIComponent(alertId)}/keep`, { method: "POST" });
  } catch (err) {
    note(err.message, "error");
  } finally {
    refreshMine();
  }
}

async function refreshMine() {
  if (!state.me) return;
  try {
    state.mine = await api("/api/my-customers");
    renderMine();
  } catch { /* offline or hub away: keep what we showed; the banner says why */ }
}

// ---- notifications ----------------------------------------------------------------------
async function registration() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    return await Promise.race([
      navigator.serviceWorker.ready,
      new Promise((resolve) => setTimeout(() => resolve(null), 1000)),
    ]);
  } catch { return null; }
}

function notificationOf(a) {
  const body = [a.greeting, standing(a), `at ${entrance(a)}`].filter(Boolean).join(" · ");
  return {
    body,
    tag: a.alert_id,          // a re-send of the same alert replaces, never duplicates
    renotify: true,
    requireInteraction: true,
    vibrate: [200, 100, 200],
    icon: "/static/icon.svg",
    actions: [{ action: "accept", title: "Accept" }, { action: "later", title: "Not now" }],
    data: { alert_id: a.alert_id, customer_name: a.customer_name, csrf: state.me && state.me.csrf_token },
  };
}

function beep() {
  // The system notification may be silent while the app is in front: a short tone then.
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.4);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
    osc.onended = () => ctx.close();
  } catch { /* no audio: the vibration and the card remain */ }
}

// Every show and every look-up-and-close of a notification runs in turn, in call order.
// Chromium drops a notification from getNotifications() (so it can never be closed: it stays
// on the phone after a colleague took the customer) when its showNotification overlaps a
// getNotifications of the same page: 25 of 90 lost with a look-up every 10 ms beside the
// shows, 0 of 90 without (3 headless Chromium pages). In call order, a close queued after its
// show also waits for it, instead of running first and leaving the notification up.
let notificationTurn = Promise.resolve();
function inTurn(fn) {
  const run = notificationTurn.then(fn);
  notificationTurn = run.catch(() => {});
  return run;
}

function notify(a) {
  if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
  if (document.visibilityState === "visible") beep();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  return inTurn(() => showNotificationOf(a));
}

async function showNotificationOf(a) {
  const opts = notificationOf(a);
  const reg = await registration();
  if (reg) {
    await reg.showNotification(a.customer_name, opts);
    state.notified.set(a.alert_id, null);
  } else {  // no service worker (blocked): a page notification, without action buttons
    const { actions, ...pageOpts } = opts;
    const n = new Notification(a.customer_name, pageOpts);
    n.onclick = () => { window.focus(); n.close(); };
    state.notified.set(a.alert_id, n);
  }
}

function closeNotification(alertId) {
  return inTurn(async () => {
    const n = state.notified.get(alertId);
    state.notified.delete(alertId);
    if (n) n.close();
    const reg = await registration();
    if (!reg) return;
    for (const shown of await reg.getNotifications({ tag: alertId })) shown.close();
  });
}

// Web Push: reaches this phone through its push service when the page is frozen or closed
// (the store needs internet; the hub encrypts, the push service sees ciphertext only).
const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

async function subscribePush() {
  if (!("PushManager" in window) || Notification.permission !== "granted") return;
  try {
    const reg = await registration();
    if (!reg) return;
    let sub = await reg.pushManager.getSubscription();
    if (!sub) {
      const { key } = await api("/api/push/key");
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64url(key) });
    }
    await api("/api/push/subscribe", { method: "POST", body: JSON.stringify(sub.toJSON()) });
  } catch { /* no push service reachable (offline store): live pages still get every alert */ }
}

async function unsubscribePush() {
  try {
    const reg = await registration();
    const sub = reg && (await reg.pushManager.getSubscription());
    if (!sub) return;
    await api("/api/push/unsubscribe", { method: "POST", body: JSON.stringify(sub.toJSON()) }).catch(() => {});
    await sub.unsubscribe();
  } catch { /* best effort: the hub drops it on the push service's 410 anyway */ }
}

function updateNotifyButton() {
  const btn = $("enable-notify");
  btn.hidden = !(state.me && "Notification" in window && Notification.permission === "default");
}

// ---- alert state ------------------------------------------------------------------------
function closedText(a) {
  const who = (name, id) => (id === state.me.staff_id ? "you" : name || id);
  if (a.state === "claimed" || a.state === "done")
    return `${a.customer_name}: taken by ${who(a.claimed_by_name, a.claimed_by)}`;
  if (a.state === "rejected")
    return `${a.customer_name}: not this person (${who(a.closed_by_name, a.closed_by)})`;
  return `Missed: ${a.customer_name} was not accepted in time`;
}

function applyAlert(a, live = true) {
  const known = state.alerts.get(a.alert_id);
  if (known && known.seq >= a.seq) return;   // an older state arriving late: ignore
  state.alerts.set(a.alert_id, a);
  state.maxSeq = Math.max(state.maxSeq, a.seq);
  const byMe = a.claimed_by === state.me.staff_id || a.closed_by === state.me.staff_id;
  if (known && isOpen(known) && a.state !== "open" && !byMe) note(closedText(a));
  if (isOpen(a) && !(known && isOpen(known)) && live) notify(a);
  if (!isOpen(a)) closeNotification(a.alert_id);
  if (a.claimed_by === state.me.staff_id || (known && known.claimed_by === state.me.staff_id)) refreshMine();
}

function onSnapshot(s) {
  state.skew = s.server_time - Date.now() / 1000;
  const before = new Set([...state.alerts.values()].filter(isOpen).map((a) => a.alert_id));
  for (const a of s.alerts) applyAlert(a, !before.has(a.alert_id));
  const open = new Set(s.open_ids);
  for (const [id, a] of state.alerts) {
    if (a.state === "open" && !open.has(id)) {  // closed while away
      state.alerts.delete(id);
      closeNotification(id);
    }
  }
  state.maxSeq = Math.max(state.maxSeq, s.seq);
  onStatus(s);
  refreshMine();
}

function onStatus(s) {
  state.hubOnline = s.hub_online;
  state.gatewayOnline = s.gateway_online;
  state.doorsDown = s.doors_down || [];
  renderConnection();
}

function connect() {
  if (!state.me || !navigator.onLine) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?since=${state.maxSeq}`);
  state.socket = ws;
  let ping = null;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    state.retryMs = 500;
    state.lastHeard = performance.now();
    ping = setInterval(() => {
      if (ws.readyState !== 1) return;
      if (performance.now() - state.lastHeard > PONG_TIMEOUT_MS) {
        // No pong: the web app, the Wi-Fi or the socket is gone without a close frame.
        state.live = false;
        renderAlerts();
        ws.close();
        return;
      }
      ws.send("ping");
    }, PING_MS);
  };
  ws.onmessage = (ev) => {
    if (state.socket !== ws) return;
    state.lastHeard = performance.now();
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot") { state.live = true; onSnapshot(msg); }
    else if (msg.type === "alert") applyAlert(msg.alert);
    else if (msg.type === "gone") { state.alerts.delete(msg.alert_id); closeNotification(msg.alert_id); }
    else if (msg.type === "status") onStatus(msg);
    renderAlerts();
  };
  ws.onclose = (ev) => {
    clearInterval(ping);
    if (state.socket !== ws) return;
    state.live = false;
    renderAlerts();
    if (!state.me) return;
    // Closed by the server for the session (1008), or refused at the handshake (a 403 looks
    // like a close before open): ask whether we are still logged in; 401 returns to login.
    if (ev.code === 1008 || ev.code === 1000 || !opened) {
      api("/api/me").then(() => retry(ws)).catch((err) => { if (err.status !== 401) retry(ws); });
      return;
    }
    retry(ws);
  };
}

function retry(ws) {
  if (state.socket !== ws || !state.me) return;
  setTimeout(() => { if (state.socket === ws) connect(); }, state.retryMs);
  state.retryMs = Math.min(state.retryMs * 2, 5000);
}

window.addEventListener("offline", () => {
  state.live = false;
  const ws = state.socket;
  if (ws) ws.close();
  renderAlerts();
});
window.addEventListener("online", () => {
  renderConnection();
  if (state.me && (!state.socket || state.socket.readyState > 1)) { state.retryMs = 500; connect(); }
});

// ---- buttons ----------------------------------------------------------------------------
async function act(a, action, li) {
  for (const b of li ? li.querySelectorAll("button") : []) b.disabled = true;
  try {
    const r = await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/${action}`, { method: "POST" });
    if (r.outcome === "won" || r.outcome === "already_yours") {
      closeNotification(a.alert_id);
      refreshMine();
      await openCustomer(a.alert_id, r.customer_id);
    } else {
      note(r.message, r.outcome === "rejected" ? "info" : "warn");
    }
  } catch (err) {
    note(err.message, "error");
  } finally {
    for (const b of li ? li.querySelectorAll("button") : []) b.disabled = false;
    renderConnection();
  }
}

// card (P3): the customer view's rendering; engineer P3 owns this block.
// The hub decides the wording of amounts (card.money / *_text, in the store's currency and
// locale) and the readable product names (line.name); this block only lays them out. A
// section with nothing to say is hidden, never filled with dashes.
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
const bcp47 = (locale) => (locale || "en-GB").replace("_", "-");
const day = (iso, locale) =>
  new Date(iso).toLocaleDateString(bcp47(locale), { day: "numeric", month: "short", year: "numeric" });

function ago(iso, now) {
  const days = Math.round((now - new Date(iso)) / 86400000);
  if (days <= 0) return "earlier today";
  if (days === 1) return "yesterday";
  if (days < 60) return `${days} days ago`;
  return `${Math.round(days / 30)} months ago`;
}

// A list section (the <h2> just before the <ul>): filled, or hidden with its heading.
function section(id, items, render, heading) {
  const ul = $(id);
  const h2 = ul.previousElementSibling;
  ul.replaceChildren(...(items || []).map(render));
  const empty = !ul.children.length;
  ul.hidden = empty;
  if (h2 && h2.tagName === "H2") {
    h2.hidden = empty;
    if (heading) h2.textContent = heading;
  }
}

function itemLi(i) {
  const li = el("li", "item");
  li.append(el("span", "item-name", i.name || i.description || i.stock_code));
  if (i.category && i.category !== "other") li.append(el("span", "item-cat", i.category));
  return li;
}

function basketLi(b, locale) {
  const li = el("li", b.cancellation ? "basket cancelled" : "basket");
  const head = el("div", "basket-head");
  head.append(el("span", "basket-date", day(b.at, locale)),
    el("span", "basket-total", b.cancellation ? `${b.total_text} · returned` : b.total_text));
  li.append(head);
  const lines = b.lines.filter((ln) => ln.category !== "non-product")  // postage, fees
    .map((ln) => `${Math.abs(ln.quantity)} × ${ln.name}`);
  if (b.more_lines) lines.push(`+ ${b.more_lines} more`);
  li.append(el("div", "basket-lines", lines.join(" · ")));
  return li;
}

function summaryBox() {
  let box = $("cust-summary");
  if (!box) {
    box = el("div", "summary");
    box.id = "cust-summary";
    box.dataset.testid = "card-summary";
    $("cust-tier").closest(".tiles").after(box);  // under tier, points and spend
  }
  return box;
}

function renderCard(c, customerId) {
  const lo = c.loyalty;
  const now = new Date(c.as_of);
  $("cust-name").textContent = c.name || "Customer from the till records";
  const meta = [];
  if (c.new_customer) meta.push("First time on file: no purchases yet");
  else if (c.totals.first_purchase) meta.push(`Customer since ${day(c.totals.first_purchase, c.locale)}`);
  if (c.last_visit) meta.push(`last visit ${ago(c.last_visit, now)}`);
  $("cust-meta").textContent = meta.join(" · ");

  const tiles = $("cust-tier").closest(".tiles");
  const box = summaryBox();
  box.replaceChildren();
  if (c.new_customer) {
    tiles.hidden = true;
    const next = lo.next_tier && c.money.spend_to_next_tier
      ? ` ${lo.next_tier} from ${c.money.spend_to_next_tier} spent in 12 months.` : "";
    box.append(el("p", "welcome", `New customer: welcome them and offer the loyalty card.${next}`));
  } else {
    tiles.hidden = false;
    $("cust-tier").textContent = lo.tier || "No tier";
    $("cust-points").textContent = Number(lo.points).toLocaleString(bcp47(c.locale));
    $("cust-spend").textContent = c.money.spend_12m;
    const next = lo.next_tier
      ? `${c.money.spend_to_next_tier} more to reach ${lo.next_tier}`
      : `Top tier (${lo.tier})`;
    box.append(el("p", "next-tier", next));
    const facts = [`${c.totals.baskets} purchase${c.totals.baskets === 1 ? "" : "s"}`];
    if (c.money.average_basket) facts.push(`usually spends ${c.money.average_basket}`);
    if (c.totals.last_purchase) facts.push(`last bought ${ago(c.totals.last_purchase, now)}`);
    box.append(el("p", "facts muted", facts.join(" · ")));
  }
  section("cust-bonuses", c.active_bonuses, (b) => {
    const li = el("li", "bonus");
    li.append(el("strong", null, b.name), document.createTextNode(` · ${b.detail}`));
    return li;
  });
  section("cust-usual", c.usual_items, itemLi);
  section("cust-new", c.new_for_you, itemLi, c.new_customer ? "Popular right now" : "New for you");
  section("cust-cats", c.favourite_categories, (x) =>
    el("li", null, `${x.category} · ${Math.round(x.share * 100)} %`));
  section("cust-baskets", c.recent_baskets, (b) => basketLi(b, c.locale));
}

async function openCustomer(alertId, customerId) {
  const data = await api(`/api/customers/${encodeURIComponent(customerId)}?alert_id=${encodeURIComponent(alertId)}`);
  state.current = { alert_id: alertId, customer_id: customerId };
  renderCard(data.card, customerId);
  $("cust-msg").textContent = "";
  show("customer-view");
}

// Who to greet: the enrolment photo (only with the customer's "photo shown to staff at
// arrival" consent; the hub decrypts it for this alert, audits each display and refuses once
// the alert has ended) or the short hint they chose, on the alert card. Nothing otherwise.
async function decorateAlertCard(li, a) {
  const q = `alert_id=${encodeURIComponent(a.alert_id)}`;
  const base = `/api/customers/${encodeURIComponent(a.customer_id)}`;
  let who;
  try { who = await api(`${base}/arrival?${q}`); } catch { return; }
  const slot = el("div", "who-to-greet");
  slot.dataset.testid = "who-to-greet";
  if (who.photo) {
    const img = el("img", "arrival-photo");
    img.alt = `Enrolment photo of ${a.customer_name}`;
    img.dataset.testid = "arrival-photo";
    img.src = `${base}/photo?${q}`;
    slot.append(img);
  } else if (who.hint) {
    slot.append(el("p", "hint", `Look for: ${who.hint}`));
  } else {
    return;
  }
  li.querySelector(".card-head").after(slot);
}
// end card (P3)

async function endCustomer(action, alertId = state.current && state.current.alert_id) {
  if (!alertId) return;
  try {
    const r = await api(`/api/alerts/${encodeURIComponent(alertId)}/${action}`, { method: "POST" });
    note(r.message);
    if (state.current && state.current.alert_id === alertId) state.current = null;
    show("alerts-view");
    renderAlerts();
  } catch (err) {
    if (!$("customer-view").hidden) $("cust-msg").textContent = err.message;
    else note(err.message, "error");
  } finally {
    refreshMine();
  }
}

// ---- session ----------------------------------------------------------------------------
function startSession(me) {
  state.me = me;
  $("who").textContent = me.name;
  $("logout").hidden = false;
  $("manager-link").hidden = me.role !== "manager";
  show("alerts-view");
  updateNotifyButton();
  renderAlerts();
  refreshMine();
  connect();
  subscribePush();
  const accept = new URLSearchParams(location.search).get("accept");
  if (accept) {  // opened from a push notification's Accept: claim once the alert is known
    history.replaceState(null, "", "/");
    const tryAccept = (n) => {
      const a = state.alerts.get(accept);
      if (a) act(a, "claim", null);
      else if (n > 0) setTimeout(() => tryAccept(n - 1), 250);
    };
    tryAccept(20);
  }
}

function toLogin() {
  const ws = state.socket;
  state.me = null;
  state.socket = null;
  state.live = false;
  state.mine = [];
  state.current = null;
  state.alerts.clear();  // no customer's name stays on a logged-out phone
  state.maxSeq = 0;
  $("alerts").replaceChildren();
  if (ws) ws.close();
  for (const id of [...state.notified.keys()]) closeNotification(id);
  $("who").textContent = "";
  $("logout").hidden = true;
  $("manager-link").hidden = true;
  $("login-error").textContent = "Your session ended: log in again.";
  renderMine();
  renderConnection();
  updateNotifyButton();
  show("login-view");
}

async function checkSession() {
  try {
    startSession(await api("/api/me"));
  } catch {
    toLogin();
    $("login-error").textContent = "";
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
  await unsubscribePush();  // a shared phone must not get the next shift's pushes for this one
  try { await api("/api/logout", { method: "POST" }); } catch { /* already gone */ }
  toLogin();
  $("login-error").textContent = "";
});
$("enable-notify").addEventListener("click", async () => {
  try { await Notification.requestPermission(); } finally { updateNotifyButton(); subscribePush(); }
});
$("back").addEventListener("click", () => { show("alerts-view"); renderAlerts(); refreshMine(); });
$("done").addEventListener("click", () => endCustomer("done"));
$("handover").addEventListener("click", () => endCustomer("handover"));
$("wrong").addEventListener("click", () => endCustomer("reject"));
setInterval(() => { renderAlerts(); askIdle(); }, 1000);  // expiry on the phone's clock (corrected)

// Accept pressed in a notification: the service worker claimed; show the answer here too.
async function onWorkerMessage(msg) {
  if (!msg || !state.me) return;
  if (msg.type === "claimed") {
    const r = msg.result;
    refreshMine();
    if (r && (r.outcome === "won" || r.outcome === "already_yours")) {
      await openCustomer(r.alert_id, r.customer_id).catch((err) => note(err.message, "error"));
    } else if (r) {
      note(r.message, "warn");
    } else {
      note(msg.error || "Accept did not reach the hub: try again", "error");
    }
  } else if (msg.type === "accept") {
    const a = state.alerts.get(msg.alert_id);
    if (a) await act(a, "claim", null);
  } else if (msg.type === "open") {
    const a = state.alerts.get(msg.alert_id);
    if (a) show("alerts-view");
  }
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {});
  navigator.serviceWorker.addEventListener("message", (ev) => onWorkerMessage(ev.data));
}
checkSession();
