import type {
  CellOutcome,
  FeedView,
  GridCell,
  GridPage,
  GridRow,
  Overview,
  PolicyView,
  RolloutActionName,
  RolloutView,
  ScopePolicyView,
  Sourced,
  WaveView,
} from '../lib/dashboard/types.js';
import type { OnDegraded } from '../lib/model/policy.js';
import type * as ReasonCatalogue from '../lib/model/reasons.js';
import type { RolloutState } from '../lib/model/rollout.js';

/*
 * The fleet dashboard: plain DOM, no framework. Every few seconds it reads three endpoints of the
 * admin API (overview, grid, policy) and redraws the sections whose data changed; actions go
 * through the same POST /api/rollouts/{id}/{action} as the CLI.
 */

const refreshMs = 3000;

// ---- the key: from this script's URL (the page linked it with ?code=), sent as a header, never in the address bar

const functionKey = new URL(import.meta.url).searchParams.get('code');
{
  const address = new URL(location.href);
  if (address.searchParams.has('code')) {
    address.searchParams.delete('code');
    history.replaceState(history.state, '', address);
  }
}

// ---- the reason catalogue: the server's own module (lib/model/reasons.ts, no imports), served beside this script

const { renderReason, reasonLabel } = (await import(
  new URL(`reasons.js${functionKey ? `?code=${encodeURIComponent(functionKey)}` : ''}`, import.meta.url).href
)) as typeof ReasonCatalogue;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(method: 'GET' | 'POST', path: string): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: functionKey ? { 'x-functions-key': functionKey } : {},
    cache: 'no-store',
    credentials: 'same-origin',
    signal: AbortSignal.timeout(20_000),
  });
  const body = (await response.json().catch(() => undefined)) as
    | { code?: string; detail?: string }
    | undefined;
  if (!response.ok)
    throw new ApiError(
      response.status,
      body?.code && body.detail !== undefined
        ? renderReason({ reasonCode: body.code, reasonDetail: body.detail })
        : `${response.status} ${response.statusText}`,
    );
  return body as T;
}

// ---- a small render layer

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

/** An element with attributes (`on…` are listeners, booleans are present or absent) and children. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: (Child | readonly Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else if (value !== false && value !== null && value !== undefined)
      element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const byId = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
};

/**
 * Replaces a section's content, keeping keyboard focus on the element with the same
 * `data-focus-key` (a redraw every few seconds must not throw a keyboard user out).
 */
function mount(container: HTMLElement, ...content: Node[]): void {
  const active = document.activeElement;
  const focusKey =
    active instanceof HTMLElement && container.contains(active) ? active.dataset['focusKey'] : undefined;
  container.replaceChildren(...content);
  if (focusKey !== undefined)
    container.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/** Redraws only when the data changed, so hover, selection and focus survive quiet refreshes. */
const drawn = new Map<string, string>();
function changed(section: string, data: unknown): boolean {
  const json = JSON.stringify(data);
  if (drawn.get(section) === json) return false;
  drawn.set(section, json);
  return true;
}

const pad = (value: number): string => String(value).padStart(2, '0');
const clock = (date: Date): string =>
  `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
const dateTime = (iso: string | null): string => {
  if (iso === null) return 'never';
  const date = new Date(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock(date)}`;
};
const time = (iso: string | null): HTMLElement =>
  iso === null ? h('span', {}, 'never') : h('time', { datetime: iso, title: iso }, dateTime(iso));
const shortHash = (sha256: string): HTMLElement => h('code', { title: sha256 }, `${sha256.slice(0, 12)}…`);

/** A status word with its symbol, so colour is never the only signal. */
const badge = (kind: string, symbol: string, text: string): HTMLElement =>
  h('span', { class: `badge ${kind}` }, h('span', { 'aria-hidden': 'true' }, symbol), ` ${text}`);

// ---- feeds

