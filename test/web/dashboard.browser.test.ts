import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardUrl } from '../../lib/dashboard/page.js';
import { readRows } from '../../lib/fleet/rows.js';
import { auditRow } from '../../lib/fleet/schemas.js';
import { registerServer } from '../../lib/fleet/servers.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { fqdn, startWorld, waitFor, type Deployment, type World } from '../helpers/e2e.js';
import { patienceMs } from '../helpers/wait.js';

/*
 * The dashboard in a real browser (headless Chromium through playwright-core) against the whole
 * cloud side on the local Functions host: a rollout completes on the page, Pause on a running
 * rollout reaches the API, the screenshot goes to test-output/dashboard.png. npm cannot download
 * browsers here, so it drives Debian's chromium; without one the test is skipped, saying so.
 */

function findChromium(): string | undefined {
  const candidates = [process.env['EMFLEET_CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  try {
    return (
      execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], {
        encoding: 'utf8',
      }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

const executablePath = findChromium();
const howToEnable =
  "no Chromium found: install Debian's chromium (apt-get install chromium; .ci/run does) or set EMFLEET_CHROMIUM to a Chrome or Chromium binary";
if (!executablePath) console.warn(`test/web/dashboard.browser.test.ts skipped: ${howToEnable}`);

const outputDirectory = fileURLToPath(new URL('../../test-output/', import.meta.url));
const waves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT1S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
];
/** The next package adds EM4, which every server gets. */
const withEm4 = catalogueXml.replace(
  '</EOCS>',
  '  <Config id="EM4" desc="Ping 4"><ActionList><Action type="DoNothing" scope="Server" desc="Does nothing"><Value>DoNothing</Value></Action></ActionList></Config>\n</EOCS>',
);

let world: World;

beforeAll(async () => {
  if (executablePath) world = await startWorld();
});

afterAll(async () => {
  await world?.close();
});

describe.skipIf(!executablePath)(
  executablePath
    ? 'the dashboard in a real browser'
    : `the dashboard in a real browser (skipped: ${howToEnable})`,
  () => {
    it('shows a rollout complete and the fleet grid, pauses a running rollout through the API, asks before aborting', {
      timeout: 240_000,
    }, async () => {
      const d = await world.deploy(
        [
          { name: 'ex01', ring: 'canary' },
          { name: 'ex02', ring: 'broad' },
          { name: 'ex03', ring: 'broad' },
          { name: 'ex04', ring: 'broad', build: '15.2.1544.9' },
        ],
        // A failed delivery comes back a minute later: a server without an agent keeps its rollout running.
        { waves, queues: { visibilityTimeout: '00:01:00' } },
      );
      const browser = await chromium.launch({
        executablePath: executablePath!,
        headless: true,
        args: ['--no-sandbox'],
      });
      const problems: string[] = [];
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
        page.on(
          'console',
          (message) => void (message.type() === 'error' && problems.push(`console: ${message.text()}`)),
        );
        page.on('pageerror', (error) => void problems.push(`page: ${error.message}`));
        await page.goto(dashboardUrl(d.host.httpUrl, d.host.functionKey));
        await expectText(page, '#updated', /^Last updated \d\d:\d\d:\d\d$/);
        // The key left the address bar; the page still reads the API with it.
        expect(new URL(page.url()).searchParams.has('code')).toBe(false);

        await d.host.runTimer('pollOcs');
        const first = rolloutCard('microsoft-000001-apply');
        await expectText(page, `${first} .rollout-state`, /Completed/);
        await expectText(
          page,
          `${first} .wave:nth-child(2) .counts`,
          /^3 succeeded · 0 failed · 0 skipped · 0 pending of 3$/,
        );
        await expectText(page, '#feeds', /#1 sha256/);
        await expectText(page, '#feeds', /CN=Microsoft Exchange XML Signing/);

        // The grid: each cell says its outcome in words, and why on focus.
        const fixed = `td[data-focus-key="cell/${fqdn('ex04')}/EM1"]`;
        await expectText(page, fixed, /Not applicable/);
        expect(await page.locator(fixed).getAttribute('aria-label')).toMatch(
          /NotApplicable \(fixed\): build 15\.2\.1544\.9 includes the fix for EM1/,
        );
        const applied = page.locator(`td[data-focus-key="cell/${fqdn('ex01')}/EM1"]`);
        expect(await applied.textContent()).toMatch(/Applied/);
        await applied.focus();
        await page.keyboard.press('ArrowRight');
        expect(await page.locator(':focus').getAttribute('data-focus-key')).toBe(`cell/${fqdn('ex01')}/EM2`);
        await expectText(page, '#cell-detail', new RegExp(`${fqdn('ex01')} · EM2: Applied`));
        await page.selectOption('select[name="outcome"]', 'NotApplicable');
        await expect.poll(() => page.locator('#grid tbody tr').count(), { timeout: patienceMs }).toBe(1);
        expect(await page.locator('#grid tbody th').textContent()).toBe(fqdn('ex04'));
        await page.selectOption('select[name="outcome"]', '');

        // ex03's agent reports a Security Update: the grid shows the build it reports beside the registered one.
        await d.agents.get('ex03')!.installUpdate('15.02.1118.009');
        await d.host.runTimer('reconcile');
        await expectText(
          page,
          `#grid tbody tr:has(th[title="${fqdn('ex03')}"]) td.build-mismatch`,
          /^15\.2\.1118\.9 ≠ 15\.2\.1118\.7$/,
        );

        // A second package: a server with no agent keeps its rollout running.
        await registerServer(
          d.tables,
          'contoso',
          { name: fqdn('ex05'), build: '15.2.1118.7', ring: 'broad', relayHybridConnection: 'ex05-no-agent' },
          { actor: 'test' },
        );
        world.serve(world.signed(withEm4, 1000));
        await d.host.runTimer('pollOcs');
        const second = rolloutCard('microsoft-000002-apply');
        await expectText(
          page,
          `${second} .wave:nth-child(2) .counts`,
          /^3 succeeded · 0 failed · 0 skipped · 1 pending of 4$/,
        );
        await expectText(page, `${second} .rollout-state`, /Running/);
        await expectText(page, '#feeds', /#2 sha256/);
        await page.click(`${second} button[data-action="pause"]`);
        await waitFor(
          'the API to show the rollout paused',
          async () => (await rolloutState(d, 'microsoft-000002-apply')) === 'Paused',
        );
        await expectText(page, `${second} .rollout-state`, /Paused/);
        await expectText(page, '#notice', /Pause: microsoft-000002-apply is now Paused/);
        // Audited as the CLI's and the API's actions are (locally the caller is the function key; Entra ID names the user in Azure).
        const audit = await readRows(await d.tables.client('Audit'), 'Audit', auditRow);
        expect(
          audit.rows
            .filter((row) => row.action.startsWith('rollout.'))
            .map((row) => [row.action, row.target, row.actor]),
        ).toEqual([['rollout.pause', 'rollout:microsoft-000002-apply', 'function-key']]);

        // Abort asks first; Cancel leaves the rollout as it was.
        await page.click(`${second} button[data-action="abort"]`);
        await expectText(page, '#confirm-title', /Abort microsoft-000002-apply\?/);
        expect(await page.locator('#confirm').getAttribute('open')).toBe('');
        await page.click('#confirm-cancel');
        expect(await rolloutState(d, 'microsoft-000002-apply')).toBe('Paused');

        await mkdir(outputDirectory, { recursive: true });
        await page.screenshot({ path: join(outputDirectory, 'dashboard.png'), fullPage: true });
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    });
    it('a halted rollout: shows its hold, offers Retry and Abort only, each asking first and saying what it does; Retry sends the failed canary again', {
      timeout: 60_000,
    }, async () => {
      const d = await world.deploy(
        [
          { name: 'ex21', ring: 'canary', failOn: ['MSExchangeUM'] },
          { name: 'ex22', ring: 'canary' },
          { name: 'ex23', ring: 'broad' },
        ],
        { waves },
      );
      await d.host.runTimer('pollOcs');
      await d.settled('microsoft-000001-apply');
      const browser = await chromium.launch({
        executablePath: executablePath!,
        headless: true,
        args: ['--no-sandbox'],
      });
      const problems: string[] = [];
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
        page.on(
          'console',
          (message) => void (message.type() === 'error' && problems.push(`console: ${message.text()}`)),
        );
        page.on('pageerror', (error) => void problems.push(`page: ${error.message}`));
        await page.goto(dashboardUrl(d.host.httpUrl, d.host.functionKey));
        const card = rolloutCard('microsoft-000001-apply');
        await expectText(page, `${card} .rollout-state`, /Halted/);
        await expectText(
          page,
          `${card} .hold`,
          /^Holds EM1, EM2, EM3, PING1: reconcile does not reapply them until the rollout is retried or the feed publishes different content\.$/,
        );
        expect(
          await page
            .locator(`${card} button[data-action]`)
            .evaluateAll((buttons) => buttons.map((button) => button.getAttribute('data-action'))),
        ).toEqual(['retry', 'abort']);

        // Abort asks first, saying the hold stays; Cancel leaves it halted.
        await page.click(`${card} button[data-action="abort"]`);
        await expectText(page, '#confirm-title', /^Abort microsoft-000001-apply\?$/);
        await expectText(page, '#confirm-text', /the hold on EM1, EM2, EM3, PING1 stays/);
        await page.click('#confirm-cancel');
        expect(await rolloutState(d, 'microsoft-000001-apply')).toBe('Halted');

        // Retry asks first, saying whom it sends again and that the hold ends; confirmed, the canary's failed server goes again.
        await page.click(`${card} button[data-action="retry"]`);
        await expectText(page, '#confirm-title', /^Retry microsoft-000001-apply\?$/);
        await expectText(
          page,
          '#confirm-text',
          /^Retrying sends wave 1 \(canary\) again to its 1 failed and unreached servers, .* The hold on EM1, EM2, EM3, PING1 ends\./,
        );
        await page.click('#confirm-ok');
        await expectText(page, '#notice', /^Retry: microsoft-000001-apply is now Running\.$/);
        // ex21 still fails: the rollout halts again, with the retry in its reason.
        await expectText(page, `${card} .reason`, /^WaveHalted: wave 1 \(retry 1\) had 1 failures/);
        expect((await d.results('ex21')).map((row) => row.rowKey)).toEqual([
          'microsoft-000001-apply.w0.ex21.contoso.com',
          'microsoft-000001-apply.w0.r1.ex21.contoso.com',
        ]);
        expect(await d.results('ex22')).toHaveLength(1);
        const audit = await readRows(await d.tables.client('Audit'), 'Audit', auditRow);
        expect(
          audit.rows
            .filter((row) => row.action.startsWith('rollout.'))
            .map((row) => [row.action, row.target]),
        ).toEqual([['rollout.retry', 'rollout:microsoft-000001-apply']]);
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);

const rolloutCard = (id: string): string => `article.rollout[data-rollout="${id}"]`;

async function expectText(page: Page, selector: string, pattern: RegExp): Promise<void> {
  await expect
    .poll(
      async () =>
        (await page
          .locator(selector)
          .first()
          .textContent({ timeout: 1000 })
          .catch(() => null)) ?? '',
      { timeout: patienceMs },
    )
    .toMatch(pattern);
}

async function rolloutState(d: Deployment, id: string): Promise<string | undefined> {
  const { body } = await d.api('GET', `/api/rollouts/${id}`);
  return (body as { state?: string } | undefined)?.state;
}
