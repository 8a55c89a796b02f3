// Small DOM helpers shared by every view: building elements, and words for times,
// sizes and errors.

/** An element with attributes (`on*` functions become listeners) and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (name in element && typeof value !== 'string') {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

/** Replaces every child of `element`. */
export function replace(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function formatTime(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

export function formatDuration(milliseconds) {
  if (milliseconds === null || milliseconds === undefined) return '—';
  if (milliseconds < 1000) return `${milliseconds} ms`;
  const seconds = milliseconds / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A job error in words: which node failed, how, and why. */
export function describeJobError(error, titles = {}) {
  if (!error) return '';
  const parts = [];
  if (error.node_id) {
    const title = titles[error.node_id];
    const name = title ? `"${title}"` : error.class_type || 'node';
    const kind = title && error.class_type ? ` (${error.class_type})` : '';
    parts.push(`Node ${error.node_id}, ${name}${kind}, failed: `);
  }
  const kind = error.exception_type && !String(error.message).includes(error.exception_type)
    ? `${error.exception_type}: ` : '';
  parts.push(`${kind}${error.message}`);
  return parts.join('');
}

/** Opens the full-size viewer on an image, with a download link. */
export function openViewer(url, name) {
  const dialog = document.getElementById('viewer');
  document.getElementById('viewer-title').textContent = name;
  const image = document.getElementById('viewer-image');
  image.src = url;
  image.alt = name;
  const download = document.getElementById('viewer-download');
  download.href = url;
  download.setAttribute('download', name);
  dialog.showModal();
}