function renderFeeds(feeds: readonly FeedView[]): Node[] {
  return feeds.map((feed) => {
    const poll =
      feed.lastPollResult === null
        ? badge('muted', '○', 'never polled')
        : feed.lastPollResult === 'Success'
          ? badge('good', '✓', 'Success')
          : feed.lastPollResult === 'Rejected'
            ? badge('bad', '⚠', 'Rejected')
            : badge('bad', '✗', `Failed: ${feed.lastError ?? ''}`);
    const current = feed.package;
    const rejected = feed.lastRejected;
    return h(
      'article',
      { class: 'card feed' },
      h('h3', {}, feed.name, ' ', h('small', {}, feed.url)),
      feed.problem && h('p', { class: 'problem' }, badge('bad', '⚠', 'Misconfigured'), ` ${feed.problem}`),
      feed.frozen &&
        h(
          'p',
          { class: 'problem frozen' },
          badge('bad', '❄', `Frozen: ${reasonLabel(feed.frozen.reasonCode)}`),
          ` since `,
          time(feed.frozen.since),
          ` ${feed.frozen.reasonDetail}. Nothing of this feed is applied or removed until a verified package of it arrives.`,
        ),
      h(
        'dl',
        {},
        h('dt', {}, 'Last poll'),
        h('dd', {}, time(feed.lastPollAt), ' ', poll),
        h('dt', {}, 'Current package'),
        current
          ? h(
              'dd',
              {},
              `#${current.sequence} sha256 `,
              shortHash(current.sha256),
              ' accepted ',
              time(current.acceptedAt),
            )
          : h('dd', {}, 'none yet'),
        current && [
          h('dt', {}, 'Signer'),
          h(
            'dd',
            {},
            current.signer
              ? [current.signer.subject, h('small', {}, ` issued by ${current.signer.issuer}`)]
              : badge(
                  'bad',
                  '⚠',
                  `no longer verifies: ${current.verifyProblem ? renderReason(current.verifyProblem) : 'unknown'}`,
                ),
          ),
          h('dt', {}, 'Signed'),
          h('dd', {}, time(current.signingTime)),
          h('dt', {}, 'Mitigations'),
          h('dd', { class: 'ids' }, current.mitigationIds.join(', ') || 'none'),
        ],
        h('dt', {}, 'Last rejected'),
        rejected
          ? h(
              'dd',
              {},
              time(rejected.at),
              ' ',
              badge(
                'bad',
                '✗',
                rejected.reasonCode === 'Legacy' ? 'Rejected' : reasonLabel(rejected.reasonCode),
              ),
              ' sha256 ',
              shortHash(rejected.sha256),
              h('div', { class: 'detail' }, rejected.reasonDetail),
            )
          : h('dd', {}, 'none'),
      ),
    );
  });
}

// ---- rollouts

const stateSymbols: Record<RolloutState, { symbol: string; kind: string }> = {
  Planned: { symbol: '○', kind: 'muted' },
  Running: { symbol: '▶', kind: 'busy' },
  Baking: { symbol: '◔', kind: 'busy' },
  Paused: { symbol: '‖', kind: 'warn' },
  Halted: { symbol: '■', kind: 'bad' },
  Aborted: { symbol: '✗', kind: 'bad' },
  Completed: { symbol: '✓', kind: 'good' },
};

/** In the order the buttons stand; a rollout shows those its state accepts (halted: Retry, Abort; paused: Resume, Abort…). */
const actionLabels: Record<RolloutActionName, string> = {
  retry: 'Retry',
  resume: 'Resume',
  pause: 'Pause',
  abort: 'Abort',
  expedite: 'Expedite',
};

