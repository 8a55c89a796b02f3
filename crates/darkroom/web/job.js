// A job's page: live progress and results (from watch.js), then its parameters, timings,
// outputs and error, with "run again" (same parameters) and "edit and run again".

import { api } from './api.js';
import { formatBytes, formatDuration, formatTime, h, replace, shortId } from './dom.js';
import { prefill } from './generate.js';
import { watchJob } from './watch.js';

export async function renderJob(main, id) {
  const watchSlot = h('div', { class: 'panel' });
  const details = h('div', { class: 'panel details' });
  replace(main, h('h1', {}, `Job ${shortId(id)}`), h('div', { class: 'job-page' }, watchSlot, details));
  const showDetails = () => loadDetails(details, id);
  const stop = watchJob(id, watchSlot, { onFinal: showDetails });
  await showDetails();
  return stop;
}

async function loadDetails(details, id) {
  let entry;
  let job;
  try {
    [entry, job] = await Promise.all([api.historyEntry(id), api.job(id)]);
  } catch (error) {
    replace(details, h('p', { class: 'job-error', role: 'alert' }, error.message));
    return;
  }
  const rows = (pairs) => h('dl', {}, pairs.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  const parameters = entry.parameters && Object.keys(entry.parameters).length > 0
    ? h('table', { class: 'parameters' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Parameter'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, Object.entries(entry.parameters).map(([name, value]) =>
        h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, typeof value === 'string' ? value : JSON.stringify(value))))))
    : h('p', {}, entry.template ? 'No parameters.' : 'Submitted as a graph, without a template.');
  const outputs = entry.outputs.length > 0
    ? h('ul', { class: 'outputs' }, entry.outputs.map((output) =>
      h('li', {}, h('a', { href: output.content, download: output.name }, output.name),
        ` — ${output.content_type}, ${formatBytes(output.size_bytes)}`)))
    : h('p', {}, 'No outputs.');
  const status = h('p', { class: 'run-again-status', role: 'status' });

  replace(details,
    h('h2', {}, 'Details'),
    rows([
      ['Template', entry.template ? h('a', { href: `#/generate/${entry.template}` }, entry.template) : '—'],
      ['Status', `${job.status} (${job.state})`],
      ['Backend', job.backend ? `${job.backend}, attempt ${job.attempt}` : '—'],
      ['Created', formatTime(job.created_at)],
      ['Started', formatTime(job.started_at)],
      ['Completed', formatTime(job.completed_at)],
      ['Waited', formatDuration(job.metrics?.queue_ms)],
      ['Ran', formatDuration(job.metrics?.execution_ms)],
    ]),
    h('h3', {}, 'Parameters'), parameters,
    h('h3', {}, 'Outputs'), outputs,
    job.error ? [h('h3', {}, 'Error'), h('pre', { class: 'error-detail' }, JSON.stringify(job.error, null, 2))] : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', onclick: () => runAgain(entry, id, status) }, 'Run again'),
      entry.template
        ? h('button', { type: 'button', onclick: () => {
          prefill(entry.template, entry.parameters || {});
          location.hash = `#/generate/${entry.template}`;
        } }, 'Edit and run again')
        : null),
    status);
}

async function runAgain(entry, id, status) {
  status.textContent = 'Submitting…';
  try {
    const job = entry.template
      ? await api.run(entry.template, entry.parameters || {})
      : await api.submitWorkflow((await api.workflow(id)).workflow);
    location.hash = `#/jobs/${job.id}`;
  } catch (error) {
    status.textContent = `Could not run it again: ${error.message}`;
  }
}
