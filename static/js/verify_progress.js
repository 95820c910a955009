// "Verify now" on the ledger page: poll the running verification (GET
// /api/v1/ledger/verify/<id>/) every second and show entries checked of the total, the
// rate and the time left; reload the page once it has finished, to show its result.
// Kept in a file of its own: the Content-Security-Policy allows no inline script.
(() => {
  const box = document.getElementById("verify-progress");
  if (!box || !box.dataset.statusUrl) return;

  // the same words as the page's `duration` filter (compliance/templatetags/dashboard.py)
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.floor(seconds);
    if (s < 90) return `${s} s`;
    if (s < 90 * 60) return `${Math.floor(s / 60)} min`;
    if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} days`;
  }

  function show(r) {
    const state = document.getElementById("verify-state");
    state.textContent = r.status;
    state.className = "pill " + r.status;
    const bar = document.getElementById("verify-bar");
    const figures = document.getElementById("verify-figures");
    if (r.entries_total === null) {
      bar.removeAttribute("value");  // indeterminate until the worker has read the ledger's size
      figures.textContent = "waiting for a worker";
      return;
    }
    if (r.entries_total > 0) {
      bar.max = r.entries_total;
      bar.value = Math.min(r.entries_checked, r.entries_total);
    }
    let text = `${r.entries_checked} of ${r.entries_total} entries`;
    if (r.entries_per_s) text += ` · ${Math.round(r.entries_per_s)} entries/s · ${duration(r.seconds_left)} left`;
    figures.textContent = text;
  }

  async function poll() {
    try {
      const res = await fetch(box.dataset.statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
      if (res.status === 403 || res.status === 404) return;  // nothing to follow
      if (res.ok) {
        const r = await res.json();
        show(r);
        if (r.finished_at) { location.reload(); return; }
      }
    } catch (err) { /* transient network error: keep polling */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
