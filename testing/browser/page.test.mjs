// Darkroom's page in Debian's headless Chromium, against a `darkroom serve` with a real
// ComfyUI behind it (crates/darkroom/tests/browser.rs sets the stage and runs this file
// with node's test runner). A network drop is Chromium's offline emulation; a server
// restart is asked of the Rust side through DARKROOM_CONTROL.
//
// Environment: DARKROOM_URL (the server), DARKROOM_API_KEY (a key of the server's: the
// page is given it when it asks), DARKROOM_ARTIFACTS (where screenshots go),
// DARKROOM_CONTROL (optional: POST /restart there restarts darkroom on the same port),
// CHROMIUM (default /usr/bin/chromium).
//
// Every wait is on page state (Playwright's auto-waiting locators, waitForFunction) or an
// HTTP answer, each bounded; nothing sleeps.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { decodePng, solidPng } from './png.mjs';

const BASE = process.env.DARKROOM_URL?.replace(/\/$/, '');
const ARTIFACTS = process.env.DARKROOM_ARTIFACTS || join(process.cwd(), 'artifacts');
const CONTROL = process.env.DARKROOM_CONTROL;
const KEY = process.env.DARKROOM_API_KEY;
const WAIT_MS = 60_000;
assert.ok(BASE, 'DARKROOM_URL must name the darkroom server');

let context;
let page;
let profile;
let shot = 0;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'darkroom-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function screenshot(name) {
  shot += 1;
  const path = join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), ...(KEY ? { authorization: `Bearer ${KEY}` } : {}) };
  const response = await fetch(`${BASE}${path}`, { ...options, headers });
  assert.ok(response.ok, `${path} answered ${response.status}`);
  return response;
}

/** Opens the Generate view on `template` through the template picker, and waits for that
 * template's form (the initial template's may still be loading). */
async function openTemplate(template) {
  await page.goto(`${BASE}/#/generate`);
  await page.getByLabel('Template').selectOption(template);
  await page.locator(`form.params[data-template="${template}"]`).waitFor();
  await page.waitForFunction((name) => location.hash === `#/generate/${name}`, template);
}

async function fill(values) {
  for (const [name, value] of Object.entries(values)) {
    await page.locator(`#param-${name}`).fill(String(value));
  }
}

/** The job the watch panel follows. */
async function watchedJob() {
  const watch = page.locator('.watch');
  const refused = page.locator('.form-error:not([hidden])');
  await watch.or(refused).first().waitFor();
  if (await refused.count() > 0) assert.fail(`the job was refused: ${await refused.textContent()}`);
  return watch.getAttribute('data-job');
}

async function waitForStatus(status) {
  await page.locator(`.watch[data-status="${status}"]`).waitFor();
}

test('the page asks for an API key, refuses a wrong one and works with the right one', { skip: !KEY && 'DARKROOM_API_KEY not set' }, async () => {
  const refused = await fetch(`${BASE}/api/templates`);
  assert.equal(refused.status, 401, 'the server must want a key for this test');
  await page.goto(`${BASE}/#/generate`);
  const dialog = page.locator('dialog#key-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await page.locator('#key-reason').textContent(), /needs an API key/);
  await screenshot('key-asked');

  await page.locator('#key-input').fill('drk_this-is-not-a-key');
  await page.getByRole('button', { name: 'Use this key' }).click();
  await page.locator('#key-error:not([hidden])').waitFor();
  assert.match(await page.locator('#key-error').textContent(), /does not know this key/);
  assert.equal(await page.locator('#key-input').getAttribute('aria-invalid'), 'true');
  await screenshot('key-refused');

  await page.locator('#key-input').fill(KEY);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.locator('form.params').first().waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('darkroom.apiKey')), KEY);
  // Images ride on the session cookie, which never holds the key itself.
  const cookies = await context.cookies(BASE);
  const session = cookies.find((cookie) => cookie.name === 'darkroom_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  assert.ok(!session.value.includes(KEY));
  await screenshot('key-accepted');
});

