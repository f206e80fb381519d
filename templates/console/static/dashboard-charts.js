/* Dashboard and reports: draws each <canvas data-chart="…"> with chart.js. The numbers are also in
   the table beside each chart, so the page says everything without JavaScript. */
(function () {
  if (typeof Chart === 'undefined') return;
  var colours = ['#1a5fb4', '#b3001b', '#0a6b2d', '#8a5a00', '#6b3fa0', '#005f6b', '#555555', '#c64600'];
  document.querySelectorAll('canvas[data-chart]').forEach(function (canvas) {
    var d;
    try { d = JSON.parse(canvas.getAttribute('data-chart')); } catch (e) { return; }
    if (!d || !d.labels || !d.labels.length) { canvas.parentElement.hidden = true; return; }
    var doughnut = d.type === 'doughnut';
    if (d.horizontal) canvas.parentElement.style.height = Math.max(140, d.labels.length * 30 * (d.stacked ? 1 : d.datasets.length) + 60) + 'px';
    var datasets = d.datasets.map(function (s, i) {
      return {
        label: s.label,
        data: s.data,
        backgroundColor: doughnut ? d.labels.map(function (_, j) { return colours[j % colours.length]; }) : colours[i % colours.length],
        borderColor: doughnut ? '#fff' : colours[i % colours.length],
        fill: false,
      };
    });
    var options = { maintainAspectRatio: false, animation: false, plugins: { legend: { display: doughnut || d.datasets.length > 1 } } };
    if (!doughnut) {
      var value = { beginAtZero: true, ticks: { precision: 0 }, stacked: !!d.stacked };
      var category = { stacked: !!d.stacked };
      options.indexAxis = d.horizontal ? 'y' : 'x';
      options.scales = d.horizontal ? { x: value, y: category } : { y: value, x: category };
    }
    canvas.setAttribute('data-drawn', '1');
    new Chart(canvas, { type: d.type, data: { labels: d.labels, datasets: datasets }, options: options });
  });
})();