/** What the confirmation says an action will do; undefined: no confirmation (pause, resume). */
function confirmation(rollout: RolloutView, action: RolloutActionName): string | undefined {
  const held = rollout.holds.length > 0 ? rollout.holds.join(', ') : undefined;
  const wave = rollout.waves[rollout.currentWave];
  switch (action) {
    case 'retry':
      return `Retrying sends wave ${rollout.currentWave + 1}${wave ? ` (${wave.name})` : ''} again to its ${rollout.retryServers} failed and unreached servers, with new operation ids and a fresh error budget, then carries on through the remaining waves and their gates.${held ? ` The hold on ${held} ends.` : ''} If the wave fails again, the rollout halts again.`;
    case 'abort':
      return rollout.state === 'Halted'
        ? `Aborting ends the halted rollout for good: nothing more is sent. Mitigations already applied stay applied${held ? `, and the hold on ${held} stays: reconcile will not reapply them until the feed publishes different content` : ''}.`
        : 'Aborting stops the rollout for good: servers not reached yet keep their current state. Mitigations already applied stay applied.';
    case 'expedite':
      return 'Expediting puts the remaining waves on the emergency profile: wider concurrency, a larger error budget and no bake.';
    default:
      return undefined;
  }
}

function renderRollouts(overview: Overview): Node[] {
  if (overview.rollouts.length === 0) return [h('p', { class: 'muted' }, 'No rollouts yet.')];
  return [
    ...overview.rollouts.map(renderRollout),
    ...(overview.olderRollouts > 0
      ? [
          h(
            'p',
            { class: 'muted' },
            `${overview.olderRollouts} older rollouts are not shown (emfleet rollout list has them all).`,
          ),
        ]
      : []),
  ];
}

function renderRollout(rollout: RolloutView): HTMLElement {
  const state = stateSymbols[rollout.state];
  return h(
    'article',
    { class: 'card rollout', 'data-rollout': rollout.id, 'aria-label': `Rollout ${rollout.id}` },
    h(
      'h3',
      {},
      rollout.id,
      ' ',
      h(
        'span',
        { class: 'rollout-state', 'data-state': rollout.state },
        badge(state.kind, state.symbol, rollout.state),
      ),
    ),
    h(
      'p',
      { class: 'meta' },
      `${rollout.operation} · feed ${rollout.feed} package #${rollout.packageSequence} · ${rollout.profile} profile · wave ${Math.min(rollout.currentWave + 1, rollout.waveCount)} of ${rollout.waveCount} · started `,
      time(rollout.createdAt),
    ),
    rollout.reasonCode && h('p', { class: 'reason' }, renderReason(rollout)),
    rollout.holds.length > 0 &&
      h(
        'p',
        { class: 'hold' },
        `Holds ${rollout.holds.join(', ')}: reconcile does not reapply ${rollout.holds.length === 1 ? 'it' : 'them'} until ${rollout.state === 'Halted' ? 'the rollout is retried or ' : ''}the feed publishes different content.`,
      ),
    h(
      'ol',
      { class: 'waves' },
      rollout.waves.map((wave) => renderWave(rollout, wave)),
    ),
    // Only the actions the state accepts: no row of dead buttons, none at all once the rollout has ended.
    rollout.actions.length > 0 &&
      h(
        'div',
        { class: 'buttons' },
        (Object.keys(actionLabels) as RolloutActionName[])
          .filter((action) => rollout.actions.includes(action))
          .map((action) =>
            h(
              'button',
              {
                type: 'button',
                class: action === 'abort' ? 'danger' : undefined,
                'data-action': action,
                'data-focus-key': `${rollout.id}/${action}`,
                onclick: () => void act(rollout, action),
              },
              actionLabels[action],
            ),
          ),
      ),
  );
}

function renderWave(rollout: RolloutView, wave: WaveView): HTMLElement {
  const share = (count: number): string => `${wave.servers === 0 ? 0 : (count / wave.servers) * 100}%`;
  const counts = `${wave.succeeded} succeeded · ${wave.failed} failed · ${wave.skipped} skipped · ${wave.pending} pending of ${wave.servers}`;
  const bar = h('div', { class: 'bar', role: 'img', 'aria-label': counts });
  for (const [kind, count] of [
    ['ok', wave.succeeded],
    ['failed', wave.failed],
    ['skipped', wave.skipped],
  ] as const) {
    const segment = h('span', { class: `segment ${kind}` });
    segment.style.width = share(count);
    bar.append(segment);
  }
  const phase =
    wave.phase === 'Done' ? 'done' : wave.phase === 'Current' ? rollout.state.toLowerCase() : 'not started';
  return h(
    'li',
    { class: `wave phase-${wave.phase}` },
    h('span', { class: 'wave-name' }, `${wave.name}`, h('small', {}, ` ${phase}`)),
    bar,
    h('span', { class: 'counts' }, counts),
    wave.bakeEndsAt &&
      h('span', { class: 'bake', 'data-bake-ends': wave.bakeEndsAt }, bakeText(wave.bakeEndsAt)),
    wave.failedServers.length > 0 &&
      h('span', { class: 'failed-servers' }, `failed: ${wave.failedServers.join(', ')}`),
  );
}

