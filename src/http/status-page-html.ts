/**
 * @module The status page itself: one HTML document with its CSS and a little script that reads
 * `api/status` every five seconds and draws tables and small SVG bar charts. No build step; the
 * data is put in with textContent only (names come from clients).
 */

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pullcache status</title>
<link rel="icon" href="data:,">
<style>
  :root { --cache: #2e7d32; --upstream: #c77c02; --muted: #666; --line: #ddd; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 80rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem; }
  h2 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
  .muted { color: var(--muted); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25rem .6rem .25rem 0; border-bottom: 1px solid var(--line); vertical-align: middle; }
  th { font-weight: 600; color: var(--muted); font-size: .85rem; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { font-size: .85rem; }
  .legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 .8rem; vertical-align: -2px; }
  .bar { background: #eee; width: 12rem; height: .7rem; display: inline-block; vertical-align: middle; }
  .bar > div { background: var(--cache); height: 100%; }
  svg.chart { display: block; }
  #error { color: #b00020; }
</style>
</head>
<body>
<h1>pullcache</h1>
<div class="muted">started <span id="started">…</span> · updated <span id="generated">…</span> <span id="error"></span></div>

<h2>Cache</h2>
<div id="cache-summary">…</div>

<h2>What the cache saved, per registry</h2>
<div class="legend muted">answers: <span style="background:var(--cache)"></span>from the cache
  <span style="background:var(--upstream)"></span>from the upstream · charts: answers a minute (last hour), bytes an hour (last day)</div>
<table id="traffic">
  <thead><tr><th>registry</th><th class="num">hit ratio: hour</th><th class="num">day</th><th class="num">since start</th>
    <th class="num">from cache: hour</th><th class="num">day</th><th class="num">since start</th>
    <th class="num">from upstream: hour</th><th class="num">day</th><th class="num">since start</th>
    <th>last hour</th><th>last day</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Downloads in flight</h2>
<table id="downloads">
  <thead><tr><th>image</th><th>blob</th><th>progress</th><th class="num">received</th><th class="num">size</th><th>since</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Largest images</h2>
<table id="largest">
  <thead><tr><th>image</th><th>platforms</th><th class="num">size</th><th class="num">pulls</th><th>last pulled</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Most pulled images</h2>
<table id="most-pulled">
  <thead><tr><th>image</th><th>platforms</th><th class="num">size</th><th class="num">pulls</th><th>last pulled</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Upstreams</h2>
<table id="upstreams">
  <thead><tr><th>registry</th><th class="num">errors: last hour</th><th class="num">since start</th><th>by reason</th><th>health and rate limit</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Recent upstream errors</h2>
<table id="errors">
  <thead><tr><th>time</th><th>registry</th><th>reason</th></tr></thead>
  <tbody></tbody>
</table>

<script>
const SVG = 'http://www.w3.org/2000/svg';

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return value.toFixed(unit === 0 ? 0 : 1) + ' ' + units[unit];
}
const ratio = (r) => (r === null ? '–' : (100 * r).toFixed(1) + '%');
const time = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

function cell(text, className) {
  const td = document.createElement('td');
  if (text instanceof Node) td.append(text); else td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

function fill(id, rows, empty) {
  const body = document.querySelector('#' + id + ' tbody');
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement('tr');
    tr.append(...cells);
    body.append(tr);
  }
  if (rows.length === 0) {
    const td = cell(empty, 'muted');
    td.colSpan = document.querySelectorAll('#' + id + ' thead th').length;
    const tr = document.createElement('tr');
    tr.className = 'empty';
    tr.append(td);
    body.append(tr);
  }
}

/** Stacked bars: cache (bottom) and upstream (top) values per slot. */
function chart(slots, cacheOf, upstreamOf, label) {
  const width = 120, height = 28, gap = 1;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const most = Math.max(1, ...slots.map((s) => cacheOf(s) + upstreamOf(s)));
  const w = width / slots.length;
  slots.forEach((slot, i) => {
    let y = height;
    for (const [value, color] of [[cacheOf(slot), 'var(--cache)'], [upstreamOf(slot), 'var(--upstream)']]) {
      if (value <= 0) continue;
      const h = Math.max(1, (value / most) * height);
      y -= h;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', (i * w).toFixed(2));
      rect.setAttribute('y', y.toFixed(2));
      rect.setAttribute('width', Math.max(0.5, w - gap).toFixed(2));
      rect.setAttribute('height', h.toFixed(2));
      rect.setAttribute('fill', color);
      svg.append(rect);
    }
  });
  return svg;
}

function health(h) {
  if (h === null) return 'no request yet';
  const state = h.coolingDown ? 'not answering: failing fast' : 'answering';
  if (!h.rateLimit) return state + ' · no pull limit stated';
  const w = h.rateLimit.windowSeconds;
  const per = w === null ? '' : ' per ' + (w % 3600 === 0 ? w / 3600 + ' h' : w + ' s');
  return state + ' · ' + h.rateLimit.remaining + ' of ' + h.rateLimit.limit + ' pulls left' + per;
}

function imageRows(images) {
  return images.map((i) => [
    cell(i.name),
    cell(i.platforms.join(', ') || '–'),
    cell(bytes(i.bytes), 'num'),
    cell(i.pulls === null ? '–' : i.pulls, 'num'),
    cell(time(i.lastPulled)),
  ]);
}

function render(s) {
  document.getElementById('started').textContent = time(s.startedAt);
  document.getElementById('generated').textContent = time(s.generatedAt);
  const c = s.cache;
  document.getElementById('cache-summary').textContent =
    bytes(c.bytes) + (c.maxSize ? ' of ' + bytes(c.maxSize) + ' (' + ratio(c.bytes / c.maxSize) + ')' : ' (no maxSize)') +
    ' · ' + c.blobs + ' blobs · ' + c.manifests + ' manifests · ' + s.images.count + ' images · ' + c.evictions + ' evictions';

  fill('traffic', Object.entries(s.traffic).map(([registry, t]) => {
    const row = [cell(registry)];
    for (const w of ['hour', 'day', 'sinceStart']) row.push(cell(ratio(t[w].hitRatio), 'num'));
    for (const w of ['hour', 'day', 'sinceStart']) row.push(cell(bytes(t[w].cacheBytes), 'num'));
    for (const w of ['hour', 'day', 'sinceStart']) row.push(cell(bytes(t[w].upstreamBytes), 'num'));
    row.push(cell(chart(t.perMinute, (m) => m.hits, (m) => m.misses, registry + ': answers a minute, last hour')));
    row.push(cell(chart(t.perHour, (h) => h.cacheBytes, (h) => h.upstreamBytes, registry + ': bytes an hour, last day')));
    return row;
  }), 'no registry configured');

  fill('downloads', s.downloads.map((d) => {
    const bar = document.createElement('div');
    bar.className = 'bar';
    const done = document.createElement('div');
    done.style.width = d.size ? Math.min(100, (100 * d.received) / d.size).toFixed(1) + '%' : '0';
    bar.append(done);
    return [cell(d.registry + '/' + d.repository), cell(d.digest.slice(0, 19)), cell(bar),
      cell(bytes(d.received), 'num'), cell(d.size === null ? '?' : bytes(d.size), 'num'), cell(time(d.startedAt))];
  }), 'none');

  fill('largest', imageRows(s.images.largest), 'the cache is empty');
  fill('most-pulled', imageRows(s.images.mostPulled), 'no pulls counted yet');

  fill('upstreams', Object.entries(s.upstreams).map(([registry, u]) => [
    cell(registry),
    cell(u.errors.lastHour, 'num'),
    cell(u.errors.sinceStart, 'num'),
    cell(Object.entries(u.errors.byReason).map(([r, n]) => r + ': ' + n).join(', ') || '–'),
    cell(health(u.health), u.health === null ? 'muted' : ''),
  ]), 'no registry configured');

  fill('errors', s.recentErrors.map((e) => [cell(time(e.at)), cell(e.registry), cell(e.reason)]), 'none');
  document.body.dataset.loaded = 'true';
}

async function refresh() {
  try {
    const response = await fetch('api/status', { cache: 'no-store' });
    if (!response.ok) throw new Error('status API answered ' + response.status);
    render(await response.json());
    document.getElementById('error').textContent = '';
  } catch (error) {
    document.getElementById('error').textContent = '· ' + error.message;
  }
}
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
`;
