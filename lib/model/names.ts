import { z } from 'zod';

/**
 * The names emfleet gives and accepts: servers, orgs, rings, sites, mitigations, operations. Each
 * rule is also what keeps the name safe where it is stored (a Tables key, a file name, a URL path).
 */

/** Characters Azure Tables forbids in keys, plus control characters. */
const forbiddenKeyCharacters = /[/\\#?\u0000-\u001f\u007f-\u009f]/;

/** Any name used as a Tables partition or row key (a feed, a rollout id). */
export const tableKey = z
  .string()
  .min(1, 'must not be empty')
  .max(512)
  .refine((key) => !forbiddenKeyCharacters.test(key), 'must not contain / \\ # ? or control characters');

export const serverName = z
  .string()
  .regex(
    /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$/,
    'must be a host name or FQDN (letters, digits, -, dots)',
  )
  .max(253);
/** Server names are case-insensitive; rows hold them in lower case. */
export const storedServerName = serverName.refine(
  (name) => name === name.toLowerCase(),
  'must be lower case (emfleet stores server names in lower case)',
);
export const orgName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be letters, digits, _ or - (at most 63)');
export const ringName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be letters, digits, _ or - (at most 63)');
export const siteName = z
  .string()
  .max(128)
  .refine((site) => !forbiddenKeyCharacters.test(site), 'must not contain control characters');

/** Mitigation ids: what OCS uses (PING1, EM1...) and safe as a Tables key and a file name. */
export const mitigationIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const mitigationId = z
  .string()
  .regex(mitigationIdPattern, 'must be a mitigation id such as EM1 (letters, digits, . _ -)');

/** Operation ids name one (rollout, server, mitigation set); a retried request reuses its id. */
export const operationId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'must be letters, digits, . _ : - (at most 128)');
