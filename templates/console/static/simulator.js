/* Phone simulator: keeps the conversation current by fetching it again every 1.5 s (same origin),
   and keeps the newest message in view. Without JavaScript the page refreshes itself instead. */
(function () {
  var box = document.getElementById('thread');
  if (!box || !window.fetch) return;
  var src = box.getAttribute('data-src');
  function bottom() {
    var list = box.querySelector('.thread');
    if (list) list.scrollTop = list.scrollHeight;
  }
  bottom();
  function tick() {
    fetch(src, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (html) {
        var tmp = document.createElement('div');
        tmp.innerHTML = html;
        var next = tmp.firstElementChild;
        if (next && next.getAttribute('data-version') !== box.getAttribute('data-version')) {
          box.innerHTML = next.innerHTML;
          box.setAttribute('data-version', next.getAttribute('data-version'));
          bottom();
        }
      })
      .catch(function () {})
      .then(function () {
        setTimeout(tick, 1500);
      });
  }
  setTimeout(tick, 1000);
})();
