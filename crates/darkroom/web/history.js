// History: past jobs as a grid of server-made thumbnails, filtered by template and status,
// a page at a time. The filters and the page live in the address, so they survive a
// reload and the back button.

import { api } from './api.js';
import { formatTime, h, replace, shortId } from './dom.js';

const PAGE_SIZE = 24;
const STATUSES = ['succeeded', 'failed', 'canceled', 'running', 'queued', 'canceling', 'expired'];

export async function renderHistory(main, query) {
  const template = query.get('template') || '';
  const status = query.get('status') || '';
  const page = Math.max(1, Number(query.get('page')) || 1);

  const templatePicker = h('select', { id: 'filter-template', name: 'template' }, h('option', { value: '' }, 'All templates'));
  const statusPicker = h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((name) => h('option', { value: name }, name)));
  const grid = h('ul', { class: 'grid', 'aria-label': 'Past jobs' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('div', { class: 'field' }, h('label', { for: 'filter-template' }, 'Template'), templatePicker),
    h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), statusPicker));
  replace(main, h('h1', {}, 'History'), filters, grid, pager);

  const go = (changes) => {
    const next = new URLSearchParams({ template, status, page: String(page), ...changes });
    for (const [key, value] of [...next]) if (!value || (key === 'page' && value === '1')) next.delete(key);
    location.hash = `#/history${next.size ? `?${next}` : ''}`;
  };
  templatePicker.addEventListener('change', () => go({ template: templatePicker.value, page: '1' }));
  statusPicker.addEventListener('change', () => go({ status: statusPicker.value, page: '1' }));

  api.templates().then((templates) => {
    templatePicker.append(...templates.map((item) => h('option', { value: item.name }, item.name)));
    templatePicker.value = template;
  }, () => {});
  statusPicker.value = status;

  let answer;
  try {
    answer = await api.history({ template, status, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
  } catch (error) {
    replace(grid, h('li', { class: 'job-error', role: 'alert' }, error.message));
    return () => {};
  }
  if (answer.entries.length === 0) {
    replace(grid, h('li', { class: 'placeholder' }, 'No jobs match.'));
  } else {
    replace(grid, answer.entries.map(card));
  }
  const pages = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
  replace(pager,
    h('button', { type: 'button', disabled: page <= 1, onclick: () => go({ page: String(page - 1) }) }, 'Previous'),
    h('span', {}, `Page ${page} of ${pages} · ${answer.total} jobs`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => go({ page: String(page + 1) }) }, 'Next'));
  return () => {};
}

function card(entry) {
  const name = entry.template || 'graph';
  const picture = entry.thumbnail
    ? h('img', { src: entry.thumbnail, alt: `Output of ${name}, ${entry.status}`, loading: 'lazy', width: 256, height: 256 })
    : h('div', { class: `no-picture status-${entry.status}`, 'aria-hidden': 'true' }, entry.status);
  return h('li', { class: 'card', 'data-job': entry.id },
    h('a', { href: `#/jobs/${entry.id}` },
      picture,
      h('span', { class: 'card-title' }, name),
      h('span', { class: `badge status-${entry.status}` }, entry.status),
      h('span', { class: 'card-time' }, formatTime(entry.created_at), ' · ', shortId(entry.id))));
}
