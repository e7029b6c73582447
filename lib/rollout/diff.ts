import type { EocsPackage, Mitigation } from '../package/model.js';

export interface PackageDiff {
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly withdrawn: readonly string[];
  readonly unchanged: readonly string[];
}

/**
 * What a newly accepted package changes against the last accepted one, by mitigation id. A
 * mitigation is changed when anything it does or applies to differs (description aside). With no
 * previous package, everything is added. The caller must only diff a package that passed the
 * freshness check: withdrawal removes protection, so it is never inferred from an older package.
 */
export function diffPackages(previous: EocsPackage | undefined, next: EocsPackage): PackageDiff {
  const before = new Map(
    (previous?.mitigations ?? []).map((mitigation) => [mitigation.id, mitigationContent(mitigation)]),
  );
  const after = new Map(next.mitigations.map((mitigation) => [mitigation.id, mitigationContent(mitigation)]));
  const sorted = (ids: Iterable<string>): string[] => [...ids].sort();
  return {
    added: sorted([...after.keys()].filter((id) => !before.has(id))),
    changed: sorted([...after.keys()].filter((id) => before.has(id) && before.get(id) !== after.get(id))),
    withdrawn: sorted([...before.keys()].filter((id) => !after.has(id))),
    unchanged: sorted([...after.keys()].filter((id) => before.get(id) === after.get(id))),
  };
}

/**
 * The diff against a previous package that can no longer be read (it no longer verifies under
 * today's trust settings), from the ids recorded when it was accepted: what it had and the new one
 * lacks is withdrawn; what both have counts as changed, since sameness cannot be shown (reapplying
 * an unchanged mitigation is AlreadyApplied).
 */
export function diffAgainstIds(previousIds: readonly string[], next: EocsPackage): PackageDiff {
  const before = new Set(previousIds);
  const after = new Set(next.mitigations.map((mitigation) => mitigation.id));
  const sorted = (ids: Iterable<string>): string[] => [...ids].sort();
  return {
    added: sorted([...after].filter((id) => !before.has(id))),
    changed: sorted([...after].filter((id) => before.has(id))),
    withdrawn: sorted([...before].filter((id) => !after.has(id))),
    unchanged: [],
  };
}

export function isEmptyDiff(diff: PackageDiff): boolean {
  return diff.added.length === 0 && diff.changed.length === 0 && diff.withdrawn.length === 0;
}

/** What a mitigation does and applies to, as text (its description aside): equal text, same content. */
export function mitigationContent(mitigation: Mitigation): string {
  return JSON.stringify({
    applicability: mitigation.applicability,
    actions: mitigation.actions.map(({ description: _description, ...action }) => action),
  });
}
