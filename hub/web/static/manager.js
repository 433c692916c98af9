// Manager page: today's alerts, who claimed what and how fast, false-match reports.
const $ = (id) => document.getElementById(id);
const time = (t) => (t == null ? "—" : new Date(t * 1000).toLocaleTimeString());
const secs = (s) => (s == null ? "—" : `${s.toFixed(1)} s`);

function rows(tbody, items, cells) {
  $(tbody).replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const value of cells(item)) {
      const td = document.createElement("td");
      td.textContent = value ?? "—";
      tr.append(td);
    }
    return tr;
  }));
}

async function load(day) {
  const res = await fetch(`/api/manager/day${day ? `?date=${day}` : ""}`, { credentials: "same-origin" });
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || `HTTP ${res.status}`);
  $("title").textContent = `Alerts on ${data.date}`;
  $("n-alerts").textContent = data.summary.alerts;
  $("median").textContent = secs(data.summary.median_seconds_to_claim);
  $("n-false").textContent = data.summary.false_matches;
  rows("staff", data.staff, (s) => [s.name, s.claimed, secs(s.median_seconds_to_claim)]);
  rows("alerts", data.alerts, (a) => [time(a.created_at), a.customer_name || a.customer_id, a.camera_id,
    a.state, a.claimed_by_name, secs(a.seconds_to_claim), a.claim_attempts]);
  rows("false", data.false_matches, (f) => [time(f.at), f.customer_name || f.customer_id, f.camera_id,
    f.staff_name, f.best_distance == null ? null : f.best_distance.toFixed(3), f.track_id && f.track_id.slice(0, 8)]);
}

async function forget(csrf) {
  const id = $("forget-id").value.trim();
  if (!confirm(`Erase customer ${id}? This cannot be undone.`)) return;
  const res = await fetch(`/api/manager/customers/${encodeURIComponent(id)}/forget`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ reason: $("forget-reason").value }),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || `HTTP ${res.status}`);
  $("forget-result").textContent = `Erased ${data.customer_id}: ` +
    `${data.profile_deleted ? "face profile deleted" : "no face profile"}, ` +
    `${data.receipts_unlinked} receipts unlinked.`;
  await load($("day").value || null);  // their alerts are gone from the tables too
}

async function main() {
  const me = await fetch("/api/me", { credentials: "same-origin" });
  if (me.status === 401) { location.href = "/"; return; }
  const who = await me.json();
  $("who").textContent = who.name;
  $("forget").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("forget-result").textContent = "";
    forget(who.csrf_token).catch((e) => { $("forget-result").textContent = e.message; });
  });
  $("day").addEventListener("change", () => load($("day").value).catch((e) => { $("error").textContent = e.message; }));
  await load(null);
}
main().catch((e) => { $("error").textContent = e.message; });
