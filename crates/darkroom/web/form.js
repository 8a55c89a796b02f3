// A form built from a template's parameter schema (JSON Schema with Darkroom's
// `x-darkroom-type`): text areas for prompts, numbers with their ranges, choices, a seed
// with a "random" toggle, images uploaded as assets with a preview.
//
// The form does not validate: the server is the one judge of a value, and its errors
// come back naming the parameter, which the form shows beside that field.

import { api } from './api.js';
import { h, replace } from './dom.js';

/** Darkroom's type of a property, or the nearest one its JSON Schema implies. */
function kindOf(property) {
  if (property['x-darkroom-type']) return property['x-darkroom-type'];
  if (property.enum) return 'choice';
  if (property.anyOf) return 'seed';
  return { string: 'text', integer: 'integer', number: 'number', boolean: 'boolean' }[property.type] || 'text';
}

/** Bounds live beside `type`, or inside the integer branch of a seed's `anyOf`. */
function bounds(property) {
  const numeric = property.anyOf?.find((branch) => branch.type === 'integer') ?? property;
  return { min: numeric.minimum, max: numeric.maximum };
}

function label(name) {
  return name.replaceAll('_', ' ').replace(/^./, (first) => first.toUpperCase());
}

function rangeHint(min, max) {
  if (min !== undefined && max !== undefined) return `from ${min} to ${max}`;
  if (min !== undefined) return `at least ${min}`;
  if (max !== undefined) return `at most ${max}`;
  return '';
}

/** Text as JSON for a number field; text that is not a number goes as it is, for the
 * server to name. */
function numeric(text, integer) {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const pattern = integer ? /^-?\d+$/ : /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i;
  return pattern.test(trimmed) ? Number(trimmed) : trimmed;
}

/** Builds the form. `values` prefill it (a run again). Returns the element and the means
 * to read it and to show errors. */
export function buildForm(schema, values = {}, onSubmit) {
  const required = new Set(schema.required || []);
  const fields = [];
  const form = h('form', { class: 'params', novalidate: true, 'aria-label': 'Parameters' });
  for (const [name, property] of Object.entries(schema.properties || {})) {
    const field = buildField(name, property, required.has(name), values[name]);
    fields.push(field);
    form.append(field.element);
  }
  const problem = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Generate');
  form.append(problem, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    onSubmit();
  });

  return {
    element: form,
    submit,
    /** Resolves once every upload still running has ended. */
    async settled() {
      await Promise.allSettled(fields.map((field) => field.pending?.()).filter(Boolean));
    },
    read() {
      const params = {};
      for (const field of fields) {
        const value = field.read();
        if (value !== undefined) params[field.name] = value;
      }
      return params;
    },
    clearErrors() {
      problem.hidden = true;
      replace(problem);
      for (const field of fields) field.showError(null);
    },
    /** Shows `message` on top and each parameter's message beside its field; focuses the
     * first field at fault. */
    showErrors(message, byParameter) {
      replace(problem, message);
      problem.hidden = false;
      let first = null;
      for (const field of fields) {
        const text = byParameter.get(field.name) ?? null;
        field.showError(text);
        if (text && !first) first = field;
      }
      (first ? first.focusTarget : problem).focus?.();
    },
  };
}

function buildField(name, property, isRequired, given) {
  const kind = kindOf(property);
  const id = `param-${name}`;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const value = given !== undefined ? given : property.default;
  const { min, max } = bounds(property);
  const hintText = [property.description, ['integer', 'number'].includes(kind) ? rangeHint(min, max) : '']
    .filter(Boolean)
    .join(' — ');
  const describedBy = `${hintId} ${errorId}`;
  const error = h('p', { class: 'field-error', id: errorId, hidden: true });
  const hint = h('p', { class: 'hint', id: hintId }, hintText);
  const builders = { text: textInput, integer: numberInput, number: numberInput, boolean: checkbox,
    choice: choiceInput, seed: seedInput, image: imageInput };
  const control = (builders[kind] || textInput)({ id, name, property, value, kind, min, max, describedBy });
  const caption = h('label', { for: id }, label(name), isRequired ? h('span', { class: 'required', title: 'required' }, ' *') : null);
  const element = h('div', { class: `field field-${kind}`, 'data-param': name }, caption, control.element, hint, error);

  return {
    name,
    element,
    focusTarget: control.focusTarget,
    read: control.read,
    pending: control.pending,
    showError(text) {
      error.hidden = !text;
      replace(error, text || '');
      element.classList.toggle('invalid', Boolean(text));
      control.focusTarget.setAttribute('aria-invalid', text ? 'true' : 'false');
    },
  };
}

