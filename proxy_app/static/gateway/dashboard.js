/* Draws the admin dashboard's charts from the JSON embedded by the page (Chart.js, vendored). */
(function () {
  "use strict";
  var PALETTE = ["#4f46e5", "#0891b2", "#16a34a", "#ea580c", "#db2777", "#7c3aed", "#ca8a04", "#0f766e", "#94a3b8"];

  function datasets(series) {
    return series.map(function (s, i) {
      var colour = s.label === "other" ? "#94a3b8" : PALETTE[i % PALETTE.length];
      return { label: s.label, data: s.data, backgroundColor: colour, borderColor: colour, borderWidth: 0, stack: "all" };
    });
  }

  function draw(id, labels, series, title) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") { return; }
    var style = getComputedStyle(document.documentElement);
    var text = style.getPropertyValue("--body-quiet-color").trim() || "#666";
    Chart.defaults.color = text;
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels.map(function (d) { return d.slice(5); }), datasets: datasets(series) },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
                   tooltip: { callbacks: { title: function (items) { return labels[items[0].dataIndex]; } } } },
        scales: { x: { stacked: true, grid: { display: false } },
                  y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: title } } }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("dashboard-chart-data");
    if (!node) { return; }
    var data = JSON.parse(node.textContent);
    draw("chart-requests", data.labels, data.requests, "requests");
    draw("chart-tokens", data.labels, data.tokens, "tokens");
    document.body.setAttribute("data-charts", "drawn");
  });
})();
