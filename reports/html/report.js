// The report's only script: zoom every chart of a window to a dragged time
// range, show the values under the cursor, and jump from a piece of
// evidence to its moment. The charts are complete without it.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var LEFT = 190, WIDTH = 1100 - 190 - 16; // as in svg.go
  var STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  var tip = document.getElementById("tip");

  function ticks(from, to) {
    var span = to - from, step = 1, out = [];
    for (var i = 0; i < STEPS.length; i++) { step = STEPS[i]; if (span / step <= 10) break; }
    for (var t = Math.ceil(from / step) * step; t <= to + 1e-9; t += step) out.push(t);
    return out;
  }
  function clock(s) {
    if (s < 60) return (Math.round(s * 10) / 10) + "s";
    var w = Math.round(s);
    return Math.floor(w / 60) + ":" + ("0" + (w % 60)).slice(-2);
  }
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  document.querySelectorAll("section.window").forEach(function (sec) {
    var plots = Array.prototype.slice.call(sec.querySelectorAll("svg.plot"));
    if (!plots.length) return;
    var data = JSON.parse(sec.querySelector("script.data").textContent);
    var full = [parseFloat(plots[0].dataset.from), parseFloat(plots[0].dataset.from) + parseFloat(plots[0].dataset.span)];
    var range = full.slice();

    function setRange(t0, t1) {
      t0 = Math.max(full[0], t0); t1 = Math.min(full[1], t1);
      if (t1 - t0 < 0.05) return;
      range = [t0, t1];
      var whole = t0 <= full[0] && t1 >= full[1];
      if (history.replaceState) history.replaceState(null, "", whole ? location.pathname : "#" + sec.id + "=" + t0.toFixed(2) + "-" + t1.toFixed(2));
      plots.forEach(function (p) {
        var h = p.viewBox.baseVal.height;
        p.setAttribute("viewBox", t0 + " 0 " + (t1 - t0) + " " + h);
      });
      sec.querySelectorAll("g.xaxis").forEach(function (g) {
        var y = parseFloat(g.dataset.y);
        while (g.firstChild) g.removeChild(g.firstChild);
        ticks(t0, t1).forEach(function (t) {
          var x = LEFT + (t - t0) / (t1 - t0) * WIDTH;
          g.appendChild(el("line", { x1: x, x2: x, y1: y, y2: y + 4 }));
          g.appendChild(el("text", { x: x, y: y + 16 }, clock(t)));
        });
      });
    }
    sec._setRange = setRange;
    sec.querySelector("button.reset").addEventListener("click", function () { setRange(full[0], full[1]); });

    function timeAt(p, ev) {
      var r = p.getBoundingClientRect(), vb = p.viewBox.baseVal;
      return vb.x + (ev.clientX - r.left) / r.width * vb.width;
    }
    var drag = null;
    plots.forEach(function (p) {
      var chart = p.closest("svg.chart").id;
      var h = p.viewBox.baseVal.height;
      var cursor = el("line", { "class": "cursor", y1: 0, y2: h, x1: 0, x2: 0, visibility: "hidden" });
      p.appendChild(cursor);
      p._cursor = cursor;
      p.addEventListener("mousedown", function (ev) {
        ev.preventDefault();
        drag = { plot: p, t0: timeAt(p, ev), rect: el("rect", { "class": "select", y: 0, height: h, x: 0, width: 0 }) };
        p.appendChild(drag.rect);
      });
      p.addEventListener("mousemove", function (ev) {
        var t = timeAt(p, ev);
        plots.forEach(function (q) { q._cursor.setAttribute("x1", t); q._cursor.setAttribute("x2", t); q._cursor.setAttribute("visibility", "visible"); });
        if (drag && drag.plot === p) {
          drag.rect.setAttribute("x", Math.min(t, drag.t0));
          drag.rect.setAttribute("width", Math.abs(t - drag.t0));
        }
        var b = Math.floor((t - data.from) / data.bucket), lines = [clock(t)];
        data.series.forEach(function (s) {
          if (s.chart !== chart || b < 0 || b >= s.values.length) return;
          var v = s.values[b];
          lines.push(s.name + ": " + (v < 0 ? "none" : (Math.round(v * 10) / 10) + (s.unit ? " " + s.unit : "")));
        });
        if (lines.length > 1) {
          tip.textContent = lines.join("\n");
          tip.style.left = (ev.clientX + 14) + "px";
          tip.style.top = (ev.clientY + 14) + "px";
          tip.hidden = false;
        } else {
          tip.hidden = true;
        }
      });
      p.addEventListener("mouseleave", function () {
        tip.hidden = true;
        plots.forEach(function (q) { q._cursor.setAttribute("visibility", "hidden"); });
      });
      p.addEventListener("dblclick", function () { setRange(full[0], full[1]); });
    });
    document.addEventListener("mouseup", function (ev) {
      if (!drag) return;
      var d = drag; drag = null;
      var t1 = timeAt(d.plot, ev);
      d.rect.remove();
      if (Math.abs(t1 - d.t0) > (range[1] - range[0]) / 200) setRange(Math.min(d.t0, t1), Math.max(d.t0, t1));
    });
  });

  document.querySelectorAll("a.zoom").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      var sec = document.getElementById("w" + a.dataset.window);
      if (!sec || !sec._setRange) return;
      ev.preventDefault();
      var from = parseFloat(a.dataset.from), to = Math.max(parseFloat(a.dataset.to), from);
      var pad = Math.max(2, (to - from) / 2);
      sec._setRange(from - pad, to + pad);
      sec.scrollIntoView({ behavior: "smooth" });
    });
  });

  // A link to a zoomed view: report.html#w0=12.5-20 (what zooming writes).
  var m = /^#(w\d+)=([\d.]+)-([\d.]+)$/.exec(location.hash);
  var target = m && document.getElementById(m[1]);
  if (target && target._setRange) {
    target._setRange(parseFloat(m[2]), parseFloat(m[3]));
    target.scrollIntoView();
  }
})();
