// The page's client of Darkroom's public HTTP API. Every failure becomes an ApiError with
// the server's code, message and details, or status 0 when the server was not reached.

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

async function request(method, path, { json, body, signal } = {}) {
  const options = { method, signal, headers: { accept: 'application/json' }, cache: 'no-store' };
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
