// The admin's spend report charts (templates/admin/spend/spend_report.html), drawn with the
// vendored uPlot (static/vendor/uplot) from the page's json_script data: one point per UTC day.
(function () {
  "use strict";

  const DAY = 86400;

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function money(value, digits) {
    return value == null ? "—" : "$" + value.toFixed(digits);
  }

  function axis(options) {
    // Axes in the admin's own colours, so the charts follow its light and dark themes.
    return Object.assign({
      stroke: cssVar("--body-quiet-color", "#666"),
      grid: {stroke: cssVar("--hairline-color", "#e8e8e8"), width: 1},
      ticks: {stroke: cssVar("--hairline-color", "#e8e8e8"), width: 1},
    }, options);
  }

  function baseOptions(element, height) {
    return {
      width: Math.max(element.clientWidth, 320),
      height: height,
      // Days are UTC days: label them so whatever the browser's time zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      // Half a day of room each side, so the first and last bars are whole.
      scales: {x: {time: true, range: (u, min, max) => [min - DAY / 2, max + DAY / 2]}},
      cursor: {drag: {x: false, y: false}},
    };
  }

  function bars() {
    return uPlot.paths.bars({size: [0.7, 48], align: 0});
  }

  function spendChart(element, data) {
    const options = Object.assign(baseOptions(element, 260), {
      series: [
        {label: "Day (UTC)", value: "{YYYY}-{MM}-{DD}"},
        {label: "Spend (USD)", stroke: "#417690", fill: "rgba(65, 118, 144, 0.55)", paths: bars(),
         points: {show: false}, value: (u, v) => money(v, 4)},
      ],
      axes: [
        axis({}),
        axis({size: 70, values: (u, splits) => {
          // As many decimals as the ticks' step needs: $0.25, $0.0005, $1,200
          const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
          const digits = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step))));
          return splits.map((v) => (v === 0 ? "$0" : "$" + v.toLocaleString("en-US", {
            minimumFractionDigits: digits, maximumFractionDigits: digits})));
        }}),
      ],
    });
    options.scales.y = {range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1]};
    return new uPlot(options, [data.x, data.spend], element);
  }

  function errorsChart(element, data) {
    const options = Object.assign(baseOptions(element, 240), {
      series: [
        {label: "Day (UTC)", value: "{YYYY}-{MM}-{DD}"},
        {label: "Requests", scale: "requests", stroke: "#79aec8", fill: "rgba(121, 174, 200, 0.45)",
         paths: bars(), points: {show: false}},
        {label: "Error rate", scale: "%", stroke: "#ba2121", width: 2, spanGaps: false,
         points: {size: 5, fill: "#ba2121"}, value: (u, v) => (v == null ? "—" : v.toFixed(1) + "%")},
      ],
      axes: [
        axis({}),
        axis({scale: "requests", size: 60}),
        axis({scale: "%", side: 1, size: 50, grid: {show: false}, values: (u, splits) => splits.map((v) => v + "%")}),
      ],
    });
    options.scales.requests = {range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.1) : 1]};
    options.scales["%"] = {range: [0, 100]};
    return new uPlot(options, [data.x, data.requests, data.error_rate], element);
  }

  function draw() {
    const source = document.getElementById("spend-report-data");
    if (!source) return;  // the date range was refused: nothing to draw
    const data = JSON.parse(source.textContent);
    const charts = [
      [document.getElementById("spend-chart"), spendChart],
      [document.getElementById("errors-chart"), errorsChart],
    ].map(([element, make]) => [element, make(element, data)]);

    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        for (const [element, chart] of charts) {
          chart.setSize({width: Math.max(element.clientWidth, 320), height: chart.height});
        }
      }, 100);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
