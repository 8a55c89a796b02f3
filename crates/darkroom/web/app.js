// The page's entry: reads the address (#/generate, #/jobs/ID, #/history?..., #/backends)
// and shows that view, stopping the previous one's streams and timers first.

import { resumeSession } from './api.js';
import { renderBackends } from './backends.js';
import { renderGenerate } from './generate.js';
import { renderHistory } from './history.js';
import { renderJob } from './job.js';

const main = document.getElementById('main');
let stopView = () => {};
let generation = 0;

async function route() {
  const hash = location.hash || '#/generate';
  const [path, search = ''] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const section = parts[0] || 'generate';

  stopView();
  stopView = () => {};
  const mine = ++generation;
  for (const link of document.querySelectorAll('nav a')) {
    const current = link.dataset.section === section || (section === 'jobs' && link.dataset.section === 'history');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  let stop;
  if (section === 'jobs' && parts[1]) stop = await renderJob(main, parts[1]);
  else if (section === 'history') stop = await renderHistory(main, new URLSearchParams(search));
  else if (section === 'backends') stop = await renderBackends(main);
  else stop = await renderGenerate(main, parts[1]);
  // A newer navigation happened while this view loaded: stop it at once.
  if (mine !== generation) stop?.();
  else stopView = stop || (() => {});
}

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
// The session cookie first, so the first view's images load with the stored key.
resumeSession().then(route);
