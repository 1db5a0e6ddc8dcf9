// Stylist web page: plain JavaScript, no framework, no request leaves the origin.
// The job is followed over GET /v1/jobs/{id}/events read with fetch() and a streaming reader
// (EventSource cannot send the Authorization header); if the stream breaks before the job ends,
// the page falls back to long-polling GET /v1/jobs/{id}?wait=30.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'stylist.apiKey';
let currentJob = null;      // id of the job being followed
let streamAbort = null;     // AbortController of the event stream
let resultURL = null;       // object URL of the shown result
const previewURLs = [];

function setState(s) { document.body.dataset.state = s; }

function headers() {
  const key = localStorage.getItem(KEY);
  return key ? { Authorization: 'Bearer ' + key } : {};
}

function api(path, options = {}) {
  return fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) }, cache: 'no-store' });
}

function showError(title, detail) {
  $('errortitle').textContent = title || 'Error';
  $('errordetail').textContent = detail || '';
  $('error').hidden = false;
}
function clearError() { $('error').hidden = true; $('errortitle').textContent = ''; $('errordetail').textContent = ''; }

// A problem+json answer (RFC 9457) shown as its title and detail.
async function showProblem(resp) {
  let title = resp.status + ' ' + resp.statusText, detail = '';
  try {
    const p = await resp.json();
    if (p.title) title = p.title;
    if (p.detail) detail = p.detail;
  } catch (e) { /* not JSON */ }
  if (resp.status === 401) detail += ' Set the API key at the top of the page.';
  showError(title, detail);
}

function setStatus(text) { $('statustext').textContent = text; }

// --- API key -------------------------------------------------------------------------------
function initKey() {
  $('apikey').value = localStorage.getItem(KEY) || '';
  if (!$('apikey').value) $('keybox').open = false;
  $('savekey').addEventListener('click', () => {
    const v = $('apikey').value.trim();
    if (v) localStorage.setItem(KEY, v); else localStorage.removeItem(KEY);
    clearError();
    loadModels();
    loadStyles();
  });
}

// --- Models and registered styles -------------------------------------------------------------
async function loadModels() {
  const sel = $('model');
  try {
    const r = await api('/v1/models');
    if (!r.ok) { await showProblem(r); return; }
    const body = await r.json();
    sel.replaceChildren();
    for (const m of body.models) {
      const o = document.createElement('option');
      o.value = m.name;
      o.textContent = m.name + (m.name === body.default ? ' (default)' : '');
      if (m.name === body.default) o.selected = true;
      sel.appendChild(o);
    }
  } catch (e) { showError('Cannot reach the server', String(e)); }
}

async function loadStyles() {
  const gallery = $('gallery');
  try {
    const r = await api('/v1/styles');
    if (!r.ok) { await showProblem(r); return; }
    const body = await r.json();
    gallery.replaceChildren();
    if (body.styles.length === 0) { $('gallerynote').textContent = 'No registered styles (POST /v1/styles adds some).'; return; }
    $('gallerynote').textContent = 'Registered styles:';
    for (const s of body.styles) {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox'; box.name = 'style_id'; box.value = s.id;
      box.addEventListener('change', updateMask);
      const img = document.createElement('img');
      img.alt = s.name || s.id;
      const name = document.createElement('span');
      name.textContent = s.name || s.id.slice(0, 8);
      label.append(box, img, name);
      gallery.appendChild(label);
      api('/v1/styles/' + encodeURIComponent(s.id) + '/image?size=192')
        .then((t) => (t.ok ? t.blob() : null))
        .then((b) => { if (b) img.src = URL.createObjectURL(b); })
        .catch(() => {});
    }
  } catch (e) { showError('Cannot reach the server', String(e)); }
}

// --- Inputs: drop zones, previews, mask ---------------------------------------------------------
function chosenStyleCount() {
  return $('style').files.length + document.querySelectorAll('#gallery input:checked').length;
}

function updateMask() {
  const two = chosenStyleCount() === 2;
  $('maskrow').hidden = !two;
  if (!two) $('mask').value = '';
}

function preview(files, target) {
  target.replaceChildren();
  for (const f of files) {
    const img = document.createElement('img');
    const u = URL.createObjectURL(f);
    previewURLs.push(u);
    img.src = u; img.alt = f.name;
    target.appendChild(img);
  }
}

function initDrop(zoneId, input) {
  const zone = $(zoneId);
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (!e.dataTransfer || e.dataTransfer.files.length === 0) return;
    const dt = new DataTransfer();
    const files = input.multiple ? [...e.dataTransfer.files] : [e.dataTransfer.files[0]];
    if (input.multiple) for (const f of input.files) dt.items.add(f);   // drops add to the styles
    for (const f of files) dt.items.add(f);
    input.files = dt.files;
    input.dispatchEvent(new Event('change'));
  });
}

// --- The job ----------------------------------------------------------------------------------
function buildForm() {
  const fd = new FormData();
  const content = $('content').files[0];
  fd.append('content', content, content.name);
  for (const f of $('style').files) fd.append('style', f, f.name);
  for (const box of document.querySelectorAll('#gallery input:checked')) fd.append('style_id', box.value);
  if (!$('maskrow').hidden && $('mask').files[0]) fd.append('mask', $('mask').files[0], $('mask').files[0].name);
  if ($('model').value) fd.append('model', $('model').value);
  fd.append('alpha', $('alpha').value);
  const w = $('weights').value.replace(/\s+/g, '');
  if (w) fd.append('style_weights', w);
  if ($('preserve').checked) fd.append('preserve_color', 'true');
  if ($('maxsize').value) fd.append('max_size', $('maxsize').value);
  fd.append('format', $('format').value);
  return fd;
}

