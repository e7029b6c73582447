import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { Logger } from '../log.js';

/*
 * GET /api/dashboard and /api/dashboard/{asset}: the page and its two assets, served by the
 * function app itself behind the same function key as the admin API (Entra ID in front in Azure).
 * A browser cannot put a header on <script src>, so the page links its assets with the key it was
 * opened with (`?code=`); its script then sends the key as x-functions-key and drops it from the
 * address bar. Nothing is served but the page and a fixed list of files: no path reaches the disk.
 */

/** The files the page loads, by the name in its URL; relative to the project root. */
const assets: Readonly<Record<string, { readonly file: string; readonly contentType: string }>> = {
  'dashboard.js': { file: 'dist/web/dashboard.js', contentType: 'text/javascript; charset=utf-8' },
  'dashboard.css': { file: 'web/dashboard.css', contentType: 'text/css; charset=utf-8' },
  // The reason catalogue, the server's own module: the page renders reasons with it (it imports nothing).
  'reasons.js': { file: 'dist/lib/model/reasons.js', contentType: 'text/javascript; charset=utf-8' },
};
const pageFile = 'web/dashboard.html';

/** Scripts and styles from this origin only, no inline code, data only from the API, no framing. */
export const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const securityHeaders = {
  'content-security-policy': contentSecurityPolicy,
  'x-content-type-options': 'nosniff',
  // The page's URL carries the function key until its script removes it: never send it elsewhere.
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Function keys as Azure and the local host make them: base64 or base64url. */
const functionKey = /^[A-Za-z0-9_\-+/=]{1,512}$/;

/** The project root: the nearest directory above this module with a package.json (lib/… and dist/lib/… alike). */
function projectRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, 'package.json'))) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    directory = parent;
  }
  return directory;
}

let defaultRoot: string | undefined;

export async function serveDashboard(
  request: HttpRequest,
  options: { logger: Logger; root?: string },
): Promise<HttpResponseInit> {
  const root = options.root ?? (defaultRoot ??= projectRoot());
  const name = request.params['asset'];
  if (name === undefined || name === '') return servePage(request, root, options.logger);
  const asset = Object.hasOwn(assets, name) ? assets[name] : undefined;
  if (!asset)
    return {
      status: 404,
      headers: { ...securityHeaders, 'cache-control': 'no-store' },
      jsonBody: {
        code: 'NotFound',
        detail: `the dashboard serves ${Object.keys(assets).join(', ')} only`,
      },
    };
  const body = await readAsset(root, asset.file, options.logger);
  if (!body) return notBuilt(asset.file);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
  // Revalidated every time (an ETag round trip), so a deployment is picked up at once; private: the URL holds a key.
  const headers = {
    ...securityHeaders,
    'content-type': asset.contentType,
    'cache-control': 'private, no-cache',
    etag,
  };
  if (request.headers.get('if-none-match') === etag) return { status: 304, headers };
  return { status: 200, headers, body };
}

async function servePage(request: HttpRequest, root: string, logger: Logger): Promise<HttpResponseInit> {
  const template = await readAsset(root, pageFile, logger);
  if (!template) return notBuilt(pageFile);
  // The host has already checked the key, so it is the app's own; anything else is left out.
  const key = request.query.get('code') ?? request.headers.get('x-functions-key');
  const query = key !== null && functionKey.test(key) ? `?code=${encodeURIComponent(key)}` : '';
  return {
    status: 200,
    headers: { ...securityHeaders, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' },
    body: template.toString('utf8').replaceAll('{{assetQuery}}', query),
  };
}

async function readAsset(root: string, file: string, logger: Logger): Promise<Buffer | undefined> {
  try {
    return await readFile(join(root, file));
  } catch (error) {
    logger.error('DashboardAssetMissing', {
      file,
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

const notBuilt = (file: string): HttpResponseInit => ({
  status: 500,
  headers: { ...securityHeaders, 'cache-control': 'no-store' },
  jsonBody: { code: 'DashboardNotBuilt', detail: `${file} is missing: run npm run build` },
});

/**
 * The address to open the dashboard at, for `npm start` to print beside the admin API's:
 * `dashboardUrl(host.httpUrl, host.functionKey)`.
 */
export function dashboardUrl(httpBaseUrl: string, key: string): string {
  const url = new URL('/api/dashboard', httpBaseUrl);
  url.searchParams.set('code', key);
  return url.href;
}