function bakeText(endsAt: string): string {
  const left = Math.ceil((new Date(endsAt).getTime() - Date.now()) / 1000);
  if (left <= 0) return 'bake over, gate due';
  return `bake ends in ${Math.floor(left / 60)}:${pad(left % 60)}`;
}

/** The countdowns tick every second between refreshes. */
function tickBakes(): void {
  for (const element of document.querySelectorAll<HTMLElement>('[data-bake-ends]'))
    element.textContent = bakeText(element.dataset['bakeEnds']!);
}

async function act(rollout: RolloutView, action: RolloutActionName): Promise<void> {
  const rolloutId = rollout.id;
  const warning = confirmation(rollout, action);
  if (warning && !(await confirmAction(`${actionLabels[action]} ${rolloutId}?`, warning))) return;
  try {
    const result = await api<{ state?: string }>(
      'POST',
      `/api/rollouts/${encodeURIComponent(rolloutId)}/${action}`,
    );
    notice(`${actionLabels[action]}: ${rolloutId} is now ${result.state ?? 'changed'}.`, false);
  } catch (error) {
    notice(
      `${actionLabels[action]} ${rolloutId} failed: ${error instanceof Error ? error.message : String(error)}`,
      true,
    );
  }
  await refresh();
}

function confirmAction(title: string, text: string): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>('confirm');
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-ok').textContent = title.split(' ')[0] ?? 'Confirm';
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }),
  );
}

function notice(text: string, isError: boolean): void {
  const element = byId('notice');
  element.textContent = text;
  element.classList.toggle('error', isError);
  element.hidden = false;
}

// ---- fleet grid

const outcomeStyles: Record<CellOutcome, { symbol: string; label: string }> = {
  Applied: { symbol: '✓', label: 'Applied' },
  AlreadyApplied: { symbol: '✓', label: 'Already applied' },
  Removed: { symbol: '−', label: 'Removed' },
  NotApplicable: { symbol: '·', label: 'Not applicable' },
  Blocked: { symbol: '⊘', label: 'Blocked' },
  Disabled: { symbol: '‖', label: 'Disabled' },
  PolicyError: { symbol: '!', label: 'Policy error' },
  Unsupported: { symbol: '?', label: 'Unsupported' },
  Skipped: { symbol: '↷', label: 'Skipped' },
  Failed: { symbol: '✗', label: 'Failed' },
  Unreachable: { symbol: '↯', label: 'Unreachable' },
  Degraded: { symbol: '▼', label: 'Degraded' },
  Ineffective: { symbol: '≠', label: 'Ineffective' },
  RolledBack: { symbol: '↺', label: 'Rolled back' },
  Pending: { symbol: '…', label: 'Pending' },
  NotStarted: { symbol: '◌', label: 'Not started' },
  Unknown: { symbol: '?', label: 'Unknown' },
};

interface GridFilters {
  search: string;
  site: string;
  ring: string;
  outcome: string;
}

const grid = {
  filters: { search: '', site: '', ring: '', outcome: '' } as GridFilters,
  /** The token of each page up to the one shown (null: the first). */
  tokens: [null] as (string | null)[],
  next: null as string | null,
  /** The cell that takes Tab into the grid (roving tabindex: the grid is one tab stop). */
  active: undefined as string | undefined,
  sites: new Set<string>(),
  rings: new Set<string>(),
};

