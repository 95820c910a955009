// Poll a build's status every second until it is final (build detail page). Kept in a
// file of its own: the Content-Security-Policy allows no inline script.
(() => {
  if (!document.getElementById("build-status") || !document.getElementById("build-status").dataset.statusUrl) return;

  const statusUrl = document.getElementById("build-status").dataset.statusUrl;
  async function poll() {
    try {
      const res = await fetch(statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
      if (res.ok) {
        const s = await res.json();
        const pill = document.getElementById("build-status");
        pill.textContent = s.status; pill.className = "pill " + s.status;
        document.getElementById("stages").innerHTML = s.stages.map(
          (st) => `<li class="${st.state}" data-stage="${st.name}">${st.name}</li>`).join("");
        if (s.error) { const e = document.getElementById("build-error"); e.textContent = s.error; e.hidden = false; }
        if (s.final) { location.reload(); return; }
      }
    } catch (err) { /* transient network error: keep polling */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
