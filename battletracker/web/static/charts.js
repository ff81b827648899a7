/* battletracker charts: tiny, dependency-free SVG line and bar charts (works offline).
 *
 * Markup: <div class="chart" data-chart="ID"></div> plus
 *         <script type="application/json" id="ID">{spec}</script>
 * spec:   {"type": "line"|"bars", "title": "...", "unit": "...",
 *          "series": [{"name": "xbox", "points": [["2024-05-01", 123], ...]}]}   (line)
 *          "labels": ["a", "b"], "values": [1, 2]                               (bars)
 * Line x values are ISO dates or numbers. Each drawn series is one <path> with a "d".
 */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2f6fdf", "#e0662f", "#2a9d5c", "#9b59b6", "#c0392b", "#7f8c8d"];

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, str, attrs) {
    var t = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = str;
    return t;
  }

  function niceStep(range, ticks) {
    var raw = range / Math.max(ticks, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    var norm = raw / mag;
    var step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return step * mag;
  }

  function fmt(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1).replace(/\.0$/, "") + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100 || v === Math.round(v)) return String(Math.round(v));
    return v.toFixed(2);
  }

  function toX(v) {
    if (typeof v === "number") return v;
    var t = Date.parse(v);
    return isNaN(t) ? NaN : t;
  }

  function xLabel(v, isDate) {
    if (!isDate) return fmt(v);
    var d = new Date(v);
    return d.toISOString().slice(5, 10);
  }

  function frame(container, spec) {
    container.innerHTML = "";
    var width = Math.max(container.clientWidth || 0, 280);
    var height = spec.height || 220;
    var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
                          role: "img", "class": "bt-chart" }, container);
    var title = el("title", {}, svg);
    title.textContent = spec.title || "chart";
    return { svg: svg, width: width, height: height };
  }

  function empty(f, msg) {
    text(f.svg, f.width / 2, f.height / 2, msg || "no data yet",
         { "text-anchor": "middle", "class": "bt-empty" });
    f.svg.setAttribute("data-empty", "1");
  }

  function yAxis(f, m, yMin, yMax) {
    var step = niceStep(yMax - yMin, 4);
    var top = Math.ceil(yMax / step) * step;
    if (top === yMin) top = yMin + step;
    var scale = function (v) { return m.top + (f.height - m.top - m.bottom) * (1 - (v - yMin) / (top - yMin)); };
    for (var v = yMin; v <= top + step / 2; v += step) {
      var y = scale(v);
      el("line", { x1: m.left, x2: f.width - m.right, y1: y, y2: y, "class": "bt-grid" }, f.svg);
      text(f.svg, m.left - 6, y + 4, fmt(v), { "text-anchor": "end", "class": "bt-tick" });
    }
    return scale;
  }

  function line(container, spec) {
    var f = frame(container, spec);
    var series = (spec.series || []).map(function (s) {
      return { name: s.name, points: (s.points || []).map(function (p) { return [toX(p[0]), Number(p[1])]; })
        .filter(function (p) { return isFinite(p[0]) && isFinite(p[1]); })
        .sort(function (a, b) { return a[0] - b[0]; }) };
    }).filter(function (s) { return s.points.length > 0; });
    if (!series.length) { empty(f); return f.svg; }
    var isDate = (spec.series[0].points[0] && typeof spec.series[0].points[0][0] === "string");
    var m = { top: 12, right: 12, bottom: 40, left: 52 };
    var xs = [], ys = [];
    series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    var xMin = Math.min.apply(null, xs), xMax = Math.max.apply(null, xs);
    if (xMin === xMax) { xMin -= 86400000; xMax += 86400000; }
    var yMin = Math.min(0, Math.min.apply(null, ys)), yMax = Math.max.apply(null, ys);
    if (yMax === yMin) yMax = yMin + 1;
    var sy = yAxis(f, m, yMin, yMax);
    var sx = function (v) { return m.left + (f.width - m.left - m.right) * (v - xMin) / (xMax - xMin); };
    var nx = Math.min(6, Math.max(2, Math.floor((f.width - m.left) / 90)));
    var DAY = 86400000, days = Math.round((xMax - xMin) / DAY);
    // dates: ticks on whole days only, so no label repeats when there are few days
    if (isDate) nx = Math.max(2, Math.min(nx, days + 1));
    for (var i = 0; i < nx; i++) {
      var xv = isDate ? xMin + Math.round(days * i / (nx - 1)) * DAY
                      : xMin + (xMax - xMin) * i / (nx - 1);
      var anchor = i === 0 ? "start" : i === nx - 1 ? "end" : "middle";
      text(f.svg, sx(xv), f.height - m.bottom + 16, xLabel(xv, isDate),
           { "text-anchor": anchor, "class": "bt-tick" });
    }
    series.forEach(function (s, idx) {
      var color = COLORS[idx % COLORS.length];
      var d = s.points.map(function (p, j) {
        return (j ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1);
      }).join(" ");
      el("path", { d: d, fill: "none", stroke: color, "stroke-width": 2, "class": "bt-line",
                   "data-series": s.name }, f.svg);
      if (s.points.length <= 60) {
        s.points.forEach(function (p) {
          var c = el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color }, f.svg);
          var t = el("title", {}, c);
          t.textContent = s.name + " · " + xLabel(p[0], isDate) + ": " + fmt(p[1]) + (spec.unit ? " " + spec.unit : "");
        });
      }
      var lx = m.left + 8 + idx * 110;
      el("rect", { x: lx, y: f.height - 16, width: 10, height: 10, fill: color }, f.svg);
      text(f.svg, lx + 14, f.height - 7, s.name, { "class": "bt-legend" });
    });
    return f.svg;
  }

  function bars(container, spec) {
    var f = frame(container, spec);
    var labels = spec.labels || [], values = (spec.values || []).map(Number);
    if (!values.length) { empty(f); return f.svg; }
    var m = { top: 12, right: 12, bottom: 40, left: 52 };
    var yMin = Math.min(0, Math.min.apply(null, values));
    var yMax = Math.max.apply(null, values);
    if (yMax === yMin) yMax = yMin + 1;
    var sy = yAxis(f, m, yMin, yMax);
    var band = (f.width - m.left - m.right) / values.length;
    var w = Math.max(band * 0.7, 1);
    values.forEach(function (v, i) {
      var x = m.left + band * i + (band - w) / 2, y0 = sy(Math.max(v, 0)), y1 = sy(Math.min(v, 0));
      var d = "M" + x.toFixed(1) + " " + y1.toFixed(1) + " V" + y0.toFixed(1) +
              " H" + (x + w).toFixed(1) + " V" + y1.toFixed(1) + " Z";
      var p = el("path", { d: d, fill: COLORS[0], "class": "bt-bar" }, f.svg);
      var t = el("title", {}, p);
      t.textContent = labels[i] + ": " + fmt(v) + (spec.unit ? " " + spec.unit : "");
      if (values.length <= 12) {
        text(f.svg, x + w / 2, f.height - m.bottom + 16, String(labels[i]).slice(0, 12),
             { "text-anchor": "middle", "class": "bt-tick" });
      }
    });
    return f.svg;
  }

  function draw(container) {
    var source = document.getElementById(container.getAttribute("data-chart"));
    if (!source) return;
    var spec;
    try { spec = JSON.parse(source.textContent); } catch (e) { return; }
    (spec.type === "bars" ? bars : line)(container, spec);
    container.setAttribute("data-drawn", "1");
  }

  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), draw);
  }

  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(drawAll, 150);
  });
  document.addEventListener("DOMContentLoaded", drawAll);
  window.BTCharts = { line: line, bars: bars, drawAll: drawAll };
})();