function textInput({ id, name, property, value, describedBy }) {
  const long = property['x-darkroom-multiline'] || /prompt|text/i.test(name);
  const input = long
    ? h('textarea', { id, name, rows: 3, 'aria-describedby': describedBy })
    : h('input', { id, name, type: 'text', 'aria-describedby': describedBy });
  input.value = value ?? '';
  return { element: input, focusTarget: input, read: () => input.value };
}

function numberInput({ id, name, value, kind, min, max, describedBy }) {
  const integer = kind === 'integer';
  const input = h('input', { id, name, type: 'text', inputmode: integer ? 'numeric' : 'decimal',
    'aria-describedby': describedBy });
  input.value = value ?? '';
  const children = [input];
  // A slider beside the box when the range is small enough to slide through.
  if (min !== undefined && max !== undefined && max - min <= 1000) {
    const slider = h('input', { type: 'range', min, max, step: integer ? 1 : (max - min) / 100,
      tabindex: -1, 'aria-hidden': 'true' });
    slider.value = value ?? min;
    slider.addEventListener('input', () => { input.value = slider.value; });
    input.addEventListener('input', () => { slider.value = input.value; });
    children.push(slider);
  }
  return { element: h('div', { class: 'number' }, children), focusTarget: input,
    read: () => numeric(input.value, integer) };
}

function checkbox({ id, name, value, describedBy }) {
  const input = h('input', { id, name, type: 'checkbox', 'aria-describedby': describedBy });
  input.checked = Boolean(value);
  return { element: input, focusTarget: input, read: () => input.checked };
}

function choiceInput({ id, name, property, value, describedBy }) {
  const choices = property.enum || [];
  const select = h('select', { id, name, 'aria-describedby': describedBy },
    choices.map((choice, index) => h('option', { value: index }, String(choice))));
  const selected = choices.findIndex((choice) => choice === value);
  select.value = String(selected >= 0 ? selected : 0);
  return { element: select, focusTarget: select, read: () => choices[Number(select.value)] };
}

function seedInput({ id, name, value, describedBy }) {
  const input = h('input', { id, name, type: 'text', inputmode: 'numeric', 'aria-describedby': describedBy });
  const random = h('input', { id: `${id}-random`, type: 'checkbox' });
  random.checked = value === 'random' || value === undefined;
  input.value = typeof value === 'number' ? String(value) : '';
  const sync = () => {
    input.disabled = random.checked;
    input.placeholder = random.checked ? 'a new one each run' : '';
  };
  random.addEventListener('change', () => {
    sync();
    if (!random.checked) input.focus();
  });
  sync();
  const toggle = h('label', { class: 'inline', for: `${id}-random` }, random, ' random');
  return {
    element: h('div', { class: 'seed' }, input, toggle),
    focusTarget: input,
    read: () => (random.checked ? 'random' : numeric(input.value, true)),
  };
}

function imageInput({ id, name, value, describedBy }) {
  let assetId = typeof value === 'string' && value ? value : null;
  let uploading = null;
  const input = h('input', { id, name, type: 'file', accept: 'image/*', 'aria-describedby': describedBy });
  const preview = h('img', { class: 'upload-preview', alt: `Preview of ${name}`, hidden: !assetId });
  const status = h('span', { class: 'upload-status', role: 'status' });
  if (assetId) {
    preview.src = `/api/v2/assets/${assetId}/content`;
    status.textContent = 'the image of the earlier run';
  }
  input.addEventListener('change', () => {
    const file = input.files[0];
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    status.textContent = 'uploading…';
    assetId = null;
    uploading = api.upload(file).then(
      (asset) => {
        assetId = asset.id;
        status.textContent = `uploaded (${file.name})`;
      },
      (error) => {
        status.textContent = `upload failed: ${error.message}`;
      },
    ).finally(() => { uploading = null; });
  });
  return {
    element: h('div', { class: 'image' }, input, status, preview),
    focusTarget: input,
    pending: () => uploading,
    read: () => assetId ?? undefined,
  };
}

/** The message for each parameter an error names, from its details or its message. */
export function parameterErrors(error) {
  const found = new Map();
  const visit = (node) => {
    if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (node && typeof node === 'object') {
      const name = node.parameter ?? node.param ?? node.name;
      if (typeof name === 'string' && (node.message || node.reason)) {
        if (!found.has(name)) found.set(name, node.message || node.reason);
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(error.details);
  for (const match of String(error.message).matchAll(/parameter "([^"]+)"/g)) {
    if (!found.has(match[1])) found.set(match[1], error.message);
  }
  return found;
}
