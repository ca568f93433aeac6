/* The dashboards' charts: each `.chart` names the JSON block that holds its figures
   (nurture/console/dashboard_charts.py); ECharts draws it on a canvas. Nothing here
   writes HTML or a style attribute, so the console's Content-Security-Policy holds:
   the tooltip is drawn on the canvas too (renderMode "richText"), where ECharts' HTML
   tooltip would carry inline styles the policy refuses. */
(function () {
  "use strict";

  var ALERT = "#b42318";
  var PALETTE = ["#1d4ed8", "#0e9384", "#f79009", "#7a5af8", "#52606d", "#e04f16", "#2e90fa"];

  function extreme(lines, pick, start) {
    return lines.reduce(function (found, line) { return pick(found, line.value); }, start);
  }

  function series(spec) {
    return spec.series.map(function (shown, index) {
      var data = shown.values.map(function (value, at) {
        // A figure on the wrong side of its line is drawn in the alarm's colour.
        return shown.alerts[at] ? { value: value, itemStyle: { color: ALERT } } : value;
      });
      var drawn = {
        name: shown.name,
        type: shown.kind,
        data: data,
        connectNulls: false,
        emphasis: { focus: "series" }
      };
      if (shown.stack) {
        drawn.stack = shown.stack;
      }
      if (index === 0 && spec.lines.length) {
        drawn.markLine = {
          symbol: "none",
          silent: true,
          animation: false,
          lineStyle: { type: "dashed", color: ALERT, width: 1.5 },
          label: { position: "insideEndTop", formatter: "{b}", color: ALERT },
          data: spec.lines.map(function (line) {
            return { name: line.label, yAxis: line.value };
          })
        };
      }
      return drawn;
    });
  }

  function labels(spec, width) {
    // Each category's share of the width: names fit it, or lean and are cut short.
    var count = Math.max(1, spec.categories.length);
    var slot = (width - 80) / count;
    var lean = slot < 72;
    return {
      hideOverlap: true,
      interval: count <= 16 ? 0 : "auto",
      rotate: lean ? 30 : 0,
      width: lean ? 120 : Math.max(48, slot - 8),
      overflow: "truncate"
    };
  }

  function option(spec, width) {
    var top = extreme(spec.lines, Math.max, -Infinity);
    var bottom = extreme(spec.lines, Math.min, Infinity);
    var axis = { type: "value", name: spec.unit, nameTextStyle: { align: "left" } };
    if (spec.lines.length) {
      // Lines stay in sight even when every figure is far from them.
      axis.max = function (range) { return Math.max(range.max, top > 0 ? top * 1.2 : 0); };
      axis.min = function (range) { return Math.min(range.min, bottom < 0 ? bottom * 1.2 : 0); };
    }
    return {
      animation: false,
      color: PALETTE,
      tooltip: { trigger: "axis", renderMode: "richText", confine: true },
      legend: { top: 0, type: "scroll" },
      grid: { left: 8, right: 24, top: 48, bottom: 8, containLabel: true },
      xAxis: {
        type: "category",
        data: spec.categories,
        axisLabel: labels(spec, width)
      },
      yAxis: axis,
      series: series(spec)
    };
  }

  function draw() {
    var charts = [];
    document.querySelectorAll(".chart[data-chart]").forEach(function (box) {
      var block = document.getElementById(box.getAttribute("data-chart"));
      if (!block) {
        return;
      }
      var spec = JSON.parse(block.textContent);
      var chart = echarts.init(box, null, { renderer: "canvas" });
      chart.setOption(option(spec, box.clientWidth));
      box.setAttribute("data-drawn", String(spec.categories.length));
      charts.push(chart);
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (chart) { chart.resize(); });
    });
  }

  draw();
})();
