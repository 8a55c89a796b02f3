// Backends: each ComfyUI's state, version, queue and current job, refreshed while shown.

import { api } from './api.js';
import { h, replace, shortId } from './dom.js';

const REFRESH_MS = 3000;

export async function renderBackends(main) {
  const summary = h('p', { role: 'status' });
  const list = h('ul', { class: 'backends', 'aria-label': 'Backends' });
  replace(main, h('h1', {}, 'Backends'), summary, list);

  const refresh = async () => {
    try {
      const answer = await api.backends();
      summary.textContent = `${answer.queued} job${answer.queued === 1 ? '' : 's'} waiting in Darkroom's queue.`;
      replace(list, answer.backends.map(backendCard));
    } catch (error) {
      summary.textContent = `Backends could not be read: ${error.message}`;
    }
  };
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

function backendCard(backend) {
  const job = backend.current_job;
  const queue = backend.up ? `${backend.queue_running} running, ${backend.queue_pending} waiting` : '—';
  const current = job
    ? h('span', {}, h('a', { href: `#/jobs/${job.id}` }, shortId(job.id)),
      ` ${job.template || 'graph'}, ${job.state}`,
      job.progress ? `, ${Math.round((job.progress.value || 0) * 100)}%` : '')
    : 'none';
  return h('li', { class: 'backend', 'data-backend': backend.name },
    h('h2', {}, backend.name, ' ', h('span', { class: `badge ${backend.up ? 'up' : 'down'}` }, backend.state || (backend.up ? 'up' : 'down'))),
    h('dl', {},
      h('dt', {}, 'Address'), h('dd', {}, backend.url),
      h('dt', {}, 'ComfyUI version'), h('dd', {}, backend.version || '—'),
      h('dt', {}, 'ComfyUI queue'), h('dd', {}, queue),
      h('dt', {}, 'Darkroom jobs on it'), h('dd', {}, `${backend.prompts ?? 0} of ${backend.max_prompts ?? 1}`),
      h('dt', {}, 'Current job'), h('dd', {}, current),
      backend.loaded_models && backend.loaded_models.length
        ? [h('dt', {}, 'Loaded models'), h('dd', {}, backend.loaded_models.join(', '))] : null,
      backend.managed
        ? [h('dt', {}, 'Process'), h('dd', {}, `pid ${backend.managed.pid ?? '—'}, restarted ${backend.managed.restarts} times`)] : null,
      backend.error ? [h('dt', {}, 'Problem'), h('dd', {}, backend.error)] : null));
}
