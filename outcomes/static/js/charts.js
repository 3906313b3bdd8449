// Draws every chart on the page from its JSON block (no inline script, so the CSP stays strict).
document.querySelectorAll("[data-chart]").forEach(function (element) {
  var source = document.getElementById(element.dataset.chart);
  if (!source || !window.Plotly) { return; }
  var figure = JSON.parse(source.textContent);
  window.Plotly.newPlot(element, figure.data, figure.layout, {
    displayModeBar: false,
    responsive: true,
    scrollZoom: false
  });
});