function gridPath(): string {
  const query = new URLSearchParams({ top: '100' });
  const { search, site, ring, outcome } = grid.filters;
  if (search) query.set('search', search);
  if (site) query.set('site', site);
  if (ring) query.set('ring', ring);
  if (outcome) query.set('outcome', outcome);
  const token = grid.tokens.at(-1);
  if (token) query.set('continuationToken', token);
  return `/api/grid?${query}`;
}

const cellKey = (server: string, mitigation: string): string => `cell/${server}/${mitigation}`;

function describeCell(row: GridRow, mitigation: string, cell: GridCell): string {
  const when = cell.at ? ` (${cell.rolloutId ?? 'result'}, ${dateTime(cell.at)})` : '';
  const why = cell.reasonCode
    ? renderReason({ reasonCode: cell.reasonCode, reasonDetail: cell.reasonDetail })
    : cell.reasonDetail;
  return `${row.server} · ${mitigation}: ${outcomeStyles[cell.outcome].label} — ${why}${when}`;
}

function renderGrid(page: GridPage): Node[] {
  if (page.rows.length === 0)
    return [
      h(
        'p',
        { class: 'muted' },
        grid.next
          ? 'No matching server in this stretch of the fleet; try the next page.'
          : 'No server matches.',
      ),
    ];
  const keys = page.rows.flatMap((row) => page.mitigations.map((id) => cellKey(row.server, id)));
  if (grid.active === undefined || !keys.includes(grid.active)) grid.active = keys[0];
  const table = h(
    'table',
    {
      class: 'grid',
      role: 'grid',
      'aria-label': `Servers × mitigations, ${page.rows.length} servers`,
      onkeydown: (event) => moveFocus(event as KeyboardEvent, page),
    },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Server'),
        h('th', { scope: 'col' }, 'Site'),
        h('th', { scope: 'col' }, 'Ring'),
        h('th', { scope: 'col' }, 'Build'),
        page.mitigations.map((id) => h('th', { scope: 'col' }, id)),
      ),
    ),
    h(
      'tbody',
      {},
      page.rows.map((row) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row', title: row.fqdn }, row.server),
          h('td', {}, row.site),
          h('td', {}, row.ring),
          row.registeredBuild === null
            ? h('td', {}, row.build)
            : h(
                'td',
                {
                  class: 'build-mismatch',
                  title: `the agent reports ${row.build}; registered ${row.registeredBuild}`,
                },
                `${row.build} ≠ ${row.registeredBuild}`,
              ),
          page.mitigations.map((id) => {
            const cell = row.cells[id];
            if (!cell) return h('td', {}, '');
            const style = outcomeStyles[cell.outcome];
            const key = cellKey(row.server, id);
            const description = describeCell(row, id, cell);
            const show = (): void => void (byId('cell-detail').textContent = description);
            const focused = (event: Event): void => {
              // The focused cell (by keyboard or by click) becomes the grid's one tab stop.
              for (const other of document.querySelectorAll<HTMLElement>('#grid td[tabindex="0"]'))
                other.tabIndex = -1;
              (event.currentTarget as HTMLElement).tabIndex = 0;
              grid.active = key;
              show();
            };
            return h(
              'td',
              {
                class: `cell o-${cell.outcome}`,
                tabindex: key === grid.active ? 0 : -1,
                'data-focus-key': key,
                'data-outcome': cell.outcome,
                title: description,
                'aria-label': description,
                onfocus: focused,
                onmouseenter: show,
              },
              h('span', { 'aria-hidden': 'true' }, style.symbol),
              ` ${style.label}`,
            );
          }),
        ),
      ),
    ),
  );
  return [table];
}

