// The page's client of Darkroom's public HTTP API. Every failure becomes an ApiError with
// the server's code, message and details, or status 0 when the server was not reached.
//
// API keys: a key the person gives is kept in localStorage and sent as a bearer token on
// every fetch (the event stream too). What the browser loads without a fetch (images,
// downloads) rides on the session cookie that POST /api/session sets for the same key.
// When the API answers 401, the person is asked for a key once, and the request retried.

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  get unreachable() {
    return this.status === 0;
  }
}

const KEY_STORAGE = 'darkroom.apiKey';

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

/** The headers that name the person's key, if they gave one. */
export function authHeaders() {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Sets the session cookie for `key` (images and downloads need it). True when the key
 * is good, false when the server refuses it. */
async function openSession(key) {
  let response;
  try {
    response = await fetch('/api/session', { method: 'POST', cache: 'no-store',
      headers: { accept: 'application/json', authorization: `Bearer ${key}` } });
  } catch {
    throw new ApiError(0, 'unreachable', 'Darkroom cannot be reached; is the server running?');
  }
  return response.ok;
}

/** On page load: renews the cookie of a stored key, and forgets a key that was revoked. */
export async function resumeSession() {
  const key = storedKey();
  if (!key) return;
  try {
    if (!(await openSession(key))) localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Unreachable: the views say so themselves.
  }
}

let asking = null;

/** Asks for a key, once however many requests were refused meanwhile. Resolves true once
 * a key the server accepts is stored, false when the person closes the dialog. */
function askForKey(reason) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = document.getElementById('key-dialog');
    const form = document.getElementById('key-form');
    const input = document.getElementById('key-input');
    const error = document.getElementById('key-error');
    document.getElementById('key-reason').textContent = reason;
    error.hidden = true;
    input.value = '';
    const finish = (ok) => {
      form.removeEventListener('submit', submit);
      dialog.removeEventListener('cancel', cancel);
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    const submit = async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      let accepted = false;
      try {
        accepted = await openSession(key);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
        return;
      }
      if (!accepted) {
        error.textContent = 'Darkroom does not know this key (or it was revoked).';
        error.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      input.removeAttribute('aria-invalid');
      localStorage.setItem(KEY_STORAGE, key);
      finish(true);
    };
    const cancel = () => finish(false);
    form.addEventListener('submit', submit);
    dialog.addEventListener('cancel', cancel);
    dialog.showModal();
    input.focus();
  }).finally(() => {
    asking = null;
  });
  return asking;
}

async function request(method, path, options = {}) {
  try {
    return await send(method, path, options);
  } catch (error) {
    if (error.status !== 401) throw error;
    // A stored key that stopped working is forgotten before asking for another.
    const hadKey = Boolean(storedKey());
    if (hadKey) localStorage.removeItem(KEY_STORAGE);
    const reason = hadKey
      ? 'Darkroom no longer accepts the key this browser kept (it may have been revoked). Give another one.'
      : 'This Darkroom needs an API key. Its operator makes one with “darkroom keys create NAME”.';
    if (!(await askForKey(reason))) throw error;
    return send(method, path, options);
  }
}

async function send(method, path, { json, body, signal } = {}) {
  const options = { method, signal, headers: { accept: 'application/json', ...authHeaders() }, cache: 'no-store' };
  if (json !== undefined) {
    options.headers['content-type'] = 'application/json';
    options.body = JSON.stringify(json);
  } else if (body !== undefined) {
    options.body = body;
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'unreachable', 'Darkroom cannot be reached; is the server running?');
  }
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = payload && payload.error ? payload.error : {};
    throw new ApiError(
      response.status,
      error.code || 'http_error',
      error.message || `the server answered ${response.status}`,
      error.details ?? null,
    );
  }
  return payload;
}

/** The list of templates, whatever envelope the server wraps it in. */
function templateList(payload) {
  const list = Array.isArray(payload) ? payload : payload?.templates ?? payload?.items ?? [];
  return list.map((item) => (typeof item === 'string' ? { name: item } : item));
}

/** The JSON Schema of a template's `params` object. */
export function parameterSchema(template) {
  const candidates = [template?.schema, template?.parameters_schema, template?.params_schema,
    template?.json_schema, template?.parameters];
  const schema = candidates.find((value) => value && typeof value === 'object' && value.properties);
  if (schema) return schema;
  return template?.properties ? template : { type: 'object', properties: {} };
}

export const api = {
  templates: async () => templateList(await request('GET', '/api/templates')),
  template: (name) => request('GET', `/api/templates/${encodeURIComponent(name)}`),
  run: (name, params) =>
    request('POST', `/api/templates/${encodeURIComponent(name)}/jobs`, { json: { params } }),
  submitWorkflow: (workflow) => request('POST', '/api/v2/jobs', { json: { workflow } }),
  job: (id, signal) => request('GET', `/api/v2/jobs/${id}`, { signal }),
  workflow: (id) => request('GET', `/api/v2/jobs/${id}/workflow`),
  cancel: (id) => request('POST', `/api/v2/jobs/${id}/cancel`, { json: {} }),
  history: (query) => request('GET', `/api/history?${new URLSearchParams(query)}`),
  historyEntry: (id) => request('GET', `/api/history/${id}`),
  backends: () => request('GET', '/api/backends'),
  upload(file) {
    const form = new FormData();
    form.append('content_type', file.type || 'application/octet-stream');
    form.append('file_path', file.name || 'upload');
    form.append('file', file, file.name || 'upload');
    return request('POST', '/api/v2/assets', { body: form });
  },
};

export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'canceled', 'expired']);
