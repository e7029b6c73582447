import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboard } from '../../functions/dashboard.js';
import { contentSecurityPolicy, dashboardUrl, serveDashboard } from '../../lib/dashboard/page.js';
import { startLocalHost, type LocalHost } from '../../lib/local/host/index.js';
import { silentLogger } from '../../lib/log.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
import { recordingLogger } from '../helpers/logs.js';

/*
 * The page and its assets as a browser gets them: through the local Functions host (routes,
 * function key) over real HTTP, with the headers that keep the page to itself.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
let host: LocalHost;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/web/dashboard.js')))
    throw new Error('dist/web/dashboard.js is missing: run npm run build first (npm test does)');
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-dashboard-'));
  await writeFile(join(directory, 'host.json'), JSON.stringify({ version: '2.0' }));
  host = await startLocalHost({
    definitions: [dashboard],
    hostJsonPath: join(directory, 'host.json'),
    settings: {},
    connectionString: azuriteConnectionString(),
    logger: silentLogger,
  });
});

afterAll(async () => {
  await host?.stop();
});

const get = (path: string, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${host.httpUrl}${path}`, { headers, redirect: 'manual' });
const withKey = (path: string): string =>
  `${path}${path.includes('?') ? '&' : '?'}code=${encodeURIComponent(host.functionKey)}`;

describe('functions/dashboard', () => {
  it('is one GET route for the page and its assets, behind a function key', () => {
    expect([
      dashboard.kind,
      dashboard.name,
      dashboard.options.route,
      dashboard.options.methods,
      dashboard.options.authLevel,
    ]).toEqual(['http', 'dashboard', 'dashboard/{asset?}', ['GET'], 'function']);
  });
});

describe('GET /api/dashboard', () => {
  it('needs the function key, like the admin API', async () => {
    expect((await get('/api/dashboard')).status).toBe(401);
    expect((await get('/api/dashboard/dashboard.js')).status).toBe(401);
    expect((await get('/api/dashboard?code=wrong')).status).toBe(401);
  });

  it('serves the page with a strict CSP, nosniff, no caching, no referrer, and links its assets with the key it was opened with', async () => {
    const response = await get(withKey('/api/dashboard'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toBe(contentSecurityPolicy);
    expect(contentSecurityPolicy).toMatch(/script-src 'self';/);
    expect(contentSecurityPolicy).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const html = await response.text();
    const query = `?code=${encodeURIComponent(host.functionKey)}`;
    expect(html).toContain(`<script type="module" src="/api/dashboard/dashboard.js${query}"></script>`);
    expect(html).toContain(`<link rel="stylesheet" href="/api/dashboard/dashboard.css${query}">`);
    // No inline script or style for the CSP to forbid: every <script> has a src, no style attribute or element.
    expect(html.match(/<script\b[^>]*>/g)?.every((tag) => / src="/.test(tag))).toBe(true);
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i);
  });

  it('takes the key from the x-functions-key header too', async () => {
    const html = await (await get('/api/dashboard', { 'x-functions-key': host.functionKey })).text();
    expect(html).toContain(`dashboard.js?code=${encodeURIComponent(host.functionKey)}`);
  });

  it.each([
    { name: 'dashboard.js', type: 'text/javascript; charset=utf-8', file: 'dist/web/dashboard.js' },
    { name: 'dashboard.css', type: 'text/css; charset=utf-8', file: 'web/dashboard.css' },
  ])('serves $name as $type, private and revalidated by ETag', async ({ name, type, file }) => {
    const response = await get(withKey(`/api/dashboard/${name}`));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(type);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('content-security-policy')).toBe(contentSecurityPolicy);
    expect(response.headers.get('cache-control')).toBe('private, no-cache');
    expect(await response.text()).toBe(await readFile(join(root, file), 'utf8'));
    const etag = response.headers.get('etag');
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{32}"$/);
    const again = await get(withKey(`/api/dashboard/${name}`), { 'if-none-match': etag! });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect((await get(withKey(`/api/dashboard/${name}`), { 'if-none-match': '"stale"' })).status).toBe(200);
  });

  it.each([
    { name: 'a file beside the assets', path: 'package.json' },
    { name: 'a source map', path: 'dashboard.js.map' },
    { name: 'the page template', path: 'dashboard.html' },
    { name: 'an encoded traversal', path: '..%2Fpackage.json' },
    { name: 'a deeper encoded traversal', path: '..%2F..%2F..%2Fetc%2Fpasswd' },
    { name: 'a backslash traversal', path: '..%5Cpackage.json' },
    { name: 'another case', path: 'DASHBOARD.JS' },
    { name: 'a trailing NUL', path: 'dashboard.js%00' },
    { name: 'an object property', path: 'constructor' },
    { name: 'the prototype', path: '__proto__' },
  ])('answers 404 for $name, from the allow-list alone', async ({ path }) => {
    const response = await get(withKey(`/api/dashboard/${path}`));
    expect(response.status).toBe(404);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.json()).toEqual({
      error: 'NotFound',
      detail: 'the dashboard serves dashboard.js and dashboard.css only',
    });
  });

  it.each([
    '/api/dashboard/../package.json',
    '/api/dashboard/web/dashboard.css',
    '/api/dashboard/x/..%2F..%2Fpackage.json',
  ])('matches no route for %s', async (path) => {
    const response = await get(withKey(path));
    expect(response.status).toBe(404);
    expect(await response.text()).not.toContain('"name": "emfleet"');
  });

  it('refuses other methods', async () => {
    expect((await fetch(withKey(`${host.httpUrl}/api/dashboard`), { method: 'POST' })).status).toBe(404);
  });
});

describe('serveDashboard', () => {
  const request = (
    url: string,
    init: { params?: Record<string, string>; headers?: Record<string, string> } = {},
  ) => new HttpRequest({ method: 'GET', url, params: init.params ?? {}, headers: init.headers ?? {} });

  it.each([
    { name: 'markup', key: '"><script>alert(1)</script>' },
    { name: 'a query of its own', key: 'k&x=1' },
    { name: 'an empty key', key: '' },
  ])('leaves a key that cannot be a function key out of the page ($name)', async ({ key }) => {
    const response = await serveDashboard(
      request(`http://localhost/api/dashboard?code=${encodeURIComponent(key)}`),
      { logger: silentLogger },
    );
    const html = String(response.body);
    expect(html).toContain('src="/api/dashboard/dashboard.js"');
    expect(html).not.toContain('alert(1)');
    expect(html).not.toContain('x=1');
  });

  it('keeps the characters of Azure keys, URL-encoded', async () => {
    const key = 'Ab3+/xyz_-==';
    const response = await serveDashboard(
      request(`http://localhost/api/dashboard?code=${encodeURIComponent(key)}`),
      { logger: silentLogger },
    );
    expect(String(response.body)).toContain(
      `src="/api/dashboard/dashboard.js?code=${encodeURIComponent(key)}"`,
    );
  });

  it('says what to do when the browser code is not built, and logs it', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'emfleet-unbuilt-'));
    const logger = recordingLogger();
    const response = await serveDashboard(
      request('http://localhost/api/dashboard/dashboard.js', { params: { asset: 'dashboard.js' } }),
      { logger, root: empty },
    );
    expect(response.status).toBe(500);
    expect(response.jsonBody).toEqual({
      error: 'DashboardNotBuilt',
      detail: 'dist/web/dashboard.js is missing: run npm run build',
    });
    expect(logger.named('DashboardAssetMissing')).toHaveLength(1);
  });
});

describe('dashboardUrl', () => {
  it('is the page on the host, with the key as code', () => {
    expect(dashboardUrl('http://127.0.0.1:7071', 'a+b/c==')).toBe(
      'http://127.0.0.1:7071/api/dashboard?code=a%2Bb%2Fc%3D%3D',
    );
  });
});