/** Arrow keys, Home and End move between cells; the focused cell becomes the grid's tab stop. */
function moveFocus(event: KeyboardEvent, page: GridPage): void {
  const target = event.target;
  if (!(target instanceof HTMLElement) || target.dataset['focusKey'] === undefined) return;
  const keys = page.rows.map((row) => page.mitigations.map((id) => cellKey(row.server, id)));
  const rowIndex = keys.findIndex((row) => row.includes(target.dataset['focusKey']!));
  if (rowIndex < 0) return;
  const columnIndex = keys[rowIndex]!.indexOf(target.dataset['focusKey']!);
  const moves: Record<string, [number, number]> = {
    ArrowUp: [rowIndex - 1, columnIndex],
    ArrowDown: [rowIndex + 1, columnIndex],
    ArrowLeft: [rowIndex, columnIndex - 1],
    ArrowRight: [rowIndex, columnIndex + 1],
    Home: [rowIndex, 0],
    End: [rowIndex, page.mitigations.length - 1],
  };
  const move = moves[event.key];
  if (!move) return;
  event.preventDefault();
  const next =
    keys[Math.max(0, Math.min(keys.length - 1, move[0]))]?.[
      Math.max(0, Math.min(page.mitigations.length - 1, move[1]))
    ];
  if (next !== undefined)
    document.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(next)}"]`)?.focus();
}

function renderPager(page: GridPage): void {
  grid.next = page.continuationToken;
  byId<HTMLButtonElement>('grid-prev').disabled = grid.tokens.length <= 1;
  byId<HTMLButtonElement>('grid-next').disabled = page.continuationToken === null;
  byId('grid-page').textContent =
    `Page ${grid.tokens.length} · ${page.rows.length} servers shown · ${page.scanned} looked at${page.problems.length > 0 ? ` · ${page.problems.length} invalid rows skipped` : ''}`;
  for (const row of page.rows) {
    if (row.site) grid.sites.add(row.site);
    if (row.ring) grid.rings.add(row.ring);
  }
  const options = (values: Set<string>): HTMLElement[] =>
    [...values].sort().map((value) => h('option', { value }));
  byId('grid-sites').replaceChildren(...options(grid.sites));
  byId('grid-rings').replaceChildren(...options(grid.rings));
}

function setUpGridControls(): void {
  const form = byId<HTMLFormElement>('grid-filters');
  const select = form.elements.namedItem('outcome') as HTMLSelectElement;
  for (const [outcome, style] of Object.entries(outcomeStyles))
    select.append(h('option', { value: outcome }, `${style.symbol} ${style.label}`));
  let typing: number | undefined;
  const apply = (): void => {
    const field = (name: string): string =>
      (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement).value.trim();
    grid.filters = {
      search: field('search'),
      site: field('site'),
      ring: field('ring'),
      outcome: field('outcome'),
    };
    grid.tokens = [null];
    void loadGrid();
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(apply, 300);
  });
  byId('grid-next').addEventListener('click', () => {
    if (grid.next === null) return;
    grid.tokens.push(grid.next);
    void loadGrid();
  });
  byId('grid-prev').addEventListener('click', () => {
    if (grid.tokens.length <= 1) return;
    grid.tokens.pop();
    void loadGrid();
  });
}

// ---- policy

const sourceLabels: Record<Sourced<unknown>['source'], string> = {
  bicep: 'Bicep',
  table: 'Tables',
  default: 'default',
};
const sourced = <T>(value: Sourced<T> | null, show: (value: T) => string): HTMLElement[] =>
  value === null
    ? [h('td', {}, '—'), h('td', {}, 'not set')]
    : [
        h('td', {}, show(value.value)),
        h('td', { class: `source source-${value.source}` }, sourceLabels[value.source]),
      ];
const enabledText = (enabled: boolean): string => (enabled ? '✓ enabled' : '‖ disabled');
const blockedText = (ids: readonly string[]): string => (ids.length > 0 ? ids.join(', ') : 'none');
const onDegradedText = (choice: OnDegraded): string => (choice === 'rollback' ? '↺ roll back' : '▼ keep');

