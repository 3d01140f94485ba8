// The admin dashboard's charts (templates/admin/gateway/dashboard.html), drawn with the vendored
// uPlot from the page's json_script data: 30 UTC days, and the last 24 hours.
(function () {
  "use strict";

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function axis(options) {
    return Object.assign({
      stroke: cssVar("--body-quiet-color", "#666"),
      grid: {stroke: cssVar("--hairline-color", "#e8e8e8"), width: 1},
      ticks: {stroke: cssVar("--hairline-color", "#e8e8e8"), width: 1},
    }, options);
  }

  function read(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : [];
  }

  function chart(element, points, step, second) {
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const bars = uPlot.paths.bars({size: [0.7, 40], align: 0});
    const options = {
      width: Math.max(element.clientWidth, 320),
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {x: {time: true, range: (u, min, max) => [min - step / 2, max + step / 2]},
               y: {range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1]},
               y2: {range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1]}},
      cursor: {drag: {x: false, y: false}},
      series: [
        {label: step === 86400 ? "Day (UTC)" : "Hour (UTC)"},
        {label: "Requests", stroke: "#417690", fill: "rgba(65, 118, 144, 0.55)", paths: bars, points: {show: false}},
        {label: second.label, stroke: second.colour, width: 2, scale: "y2", value: second.value},
      ],
      axes: [axis({}), axis({size: 60}), axis({side: 1, scale: "y2", grid: {show: false}, size: 60,
                                              values: (u, splits) => splits.map(second.tick)})],
    };
    return new uPlot(options, [xs, points.map((p) => p.requests), points.map((p) => p[second.field])], element);
  }

  function draw() {
    const days = document.getElementById("chart-days");
    const hours = document.getElementById("chart-hours");
    if (days) {
      chart(days, read("dashboard-days"), 86400, {
        label: "Spend (USD)", field: "cost", colour: "#c98b00",
        value: (u, v) => (v == null ? "—" : "$" + v.toFixed(4)), tick: (v) => "$" + v,
      });
    }
    if (hours) {
      chart(hours, read("dashboard-hours"), 3600, {
        label: "Errors", field: "errors", colour: "#ba2121", value: (u, v) => v, tick: (v) => v,
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
