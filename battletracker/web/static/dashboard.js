/* Refreshes the night's progress on the dashboard from /api/v1/cycles/current. */
(function () {
  "use strict";
  function fmtInt(v) { return v == null ? "–" : Math.round(v).toLocaleString("en-US"); }
  function fmtNum(v) { return v == null ? "–" : Number(v).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }); }
  function fmtDuration(s) {
    if (s == null) return "–";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h) return h + " h " + (m < 10 ? "0" : "") + m + " min";
    if (m) return m + " min";
    return Math.floor(s) + " s";
  }
  function set(root, field, value) {
    var node = root.querySelector('[data-field="' + field + '"]');
    if (node) node.textContent = value;
  }
  function refresh(root) {
    fetch("/api/v1/cycles/current", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) return;
        set(root, "status", p.status);
        set(root, "chunks_stored", fmtInt(p.chunks_stored));
        set(root, "chunks_total", fmtInt(p.chunks_total));
        set(root, "accounts", fmtInt(p.accounts));
        set(root, "chunks_per_minute", fmtNum(p.chunks_per_minute));
        set(root, "accounts_per_second", fmtNum(p.accounts_per_second));
        set(root, "eta", fmtDuration(p.eta_seconds));
        set(root, "nodes_online", fmtInt(p.nodes_online));
        var bar = root.querySelector('[data-field="bar"]');
        if (bar) bar.style.width = (p.fraction * 100).toFixed(1) + "%";
        root.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* offline: keep the last numbers */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("progress");
    if (!root) return;
    // the bar's width comes from data-fraction: a style attribute would need CSP unsafe-inline
    var bar = root.querySelector('[data-field="bar"]');
    if (bar) bar.style.width = (Number(bar.getAttribute("data-fraction") || 0) * 100).toFixed(1) + "%";
    var every = Number(root.getAttribute("data-refresh") || 30) * 1000;
    setInterval(function () { refresh(root); }, every);
  });
})();
