/* Survey results: a horizontal bar chart beside each choice table (the table holds the same numbers). */
(function () {
  if (typeof Chart === 'undefined') return;
  document.querySelectorAll('canvas[data-chart]').forEach(function (canvas) {
    var d;
    try { d = JSON.parse(canvas.getAttribute('data-chart')); } catch (e) { return; }
    canvas.parentElement.style.height = Math.max(120, d.labels.length * 28 + 40) + 'px';
    new Chart(canvas, {
      type: 'bar',
      data: { labels: d.labels, datasets: [{ label: d.title, data: d.counts, backgroundColor: '#b3001b' }] },
      options: { indexAxis: 'y', maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  });
})();
