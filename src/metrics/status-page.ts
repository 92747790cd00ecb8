/**
 * The hub's read-only status page: plain HTML and a script that fetches
 * `/status.json` every {@link REFRESH_MS} ms and redraws the peer table.
 * Served from memory (no build step, no external resources); the script
 * writes peer data with `textContent` only, so names cannot inject markup.
 * @module
 */

/** How often the page refreshes itself. */
export const REFRESH_MS = 2000;

/** The page. */
export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tsguard hub</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --off: #8c959f; --bad: #cf222e; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  #hub { color: var(--off); margin-bottom: 1rem; font-family: ui-monospace, monospace; font-size: 12px; }
  #registry.bad { color: var(--bad); font-weight: 600; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #8884; white-space: nowrap; }
  th { font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.key { font-family: ui-monospace, monospace; font-size: 12px; color: var(--off); }
  .state::before { content: "●"; margin-right: .35rem; }
  .state.online { color: var(--ok); }
  .state.offline { color: var(--off); }
  #error { color: var(--bad); }
  footer { margin-top: .75rem; color: var(--off); font-size: 12px; }
</style>
</head>
<body>
<h1>tsguard hub <span id="ifname"></span></h1>
<div id="hub"><span id="address"></span> · UDP <span id="port"></span> · key <span id="key"></span> · registry: <span id="registry"></span></div>
<table>
  <thead><tr>
    <th>Kind</th><th>Name</th><th>Address</th><th>Status</th><th>Latest handshake</th>
    <th class="num">Received</th><th class="num">Sent</th><th class="num">Relayed</th><th class="num">Refused</th><th>Endpoint</th><th>Public key</th>
  </tr></thead>
  <tbody id="peers"></tbody>
</table>
<footer>Updated <span id="updated">never</span> · refreshes every ${REFRESH_MS / 1000} s · <span id="error"></span></footer>
<script src="/status.js"></script>
</body>
</html>
`;

/** The page's icon (browsers ask for /favicon.ico). */
export const STATUS_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6" fill="#1a7f37"/></svg>`;

/** The page's script. */
export const STATUS_JS = `'use strict';
(function () {
  var REFRESH_MS = ${REFRESH_MS};
  function $(id) { return document.getElementById(id); }
  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(2)) + ' ' + units[i];
  }
  function ago(unixSeconds, nowMs) {
    if (!unixSeconds) return 'never';
    var s = Math.max(0, Math.round(nowMs / 1000 - unixSeconds));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  function cell(tr, cls, text, title) {
    var td = document.createElement('td');
    td.className = cls;
    td.textContent = text;
    if (title !== undefined) td.title = title;
    tr.appendChild(td);
    return td;
  }
  function render(s) {
    $('ifname').textContent = s.interface;
    $('address').textContent = s.address;
    $('port').textContent = String(s.listenPort);
    $('key').textContent = s.publicKey;
    var reg = $('registry');
    reg.textContent = s.registry.ok ? 'ok' : 'unavailable: ' + s.registry.detail;
    reg.className = s.registry.ok ? '' : 'bad';
    var body = document.createElement('tbody');
    body.id = 'peers';
    s.peers.forEach(function (p) {
      var tr = document.createElement('tr');
      tr.dataset.publicKey = p.publicKey;
      tr.dataset.name = p.name;
      tr.dataset.online = String(p.online);
      tr.dataset.rx = String(p.rxBytes);
      tr.dataset.tx = String(p.txBytes);
      tr.dataset.relayed = String(p.relayed);
      tr.dataset.refused = String(p.refused);
      cell(tr, 'kind', p.kind);
      cell(tr, 'name', p.name);
      cell(tr, 'address', p.address);
      cell(tr, 'state ' + (p.online ? 'online' : 'offline'), p.online ? 'online' : 'offline');
      cell(tr, 'handshake', ago(p.latestHandshake, s.time), p.latestHandshake ? new Date(p.latestHandshake * 1000).toISOString() : '');
      cell(tr, 'num rx', bytes(p.rxBytes), p.rxBytes + ' bytes');
      cell(tr, 'num tx', bytes(p.txBytes), p.txBytes + ' bytes');
      cell(tr, 'num relayed', String(p.relayed));
      cell(tr, 'num refused', String(p.refused));
      cell(tr, 'endpoint', p.endpoint || '(none)');
      cell(tr, 'key', p.publicKey.slice(0, 10) + '…', p.publicKey);
      body.appendChild(tr);
    });
    $('peers').replaceWith(body);
    $('updated').textContent = new Date(s.time).toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }
  function refresh() {
    fetch('/status.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('status.json: HTTP ' + r.status); return r.json(); })
      .then(function (s) { render(s); $('error').textContent = ''; })
      .catch(function (e) { $('error').textContent = String(e.message || e); })
      .then(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();
`;