async function submitJob(e) {
  e.preventDefault();
  clearError();
  if (!$('content').files[0]) { showError('No content photo', 'Pick or drop a content photo.'); return; }
  if (chosenStyleCount() === 0) { showError('No style', 'Pick or drop a style image, or choose a registered style.'); return; }
  stopFollowing();
  $('result').hidden = true; $('download').hidden = true;
  $('submit').disabled = true;
  setStatus('Uploading…');
  setState('uploading');
  try {
    const r = await api('/v1/jobs', { method: 'POST', body: buildForm() });
    if (!r.ok) { await showProblem(r); setStatus('The job was not accepted.'); setState('error'); $('submit').disabled = false; return; }
    const job = await r.json();
    currentJob = job.id;
    $('cancel').disabled = false;
    showJob(job);
    follow(job.id);
  } catch (err) {
    showError('Cannot reach the server', String(err));
    setState('error');
    $('submit').disabled = false;
  }
}

function showJob(job) {
  const bar = $('progress');
  bar.hidden = false;
  bar.value = job.progress || 0;
  if (job.status === 'queued') setStatus('Queued' + (job.queue_position ? ', position ' + job.queue_position : '') + '.');
  else if (job.status === 'running') setStatus('Running: ' + Math.round((job.progress || 0) * 100) + ' %.');
  else if (job.status === 'succeeded') setStatus('Done.');
  else if (job.status === 'failed') setStatus('The job failed.');
  else if (job.status === 'canceled') setStatus('Canceled.');
  // A terminal state is set by `finished` (for a success, once the result is shown), so the page
  // never reads "succeeded" while the result is still loading.
  if (!terminal(job.status)) setState(job.status);
}

const terminal = (s) => s === 'succeeded' || s === 'failed' || s === 'canceled';

function stopFollowing() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
  currentJob = null;
  $('cancel').disabled = true;
}

// Reads the text/event-stream with fetch(); falls back to ?wait= polling if it breaks early.
async function follow(id) {
  const ctl = new AbortController();
  streamAbort = ctl;
  let last = null;
  try {
    const r = await api('/v1/jobs/' + id + '/events', { signal: ctl.signal, headers: { Accept: 'text/event-stream' } });
    if (r.ok && r.body) {
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (!data) continue;
          last = JSON.parse(data);
          if (currentJob !== id) return;
          showJob(last);
          if (terminal(last.status)) { reader.cancel().catch(() => {}); return finished(last); }
        }
      }
    } else if (!r.ok) {
      await showProblem(r);
    }
  } catch (err) {
    if (ctl.signal.aborted) return;
  }
  // The stream ended before the job did: long-poll instead.
  while (currentJob === id) {
    try {
      const r = await api('/v1/jobs/' + id + '?wait=30');
      if (!r.ok) { await showProblem(r); setState('error'); stopFollowing(); $('submit').disabled = false; return; }
      last = await r.json();
      if (currentJob !== id) return;
      showJob(last);
      if (terminal(last.status)) return finished(last);
    } catch (err) {
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
}

async function finished(job) {
  $('cancel').disabled = true;
  $('submit').disabled = false;
  streamAbort = null;
  currentJob = null;
  if (job.status === 'failed') {
    const e = job.error || {};
    showError(e.title || 'Job failed', e.detail || '');
    setState('failed');
    return;
  }
  if (job.status !== 'succeeded') { setState(job.status); return; }
  const r = await api(job.result_url);
  if (!r.ok) { await showProblem(r); setState('error'); return; }
  const blob = await r.blob();
  if (resultURL) URL.revokeObjectURL(resultURL);
  resultURL = URL.createObjectURL(blob);
  const img = $('result');
  img.onload = () => { setState('succeeded'); };
  img.src = resultURL;
  img.hidden = false;
  const a = $('download');
  a.href = resultURL;
  a.download = job.id + (blob.type === 'image/jpeg' ? '.jpg' : '.png');
  a.textContent = 'Download ' + a.download;
  a.hidden = false;
  setState('loading-result');
}

async function cancelJob() {
  const id = currentJob;
  if (!id) return;
  $('cancel').disabled = true;
  setStatus('Canceling…');
  try {
    const r = await api('/v1/jobs/' + id, { method: 'DELETE' });
    if (!r.ok) { await showProblem(r); return; }
    if (r.status === 200) { const job = await r.json(); stopFollowing(); showJob(job); setState(job.status); $('submit').disabled = false; }
    // 202: the running job stops at its next layer; the event stream reports "canceled".
  } catch (err) { showError('Cannot reach the server', String(err)); }
}

document.addEventListener('DOMContentLoaded', () => {
  setState('idle');
  initKey();
  initDrop('contentdrop', $('content'));
  initDrop('styledrop', $('style'));
  $('content').addEventListener('change', () => preview($('content').files, $('contentpreview')));
  $('style').addEventListener('change', () => { preview($('style').files, $('stylepreview')); updateMask(); });
  $('alpha').addEventListener('input', () => { $('alphaout').textContent = Number($('alpha').value).toFixed(2); });
  $('jobform').addEventListener('submit', submitJob);
  $('cancel').addEventListener('click', cancelJob);
  loadModels();
  loadStyles();
});