test('a prompt becomes a picture, shown only once the job succeeded, pixel for pixel', async () => {
  await openTemplate('txt2img-sd15');
  await page.getByLabel('Prompt', { exact: true }).fill('a lighthouse on a cliff at dusk');
  await fill({ steps: 12, width: 128, height: 128 });
  await screenshot('form-filled');

  // Record the job's status each time an output image enters the page.
  await page.evaluate(() => {
    window.outputSeenWhile = [];
    new MutationObserver(() => {
      const watch = document.querySelector('.watch');
      if (watch && watch.querySelector('img.output') && window.outputSeenWhile.length === 0) {
        window.outputSeenWhile.push(watch.dataset.status);
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  await page.getByRole('button', { name: 'Generate' }).click();
  const jobId = await watchedJob();

  await page.locator('.watch .count', { hasText: / \/ 12$/ }).waitFor();
  await screenshot('progress');
  const image = page.locator('.results img.output');
  await image.waitFor();
  await page.waitForFunction(() => {
    const element = document.querySelector('.results img.output');
    return element && element.complete && element.naturalWidth > 0;
  });
  await screenshot('picture');
  assert.deepEqual(await page.evaluate(() => window.outputSeenWhile), ['succeeded']);
  assert.equal(await page.locator('.watch').getAttribute('data-status'), 'succeeded');

  const job = await (await api(`/api/v2/jobs/${jobId}`)).json();
  assert.equal(job.status, 'succeeded');
  const assetId = await image.getAttribute('data-asset');
  assert.equal(assetId, job.outputs[0].id);
  const stored = Buffer.from(await (await api(`/api/v2/assets/${assetId}/content`)).arrayBuffer());

  // The bytes the element loaded are the stored output's.
  const shownHash = await page.evaluate(async () => {
    const element = document.querySelector('.results img.output');
    const bytes = await (await fetch(element.currentSrc)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  });
  assert.equal(shownHash, createHash('sha256').update(stored).digest('hex'));

  // And the pixels drawn are the stored PNG's, decoded outside the browser.
  const drawn = await page.evaluate(() => {
    const element = document.querySelector('.results img.output');
    const canvas = document.createElement('canvas');
    canvas.width = element.naturalWidth;
    canvas.height = element.naturalHeight;
    const context2d = canvas.getContext('2d');
    context2d.drawImage(element, 0, 0);
    const { data } = context2d.getImageData(0, 0, canvas.width, canvas.height);
    return { width: canvas.width, height: canvas.height, rgba: Array.from(data) };
  });
  const decoded = decodePng(stored);
  assert.equal(drawn.width, decoded.width);
  assert.equal(drawn.height, decoded.height);
  assert.equal(drawn.width, 128);
  assert.ok(Buffer.from(drawn.rgba).equals(decoded.rgba), 'the page shows other pixels than the stored output');

  // Full size on click, with a download link; Escape closes.
  await page.locator('.results .image-button').first().click();
  const viewer = page.locator('dialog#viewer');
  await viewer.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#viewer-image').evaluate((element) => element.naturalWidth), 128);
  assert.match(await page.locator('#viewer-download').getAttribute('href'), new RegExp(`/api/v2/assets/${assetId}/content$`));
  await screenshot('full-size');
  await page.keyboard.press('Escape');
  await viewer.waitFor({ state: 'hidden' });
});

test('an uploaded image is previewed, then used by the job', async () => {
  await openTemplate('invert-image');
  await page.locator('#param-image').setInputFiles({ name: 'green.png', mimeType: 'image/png',
    buffer: solidPng(8, 8, [10, 200, 30]) });
  await page.locator('.field[data-param="image"] .upload-status', { hasText: 'uploaded' }).waitFor();
  await page.waitForFunction(() => {
    const preview = document.querySelector('.field[data-param="image"] img.upload-preview');
    return preview && !preview.hidden && preview.complete && preview.naturalWidth === 8;
  });
  await screenshot('image-uploaded');
  await page.getByRole('button', { name: 'Generate' }).click();
  const jobId = await watchedJob();
  await page.locator('.results img.output').waitFor();
  const job = await (await api(`/api/v2/jobs/${jobId}`)).json();
  const stored = Buffer.from(await (await api(`/api/v2/assets/${job.outputs[0].id}/content`)).arrayBuffer());
  const inverted = decodePng(stored);
  // ComfyUI computes in floats and truncates to bytes: one step of rounding is allowed.
  [245, 55, 225].forEach((want, channel) => assert.ok(Math.abs(inverted.rgba[channel] - want) <= 1, `${inverted.rgba.subarray(0, 4)}`));
  await screenshot('image-inverted');
});

test('a job waits with its queue position, runs showing its node, then is canceled', async () => {
  // A job ahead of it holds the only backend.
  const blocker = await (await api('/api/templates/slow-steps/jobs', { method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { steps: 600, step_ms: 500 } }) })).json();
  await openTemplate('slow-steps');
  await fill({ steps: 600, step_ms: 500 });
  await page.getByRole('button', { name: 'Generate' }).click();
  const jobId = await watchedJob();
  await page.locator('.watch .status', { hasText: /queue — next in line/ }).waitFor();
  await screenshot('queued');
  await api(`/api/v2/jobs/${blocker.id}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  await waitForStatus('running');
  await page.locator('.watch .node', { hasText: 'Slow steps' }).waitFor();
  await page.locator('.watch .count', { hasText: /^[1-9]\d* \/ 600$/ }).waitFor();
  await page.locator('.watch img.preview:not([hidden])').waitFor();
  await screenshot('long-job-running');

  await page.getByRole('button', { name: 'Cancel' }).click();
  await waitForStatus('canceled');
  assert.equal(await page.locator('.results img').count(), 0);
  await screenshot('long-job-canceled');
  const job = await (await api(`/api/v2/jobs/${jobId}`)).json();
  assert.equal(job.status, 'canceled');
});

test('a refused value is shown beside its parameter, by name', async () => {
  await openTemplate('txt2img-sd15');
  await fill({ steps: 1000 });
  await page.getByRole('button', { name: 'Generate' }).click();
  const fieldError = page.locator('.field[data-param="steps"] .field-error');
  await fieldError.waitFor();
  assert.match(await fieldError.textContent(), /parameter "steps" must be an integer between 1 and 150/);
  assert.equal(await page.locator('#param-steps').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('.form-error').textContent(), /steps/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'param-steps');
  assert.equal(await page.locator('.watch').count(), 0);
  await screenshot('parameter-error');
});

test('a template no backend can run says what each backend lacks', async () => {
  await page.goto(`${BASE}/#/generate`);
  const option = page.locator('#template option[value="needs-a-missing-node"]');
  assert.match(await option.textContent(), /no backend can run it/);
  assert.notEqual(await page.getByLabel('Template').inputValue(), 'needs-a-missing-node');
  await openTemplate('needs-a-missing-node');
  const why = page.locator('.unrunnable:not([hidden])');
  await why.waitFor();
  assert.match(await why.textContent(), /lacks node class "DarkroomNodeNobodyHas"/);
  await openTemplate('txt2img-sd15');
  assert.equal(await page.locator('.unrunnable:not([hidden])').count(), 0);
});

test('a failed job names the node that failed', async () => {
  await openTemplate('always-fails');
  await page.getByRole('button', { name: 'Generate' }).click();
  await waitForStatus('failed');
  const error = page.locator('.watch .job-error');
  await error.waitFor();
  const text = await error.textContent();
  assert.match(text, /Node 2, "Break here" \(DarkroomFail\), failed/);
  assert.match(text, /darkroom test failure/);
  await screenshot('job-failed');
});

test('history shows server-made thumbnails, filters, and a job page that runs again', async () => {
  await page.goto(`${BASE}/#/history`);
  await page.getByLabel('Template').selectOption('txt2img-sd15');
  await page.waitForFunction(() => location.hash.includes('template=txt2img-sd15'));
  const thumbnail = page.locator('.grid .card img').first();
  await thumbnail.waitFor();
  const source = await thumbnail.getAttribute('src');
  assert.match(source, /\/api\/v2\/assets\/[0-9a-f-]+\/thumbnail\?size=256$/);
  await page.waitForFunction(() => {
    const element = document.querySelector('.grid .card img');
    return element && element.complete && element.naturalWidth > 0;
  });
  const answer = await api(source);
  assert.equal(answer.headers.get('content-type'), 'image/jpeg');
  assert.equal(await page.locator('.grid .card').count() >= 1, true);
  await screenshot('history');

  await page.getByLabel('Template').selectOption('');
  await page.waitForFunction(() => !location.hash.includes('template='));
  await page.getByLabel('Status').selectOption('canceled');
  await page.locator('.grid .card', { hasText: 'slow-steps' }).first().waitFor();
  assert.equal(await page.locator('.grid .card', { hasText: 'txt2img-sd15' }).count(), 0);

  await page.getByLabel('Template').selectOption('txt2img-sd15');
  await page.getByLabel('Status').selectOption('succeeded');
  await page.locator('.grid .card a').first().click();
  await page.locator('table.parameters').waitFor();
  const prompt = page.locator('table.parameters tr', { hasText: 'prompt' }).first();
  assert.match(await prompt.textContent(), /a lighthouse on a cliff at dusk/);
  await page.locator('.details dd', { hasText: /\d/ }).first().waitFor();
  await screenshot('job-page');

  const before = page.url();
  await page.getByRole('button', { name: 'Run again', exact: true }).click();
  await page.waitForFunction((previous) => location.href !== previous, before);
  await waitForStatus('succeeded');
  await page.locator('.results img.output').waitFor();
  await page.locator('table.parameters tr', { hasText: 'a lighthouse on a cliff at dusk' }).waitFor();
  await screenshot('ran-again');
});

test('backends show their state, version and queue', async () => {
  await page.goto(`${BASE}/#/backends`);
  const backend = page.locator('.backend').first();
  await backend.waitFor();
  await page.locator('.backend .badge.up').first().waitFor();
  assert.match(await backend.textContent(), /0\.3\.75/);
  assert.match(await backend.textContent(), /\d+ running, \d+ waiting/);
  await screenshot('backends');
});

test('the page fits a phone and works from the keyboard', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await openTemplate('txt2img-sd15');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await screenshot('phone');

  // A fresh load, so the first Tab starts at the top of the page.
  await page.goto(`${BASE}/?from=keyboard#/generate/txt2img-sd15`);
  await page.locator('form.params[data-template="txt2img-sd15"]').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'skip');
  // Keyboard only: Tab through the form, typing small values on the way, to Generate.
  const typed = { 'param-steps': '4', 'param-width': '64', 'param-height': '64' };
  let reached = false;
  for (let press = 0; press < 60 && !reached; press += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => ({ id: document.activeElement?.id, tag: document.activeElement?.tagName,
      text: document.activeElement?.textContent }));
    if (typed[focused.id]) {
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type(typed[focused.id]);
    }
    reached = focused.tag === 'BUTTON' && focused.text === 'Generate';
  }
  assert.ok(reached, 'the Generate button is not reachable with Tab');
  await page.keyboard.press('Enter');
  await watchedJob();
  await waitForStatus('succeeded');
  await screenshot('phone-keyboard-result');
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('the watch reconnects after a network drop and catches up', async () => {
  await openTemplate('slow-steps');
  await fill({ steps: 30, step_ms: 200 });
  await page.getByRole('button', { name: 'Generate' }).click();
  await watchedJob();
  await page.locator('.watch .count', { hasText: /^[1-9]\d* \/ 30$/ }).waitFor();
  await context.setOffline(true);
  await page.locator('.watch .connection', { hasText: 'reconnecting' }).waitFor();
  await screenshot('network-dropped');
  await context.setOffline(false);
  await waitForStatus('succeeded');
  await page.locator('.results img.output').waitFor();
  assert.equal(await page.locator('.watch .connection').textContent(), '');
});

test('the watch reconnects after a server restart and catches up', { skip: !CONTROL && 'DARKROOM_CONTROL not set' }, async () => {
  await openTemplate('slow-steps');
  await fill({ steps: 40, step_ms: 150 });
  await page.getByRole('button', { name: 'Generate' }).click();
  await watchedJob();
  await page.locator('.watch .count', { hasText: /^[1-9]\d* \/ 40$/ }).waitFor();

  await page.evaluate(() => {
    window.connectionTexts = [];
    const line = document.querySelector('.watch .connection');
    new MutationObserver(() => window.connectionTexts.push(line.textContent))
      .observe(line, { childList: true, characterData: true, subtree: true });
  });
  const restarted = await fetch(`${CONTROL}/restart`, { method: 'POST' });
  assert.equal(restarted.status, 200);
  await waitForStatus('succeeded');
  await page.locator('.results img.output').waitFor();
  const texts = await page.evaluate(() => window.connectionTexts);
  assert.ok(texts.some((text) => /reconnecting/.test(text)), `no reconnection shown: ${JSON.stringify(texts)}`);
  await screenshot('reconnected');
});
