// Service worker: lets the app start (and say "offline") without the network, makes it
// installable, and carries the notifications: Accept/Not now on a notification, and Web Push
// messages (a new alert, or "close this alert's notification") for a frozen or closed app.
// The app shell is served network-first so an update shows on the next load; the API,
// customer data and the WebSocket are never cached.
const CACHE = "storesense-shell-v2";
const SHELL = ["/", "/static/app.js", "/static/style.css", "/static/icon.svg", "/manifest.webmanifest"];

self.addEventListener("install", (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== "GET" || url.origin !== location.origin || !SHELL.includes(url.pathname)) return;
  ev.respondWith(
    fetch(ev.request)
      .then((res) => {
        const copy = res.clone();
        caches.open(CACHE).then((c) => c.put(ev.request, copy));
        return res;
      })
      .catch(() => caches.match(ev.request)),
  );
});

async function tell(msg) {
  for (const c of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) c.postMessage(msg);
}

async function openApp(alertId, accept = false) {
  const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  if (wins.length) {
    await wins[0].focus().catch(() => {});
    wins[0].postMessage({ type: accept ? "accept" : "open", alert_id: alertId });
    return;
  }
  await self.clients.openWindow(accept ? `/?accept=${encodeURIComponent(alertId)}` : "/");
}

// Accept from the notification: the claim goes to the hub from here (the page may be frozen
// or closed); the answer shows as a follow-up notification and in every open page.
async function acceptFromNotification(data) {
  const name = data.customer_name || "the customer";
  // A Web Push notification carries no CSRF token (the push service must not see one): the
  // app opens and claims itself.
  if (!data.csrf) { await openApp(data.alert_id, true); return { opened: true }; }
  let result = null;
  let error = null;
  try {
    const res = await fetch(`/api/alerts/${encodeURIComponent(data.alert_id)}/claim`, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": data.csrf || "" },
    });
    const body = await res.json().catch(() => null);
    if (res.ok) result = body;
    else error = (body && body.detail) || `HTTP ${res.status}`;
  } catch (err) {
    error = "no connection to the store: nothing was claimed";
  }
  const won = result && (result.outcome === "won" || result.outcome === "already_yours");
  await self.registration.showNotification(won ? `You have ${name}` : `${name}: not yours`, {
    tag: `${data.alert_id}:answer`,
    body: won ? "Open Storesense for the customer card." : (result ? result.message : error),
    icon: "/static/icon.svg",
    data: { alert_id: data.alert_id, answer: true },
  });
  await tell({ type: "claimed", alert_id: data.alert_id, result, error });
  if (won) await openApp(data.alert_id);
  return { result, error };
}

// What a notification click does; the notificationclick handler is only this.
async function handleNotificationAction(data, action) {
  for (const n of await self.registration.getNotifications({ tag: data.alert_id })) n.close();
  if (action === "later") return { later: true };
  if (action === "accept" && !data.answer) return acceptFromNotification(data);
  await openApp(data.alert_id);
  return { opened: true };
}
self.handleNotificationAction = handleNotificationAction;

self.addEventListener("notificationclick", (ev) => {
  ev.notification.close();
  ev.waitUntil(handleNotificationAction(ev.notification.data || {}, ev.action));
});

// Web Push (hub → push service → this phone): the payload is the alert's notification text
// and no purchase data; "close" removes a taken, ended or expired alert's notification.
self.addEventListener("push", (ev) => {
  let msg = null;
  try { msg = ev.data ? ev.data.json() : null; } catch { msg = null; }
  if (!msg) return;
  if (msg.type === "close") {
    ev.waitUntil(self.registration.getNotifications({ tag: msg.alert_id })
      .then((ns) => ns.forEach((n) => n.close())));
    return;
  }
  if (msg.type === "alert") {
    ev.waitUntil(self.registration.showNotification(msg.title, {
      body: msg.body,
      tag: msg.alert_id,
      renotify: true,
      requireInteraction: true,
      vibrate: [200, 100, 200],
      icon: "/static/icon.svg",
      actions: [{ action: "accept", title: "Accept" }, { action: "later", title: "Not now" }],
      data: { alert_id: msg.alert_id, customer_name: msg.title, csrf: msg.csrf || "" },
    }));
  }
});
