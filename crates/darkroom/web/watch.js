// Watching one job: its queue position, the node running now, a step bar and an overall
// bar, the latest preview, cancel, and the final images once (and only once) the job has
// succeeded.
//
// The event stream is read with fetch, so the page decides how to reconnect: after a
// network drop or a server restart it first reads the job (GET /api/v2/jobs/{id}) to
// catch up, then resumes the stream after the last event it saw (Last-Event-ID).

import { api, authHeaders, FINAL_STATUSES } from './api.js';
import { describeJobError, h, openViewer, replace, shortId } from './dom.js';

const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 5000];

/** Renders a live view of job `id` into `container`; returns a function that stops it. */
export function watchJob(id, container, { onFinal } = {}) {
  const view = buildView(id);
  replace(container, view.element);
  const state = { lastSeq: 0, final: false, stopped: false, attempt: 0, titles: {}, controller: null, timer: null };

  api.workflow(id).then((answer) => {
    state.titles = nodeTitles(answer);
  }, () => {});

  view.cancel.addEventListener('click', async () => {
    view.cancel.disabled = true;
    view.cancel.textContent = 'Canceling…';
    try {
      apply(view, state, await api.cancel(id));
    } catch (error) {
      view.cancel.disabled = false;
      view.cancel.textContent = 'Cancel';
      showConnection(view, `Cancel failed: ${error.message}`);
    }
  });

  const finish = (job) => {
    if (state.final) return;
    state.final = true;
    state.controller?.abort();
    showFinal(view, state, job);
    onFinal?.(job);
  };

  const connect = async () => {
    state.timer = null;
    if (state.stopped || state.final) return;
    state.controller = new AbortController();
    try {
      const job = await api.job(id, state.controller.signal);
      apply(view, state, job);
      if (FINAL_STATUSES.has(job.status)) return finish(job);
      showConnection(view, '');
      const ended = await follow(id, state, (name, data) => onEvent(view, state, name, data));
      state.attempt = 0;
      if (ended) return finish(await api.job(id, state.controller.signal));
    } catch (error) {
      if (state.stopped || state.final || error.name === 'AbortError') return;
      if (error.status === 404) return showConnection(view, `Job ${id} does not exist.`);
    }
    if (state.stopped || state.final) return;
    const delay = RETRY_DELAYS_MS[Math.min(state.attempt, RETRY_DELAYS_MS.length - 1)];
    state.attempt += 1;
    showConnection(view, `Connection to Darkroom lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.timer = setTimeout(connect, delay);
  };
  const reconnectNow = () => {
    if (state.timer) {
      clearTimeout(state.timer);
      connect();
    }
  };
  window.addEventListener('online', reconnectNow);
  connect();

  return () => {
    state.stopped = true;
    clearTimeout(state.timer);
    state.controller?.abort();
    window.removeEventListener('online', reconnectNow);
  };
}

/** Reads the event stream until it ends. True when it ended after the job's terminal
 * status; false when it was cut short. */
async function follow(id, state, handle) {
  const headers = { accept: 'text/event-stream', ...authHeaders() };
  if (state.lastSeq > 0) headers['last-event-id'] = String(state.lastSeq);
  const response = await fetch(`/api/v2/jobs/${id}/events`, { headers, signal: state.controller.signal, cache: 'no-store' });
  if (!response.ok || !response.body) throw new Error(`event stream answered ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let terminal = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return terminal;
    buffer += value.replaceAll('\r\n', '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!frame) continue;
      if (frame.id) state.lastSeq = Math.max(state.lastSeq, Number(frame.id));
      if (frame.name === 'status' && FINAL_STATUSES.has(frame.data.status)) terminal = true;
      handle(frame.name, frame.data);
    }
  }
}

function parseFrame(text) {
  let name = 'message';
  let id = null;
  const data = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  if (data.length === 0) return null;
  try {
    return { name, id, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}

/** Node id → title, from the graph the job runs (API format keeps titles in `_meta`). */
function nodeTitles(answer) {
  const titles = {};
  if (answer?.format !== 'api') return titles;
  for (const [nodeId, node] of Object.entries(answer.workflow || {})) {
    if (node?._meta?.title) titles[nodeId] = node._meta.title;
  }
  return titles;
}

function buildView(id) {
  const progress = (name) => h('progress', { max: 1, value: 0, 'aria-label': name });
  const view = {
    status: h('p', { class: 'status', role: 'status', 'aria-live': 'polite' }, 'Connecting…'),
    node: h('p', { class: 'node' }),
    step: progress('Step progress'),
    stepText: h('span', { class: 'count' }),
    overall: progress('Overall progress'),
    overallText: h('span', { class: 'count' }),
    preview: h('img', { class: 'preview', alt: 'Latest preview of the picture being made', hidden: true }),
    cancel: h('button', { type: 'button', class: 'cancel' }, 'Cancel'),
    error: h('div', { class: 'job-error', role: 'alert', hidden: true }),
    results: h('div', { class: 'results', 'aria-label': 'Outputs' }),
    connection: h('p', { class: 'connection', role: 'status' }),
  };
  view.element = h('section', { class: 'watch', 'data-job': id, 'data-status': 'unknown', 'aria-label': 'Job progress' },
    h('h2', {}, 'Job ', h('a', { href: `#/jobs/${id}` }, shortId(id))),
    view.status, view.node,
    h('div', { class: 'bars' },
      h('div', { class: 'bar-row' }, h('span', {}, 'Step'), view.step, view.stepText),
      h('div', { class: 'bar-row' }, h('span', {}, 'Overall'), view.overall, view.overallText)),
    view.preview, view.cancel, view.error, view.results, view.connection);
  return view;
}

function showConnection(view, text) {
  view.connection.textContent = text;
}

const STATE_WORDS = {
  queued: 'Waiting in Darkroom’s queue',
  dispatched: 'Sent to ComfyUI; waiting for it to start',
  running: 'Running',
  collecting: 'Finished; saving the outputs',
  canceling: 'Canceling…',
  succeeded: 'Done',
  failed: 'Failed',
  canceled: 'Canceled',
  expired: 'Expired: its outputs were removed',
};

/** Shows a job (from GET or cancel) or a status event's payload. */
function apply(view, state, job) {
  const words = STATE_WORDS[job.state] || STATE_WORDS[job.status] || job.status;
  let text = words;
  if ((job.state ?? job.status) === 'queued' && typeof job.queue_position === 'number') {
    text += job.queue_position === 0 ? ' — next in line' : ` — ${job.queue_position} ahead`;
  }
  view.status.textContent = text;
  view.element.dataset.status = job.status;
  view.element.dataset.state = job.state || job.status;
  if (job.progress) showProgress(view, state, job.progress);
  view.cancel.hidden = FINAL_STATUSES.has(job.status);
  if (job.status === 'canceling') view.cancel.disabled = true;
}

function onEvent(view, state, name, data) {
  if (name === 'status') apply(view, state, data);
  else if (name === 'progress') showProgress(view, state, data);
  else if (name === 'preview' && data.data_base64) {
    view.preview.src = `data:${data.content_type || 'image/jpeg'};base64,${data.data_base64}`;
    view.preview.hidden = false;
  }
}

function showProgress(view, state, progress) {
  const step = progress.step ?? 0;
  const steps = progress.steps ?? 0;
  view.step.value = steps > 0 ? Math.min(step / steps, 1) : 0;
  view.stepText.textContent = steps > 0 ? `${step} / ${steps}` : '';
  view.overall.value = Math.min(progress.value ?? 0, 1);
  view.overallText.textContent = `${Math.round((progress.value ?? 0) * 100)}%`;
  if (progress.current_node) {
    const title = state.titles[progress.current_node];
    const kind = progress.current_node_class;
    const name = title ? `“${title}”${kind && kind !== title ? ` (${kind})` : ''}` : kind || 'node';
    view.node.textContent = `Node ${progress.current_node}: ${name}`;
  }
}

function showFinal(view, state, job) {
  apply(view, state, job);
  view.cancel.hidden = true;
  showConnection(view, '');
  if (job.status === 'succeeded') {
    view.overall.value = 1;
    view.overallText.textContent = '100%';
    view.step.value = 1;
    view.node.textContent = '';
    view.preview.hidden = true;
    replace(view.results, job.outputs.map(outputFigure));
  } else if (job.status === 'failed' && job.error) {
    view.error.hidden = false;
    replace(view.error, h('strong', {}, 'The job failed. '), describeJobError(job.error, state.titles));
  }
}

function outputFigure(output) {
  const url = output.url;
  if (output.type !== 'image' && !String(output.content_type).startsWith('image/')) {
    return h('p', { class: 'file-output' }, h('a', { href: url, download: output.name }, `Download ${output.name}`));
  }
  const image = h('img', { src: url, alt: `Output ${output.name}`, class: 'output', 'data-asset': output.id });
  return h('figure', { class: 'output' },
    h('button', { type: 'button', class: 'image-button', title: 'Show at full size',
      onclick: () => openViewer(url, output.name) }, image),
    h('figcaption', {}, output.name, ' · ', h('a', { href: url, download: output.name }, 'Download')));
}
