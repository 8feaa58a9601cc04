/* Wallboard behaviour: timers that turn amber and red, and the live 15-minute chart.
 *
 * Timers: every <time data-since data-amber data-red> (agent tiles, the longest wait) gets
 * timer--amber / timer--red once its elapsed seconds pass the thresholds the server put in
 * the data attributes (DESK_TIMER_AMBER / DESK_TIMER_RED). desk.js ticks the text.
 *
 * Chart: #wallboard-counters carries today's buckets in data-chart (JSON: x in unix seconds,
 * calls, abandoned, tz). The fragment is swapped in over the websocket (hx-swap-oob) or by
 * its once-a-minute refresh; after either swap the chart takes the new data. */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;
  var language = document.documentElement.lang || "en";
  var count = new Intl.NumberFormat(language);

  function colourTimers() {
    var now = Date.now();
    var nodes = document.querySelectorAll("time[data-since][data-amber]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var since = Date.parse(el.dataset.since);
      if (isNaN(since)) continue;
      var elapsed = (now - since) / 1000;
      var red = elapsed >= Number(el.dataset.red);
      el.classList.toggle("timer--red", red);
      el.classList.toggle("timer--amber", !red && elapsed >= Number(el.dataset.amber));
    }
  }
  setInterval(colourTimers, 1000);
  document.addEventListener("DOMContentLoaded", colourTimers);
  document.addEventListener("htmx:wsAfterMessage", colourTimers);

  var chart = null;

  function readData() {
    var source = document.getElementById("wallboard-counters");
    if (!source || !source.dataset.chart) return null;
    try { return JSON.parse(source.dataset.chart); } catch (err) { return null; }
  }

  // Times on the chart as the page's language writes them, 24-hour, in the day's time zone.
  function clockIn(zone) {
    var options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    var format;
    try { format = new Intl.DateTimeFormat(language, Object.assign({ timeZone: zone }, options)); }
    catch (err) { format = new Intl.DateTimeFormat(language, options); }  // a zone this browser lacks
    return function (seconds) { return format.format(new Date(seconds * 1000)); };
  }
  function shown(formatter) {
    return function (u, value) { return value == null ? "–" : formatter(value); };
  }

  function size(el) {
    return { width: Math.max(300, el.clientWidth), height: Math.max(200, Math.round(window.innerHeight * 0.28)) };
  }

  function draw() {
    var el = document.getElementById("wallboard-chart");
    var data = readData();
    if (!el || !data || !window.uPlot) return;
    var series = [data.x, data.calls, data.abandoned];
    el.dataset.total = data.calls.reduce(function (a, b) { return a + b; }, 0);
    if (chart) { chart.setData(series); return; }
    var dims = size(el);
    var clock = clockIn(data.tz);
    var bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
    chart = new window.uPlot({
      width: dims.width, height: dims.height,
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1000), data.tz); },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, max + 1)]; } } },
      axes: [
        { stroke: "#a3acc2", grid: { stroke: "#2c3650" },
          values: function (u, splits) { return splits.map(clock); } },
        { stroke: "#a3acc2", grid: { stroke: "#2c3650" }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500],
          values: function (u, splits) { return splits.map(function (n) { return count.format(n); }); } }
      ],
      series: [
        { label: _("Time"), value: shown(clock) },
        { label: _("Calls"), stroke: "#84adff", fill: "rgba(132,173,255,0.35)", paths: bars, value: shown(count.format) },
        { label: _("Abandoned"), stroke: "#f97066", fill: "rgba(249,112,102,0.45)", paths: bars, value: shown(count.format) }
      ]
    }, series, el);
    window.addEventListener("resize", function () { chart.setSize(size(el)); });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.target && event.target.id === "wallboard-counters") draw();
    colourTimers();
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (document.getElementById("wallboard-counters")) draw();
  });
})();