/** A scope's row; rings are set per server only, so the org's table has no ring columns. */
function scopeRow(scope: ScopePolicyView, withRing: boolean): HTMLElement {
  if (!scope.valid)
    return h(
      'tr',
      {},
      h('th', { scope: 'row' }, scope.name),
      h(
        'td',
        { colspan: withRing ? 8 : 6, class: 'problem' },
        `⚠ invalid policy, nothing is applied or removed here: ${scope.problem}`,
      ),
    );
  return h(
    'tr',
    {},
    h('th', { scope: 'row' }, scope.name),
    sourced(scope.mitigationsEnabled, enabledText),
    sourced(scope.blockedMitigations, blockedText),
    sourced(scope.onDegraded, onDegradedText),
    withRing && sourced(scope.ring, (ring) => ring),
  );
}

function renderPolicy(policy: PolicyView): Node[] {
  const columns = (first: string, withRing: boolean): HTMLElement =>
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        [
          first,
          'Mitigations',
          'from',
          'Blocked',
          'from',
          'If degraded',
          'from',
          ...(withRing ? ['Ring', 'from'] : []),
        ].map((name) => h('th', { scope: 'col' }, name)),
      ),
    );
  return [
    h(
      'table',
      { class: 'policy' },
      h('caption', {}, 'Organization'),
      columns('Org', false),
      h('tbody', {}, scopeRow(policy.org, false)),
    ),
    policy.servers.length === 0
      ? h('p', { class: 'muted' }, 'No server has settings of its own.')
      : h(
          'table',
          { class: 'policy' },
          h(
            'caption',
            {},
            `Servers with settings of their own (${policy.serverScopes}${policy.serverScopes > policy.servers.length ? `, first ${policy.servers.length} shown` : ''})`,
          ),
          columns('Server', true),
          h(
            'tbody',
            {},
            policy.servers.map((scope) => scopeRow(scope, true)),
          ),
        ),
  ];
}

// ---- refreshing

async function loadOverview(): Promise<void> {
  const overview = await api<Overview>('GET', '/api/overview');
  byId('org').textContent = overview.org;
  if (changed('feeds', overview.feeds)) mount(byId('feeds'), ...renderFeeds(overview.feeds));
  if (changed('rollouts', { rollouts: overview.rollouts, older: overview.olderRollouts }))
    mount(byId('rollouts'), ...renderRollouts(overview));
}

async function loadGrid(): Promise<void> {
  const path = gridPath();
  const page = await api<GridPage>('GET', path);
  // A newer request (filters changed meanwhile) wins.
  if (path !== gridPath()) return;
  renderPager(page);
  if (changed('grid', page)) mount(byId('grid'), ...renderGrid(page));
}

async function loadPolicy(): Promise<void> {
  const policy = await api<PolicyView>('GET', '/api/policy');
  if (changed('policy', policy)) mount(byId('policy'), ...renderPolicy(policy));
}

let refreshing: Promise<void> | undefined;
let again = false;

/** One refresh at a time; asked during one, another follows it. */
async function refresh(): Promise<void> {
  if (refreshing !== undefined) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      const results = await Promise.allSettled([loadOverview(), loadGrid(), loadPolicy()]);
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      const updated = byId('updated');
      if (failure) {
        const reason =
          failure.reason instanceof ApiError && failure.reason.status === 401
            ? 'the function key was refused; open the dashboard again from its URL with ?code='
            : String(failure.reason instanceof Error ? failure.reason.message : failure.reason);
        updated.textContent = `Update failed at ${clock(new Date())}: ${reason}${updated.dataset['last'] ? ` (last updated ${updated.dataset['last']})` : ''}`;
        updated.classList.add('stale');
      } else {
        updated.dataset['last'] = clock(new Date());
        updated.textContent = `Last updated ${updated.dataset['last']}`;
        updated.classList.remove('stale');
      }
    } while (again);
  })();
  try {
    await refreshing;
  } finally {
    refreshing = undefined;
  }
}

function start(): void {
  setUpGridControls();
  byId('confirm-cancel').addEventListener('click', () => byId<HTMLDialogElement>('confirm').close('cancel'));
  byId('confirm-ok').addEventListener('click', () => byId<HTMLDialogElement>('confirm').close('ok'));
  void refresh();
  setInterval(() => void refresh(), refreshMs);
  setInterval(tickBakes, 1000);
}

start();
