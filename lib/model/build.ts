import { z } from 'zod';

/**
 * Exchange builds (15.2.1544.4) and the applicability ranges of a mitigation.
 * Builds compare numerically part by part, never as strings.
 */
export type ExchangeBuild = readonly [major: number, minor: number, build: number, revision: number];

export interface BuildRange {
  readonly min: ExchangeBuild;
  readonly max: ExchangeBuild;
}

export type Applicability = 'Applies' | 'Fixed' | 'NotApplicable';

const buildPattern = /^(\d{1,5})\.(\d{1,5})\.(\d{1,5})\.(\d{1,5})$/;

/** Returns undefined for anything that is not four dot-separated numbers. */
export function parseBuild(text: string): ExchangeBuild | undefined {
  const match = buildPattern.exec(text.trim());
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3]), Number(match[4])];
}

/** A build as text (a Servers row, an agent's config, a CLI flag): four dot-separated numbers. */
export const exchangeBuild = z
  .string()
  .refine((text) => parseBuild(text) !== undefined, 'must be an Exchange build such as 15.2.1544.4');

export function formatBuild(build: ExchangeBuild): string {
  return build.join('.');
}

export function compareBuilds(a: ExchangeBuild, b: ExchangeBuild): number {
  for (let part = 0; part < 4; part++) {
    const difference = a[part]! - b[part]!;
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}

function sameLine(a: ExchangeBuild, b: ExchangeBuild): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

/**
 * No ranges: applies to every build. Inside any range: applies. Above the `max` of a range on the
 * same major.minor line (and inside none): fixed by an update. Otherwise: not applicable.
 *
 * @example evaluateApplicability([{min: 15.1.0.0, max: 15.1.2507.15}], 15.1.2507.16) === 'Fixed'
 */
export function evaluateApplicability(ranges: readonly BuildRange[], build: ExchangeBuild): Applicability {
  if (ranges.length === 0) return 'Applies';
  if (ranges.some((range) => compareBuilds(range.min, build) <= 0 && compareBuilds(build, range.max) <= 0)) {
    return 'Applies';
  }
  if (ranges.some((range) => sameLine(range.max, build) && compareBuilds(build, range.max) > 0))
    return 'Fixed';
  return 'NotApplicable';
}
