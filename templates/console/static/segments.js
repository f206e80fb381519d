// Live segment counts on the console (optional: every form also works without scripts).
// - the query box: counts as you type, through POST /api/v1/segments/count, and shows the error with its position;
// - the list of saved segments: fills in each segment's count.
(function () {
  'use strict';
  var csrfField = document.querySelector('input[name="_csrf"]');
  var csrf = csrfField ? csrfField.value : '';
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, k) { return k in values ? String(values[k]) : m; });
  }
  function request(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: 'same-origin',
      headers: body ? { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' } : { accept: 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (res) {
      return res.json().then(function (data) { return { ok: res.ok, data: data }; });
    });
  }

  var box = document.getElementById('segment-query');
  var live = document.getElementById('segment-live');
  if (box && live) {
    var timer = null;
    var seq = 0;
    var show = function (result) {
      live.textContent = '';
      var p = document.createElement('p');
      if (result.ok) {
        p.className = 'flash ok';
        p.setAttribute('data-count-total', String(result.data.total));
        p.textContent = fill(live.getAttribute('data-count-template') || '{total}', result.data);
        live.appendChild(p);
        return;
      }
      var err = result.data && result.data.error ? result.data.error : { message: 'error' };
      var div = document.createElement('div');
      div.className = 'flash error';
      p.textContent = err.details && err.details.query ? err.details.query : err.message;
      div.appendChild(p);
      var pos = err.details && err.details.position;
      if (pos) {
        var line = box.value.split('\n')[pos.line - 1] || '';
        var pre = document.createElement('pre');
        pre.className = 'query-caret';
        var code = document.createElement('code');
        code.textContent = line + '\n' + ' '.repeat(Math.max(0, pos.column - 1)) + '^'.repeat(Math.max(1, Math.min(pos.length, line.length - pos.column + 1)));
        pre.appendChild(code);
        div.appendChild(pre);
      }
      live.appendChild(div);
    };
    box.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++seq;
        request('POST', '/api/v1/segments/count', { query: box.value }).then(function (r) {
          if (mine === seq) show(r);
        }, function () {});
      }, 400);
    });
  }

  var table = document.querySelector('table[data-count-template]');
  if (table) {
    var template = table.getAttribute('data-count-template') || '{total}';
    var cells = Array.prototype.slice.call(table.querySelectorAll('[data-segment-count]'));
    // One at a time: counts over large tables are not free.
    var next = function () {
      var cell = cells.shift();
      if (!cell) return;
      request('GET', '/api/v1/segments/' + encodeURIComponent(cell.getAttribute('data-segment-count')) + '/count').then(function (r) {
        if (r.ok) cell.textContent = fill(template, r.data);
        next();
      }, next);
    };
    next();
  }
})();
