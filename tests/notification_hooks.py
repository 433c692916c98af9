"""What the Chromium phone tests and benches record in the page: when the app shows and closes each
alert's system notification.

``HOOK_JS`` wraps the two browser methods the app calls — ``ServiceWorkerRegistration.
showNotification`` (shown: when it resolved) and ``Notification.close`` (gone: when the app
closed it) — plus the page-``Notification`` fallback the app uses when its service worker is
not ready within 1 s (counted in ``window.__page``). Times are ``Date.now()`` (this machine's
wall clock) in ``window.__shown`` / ``window.__gone``, keyed by tag (= alert id).

Not by polling ``getNotifications()``: a look-up overlapping a show makes Chromium drop the
notification from the registration's list (25 of 90 with a 10 ms poll beside the shows, 0 of
90 without; 3 headless browsers), which the first versions of these benches did.
"""

HOOK_JS = """async () => {
  window.__shown = {}; window.__gone = {}; window.__page = 0;
  const Page = window.Notification;
  const close = Page.prototype.close;
  Page.prototype.close = function () {
    const t = this.tag;
    if (t && t in window.__shown && !(t in window.__gone)) window.__gone[t] = Date.now();
    return close.call(this);
  };
  // the app falls back to a page Notification when its service worker is not ready within
  // 1 s (a slow phone): shown at construction; close() is the wrapped one above
  window.Notification = class extends Page {
    constructor(title, opts) {
      super(title, opts);
      window.__page += 1;
      if (opts && opts.tag && !(opts.tag in window.__shown)) window.__shown[opts.tag] = Date.now();
    }
  };
  const show = ServiceWorkerRegistration.prototype.showNotification;
  ServiceWorkerRegistration.prototype.showNotification = async function (title, opts) {
    await show.call(this, title, opts);
    const t = opts && opts.tag;
    if (t && !(t in window.__shown)) window.__shown[t] = Date.now();
  };
  await navigator.serviceWorker.ready;
  return true;
}"""
