// The desk's one script: live updates without a reload. It listens to the server-sent events of
// /events; when something changed (an answer from a phone, a sync), it fetches the current page
// again and swaps every element marked data-live-region with its fresh copy. A region that holds
// the keyboard focus is left alone, so nobody loses what they are typing. Forms work without it.
(function () {
  'use strict';
  if (!window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var timer = null;
  function refresh() {
    timer = null;
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'X-Desk-Live': '1' } })
      .then(function (r) {
        if (r.redirected && r.url.indexOf('/unlock') !== -1) { window.location.href = '/unlock'; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        var regions = document.querySelectorAll('[data-live-region]');
        Array.prototype.forEach.call(regions, function (el) {
          var name = el.getAttribute('data-live-region');
          var next = fresh.querySelector('[data-live-region="' + name + '"]');
          if (next && !el.contains(document.activeElement)) {
            el.replaceWith(document.importNode(next, true));
          }
        });
      })
      .catch(function () { /* offline for a moment: the next event tries again */ });
  }
  function schedule() { if (timer === null) { timer = window.setTimeout(refresh, 150); } }
  var source = new EventSource('/events');
  // Whatever happened between rendering this page and connecting (a sync that finished, say) was
  // sent to nobody: refresh once on every (re)connect.
  source.addEventListener('open', schedule);
  source.addEventListener('change', schedule);
  source.addEventListener('sync', schedule);
  source.addEventListener('lock', function () { window.location.href = '/unlock'; });
})();
