// Generate: pick a template, fill the form its schema describes, submit, and watch the
// job beside the form.

import { api, parameterSchema } from './api.js';
import { buildForm, parameterErrors } from './form.js';
import { h, replace } from './dom.js';
import { watchJob } from './watch.js';

/** Values handed over by "edit and run again" on a job page, used once. */
const PREFILL_KEY = 'darkroom.prefill';

export function prefill(template, params) {
  sessionStorage.setItem(PREFILL_KEY, JSON.stringify({ template, params }));
}

function takePrefill(template) {
  const stored = JSON.parse(sessionStorage.getItem(PREFILL_KEY) || 'null');
  sessionStorage.removeItem(PREFILL_KEY);
  return stored && stored.template === template ? stored.params || {} : {};
}

export async function renderGenerate(main, chosen) {
  let stopWatching = () => {};
  const picker = h('select', { id: 'template', name: 'template' });
  const description = h('p', { class: 'description' });
  // Why no backend can run the chosen template, when none can.
  const unrunnable = h('p', { class: 'job-error unrunnable', role: 'status', hidden: true });
  const formSlot = h('div', { class: 'form-slot' });
  const watchSlot = h('div', { class: 'watch-slot' },
    h('p', { class: 'placeholder' }, 'Your picture develops here.'));
  replace(main,
    h('h1', {}, 'Generate'),
    h('div', { class: 'generate' },
      h('div', { class: 'panel' },
        h('div', { class: 'field' }, h('label', { for: 'template' }, 'Template'), picker),
        description, unrunnable, formSlot),
      h('div', { class: 'panel' }, watchSlot)));

  let templates;
  try {
    templates = await api.templates();
  } catch (error) {
    replace(formSlot, h('p', { class: 'job-error', role: 'alert' }, `Templates could not be loaded: ${error.message}`));
    return () => {};
  }
  if (templates.length === 0) {
    replace(formSlot, h('p', {}, 'This Darkroom has no templates yet.'));
    return () => {};
  }
  // A template no backend can run (a node class or fixed model none has) stays choosable,
  // so that its form and the reason can be read, but is not offered first.
  const loads = templates.filter((template) => !template.error);
  const usable = loads.filter((template) => template.runnable !== false);
  const initial = templates.find((template) => template.name === chosen)
    ?? usable.find((template) => template.name.startsWith('txt2img')) ?? usable[0] ?? loads[0] ?? templates[0];
  const label = (template) => {
    const name = template.title ? `${template.title} (${template.name})` : template.name;
    return template.runnable === false ? `${name}: no backend can run it` : name;
  };
  replace(picker, templates.map((template) =>
    h('option', { value: template.name, disabled: Boolean(template.error) }, label(template))));
  picker.value = initial.name;

  // A template can be chosen while another still loads (the initial one, on a slow
  // server): answers come back in any order, and only the last choice may fill the form.
  let latestChoice = 0;
  const show = async (name) => {
    const choice = ++latestChoice;
    if (location.hash !== `#/generate/${name}`) history.replaceState(null, '', `#/generate/${name}`);
    replace(formSlot, h('p', { class: 'placeholder' }, 'Loading…'));
    let template;
    try {
      template = await api.template(name);
    } catch (error) {
      if (choice === latestChoice) replace(formSlot, h('p', { class: 'job-error', role: 'alert' }, error.message));
      return;
    }
    if (choice !== latestChoice) return;

    description.textContent = template.description || '';
    const why = template.unrunnable || '';
    unrunnable.textContent = why && `${why[0].toUpperCase()}${why.slice(1)}.`;
    unrunnable.hidden = !template.unrunnable;
    const form = buildForm(parameterSchema(template), takePrefill(name), () => submit(name, form));
    form.element.dataset.template = name;
    replace(formSlot, form.element);
  };

  const submit = async (name, form) => {
    form.clearErrors();
    form.submit.disabled = true;
    try {
      await form.settled();
      const job = await api.run(name, form.read());
      stopWatching();
      stopWatching = watchJob(job.id, watchSlot);
      // On a narrow screen the watch sits under the form: bring it into view.
      if (window.matchMedia('(max-width: 800px)').matches) watchSlot.scrollIntoView({ block: 'start' });
    } catch (error) {
      form.showErrors(error.message, parameterErrors(error));
    } finally {
      form.submit.disabled = false;
    }
  };

  picker.addEventListener('change', () => show(picker.value));
  await show(initial.name);
  return () => stopWatching();
}
