// The onboarding page: shows the store CA's fingerprint (fetched from the server that serves
// it, so a phone can compare it with the one the hub prints) and asks for notification
// permission from a user gesture, as browsers require. No inline script (CSP).
const $ = (id) => document.getElementById(id);

async function showFingerprint() {
  try {
    const res = await fetch("/onboarding/store-ca.json", { cache: "no-store" });
    if (!res.ok) throw new Error(String(res.status));
    const info = await res.json();
    // 32 bytes in four lines of eight, so it fits a phone and is easy to compare
    const el = $("ca-fingerprint");
    el.textContent = "";
    const bytes = info.sha256.split(":");
    for (let i = 0; i < bytes.length; i += 8) {
      if (i) el.appendChild(document.createElement("br"));
      el.appendChild(document.createTextNode(bytes.slice(i, i + 8).join(":")));
    }
  } catch (err) {
    $("ca-fingerprint").textContent = "unavailable (" + err.message + ")";
  }
}

function showNotifyState() {
  const el = $("notify-state");
  if (!("Notification" in window)) {
    el.textContent = window.isSecureContext
      ? "this browser has no notifications here (on iPhone: open the app from the home screen)"
      : "needs the store certificate first (step 1): the page is not on a trusted HTTPS connection";
    $("allow-notify").disabled = true;
    return;
  }
  el.textContent = {
    granted: "allowed ✓",
    denied: "blocked: allow them in the browser's site settings",
    default: "not asked yet",
  }[Notification.permission];
}

$("allow-notify").addEventListener("click", async () => {
  if ("Notification" in window) {
    await Notification.requestPermission();
  }
  showNotifyState();
});

showFingerprint();
showNotifyState();
