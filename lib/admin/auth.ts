/**
 * Who may call the admin API (pure). In Azure (EMFLEET_ADMIN_AUTH=entra) App Service Authentication
 * signs the caller in with Microsoft Entra ID and passes the principal in `x-ms-client-principal`
 * (base64 JSON of the token's claims; the platform strips the header from incoming requests, so a
 * caller cannot forge it). Every route needs one of the app registration's app roles: reads
 * `emfleet.Reader` (or Operator), changes `emfleet.Operator`. The function key alone
 * (EMFLEET_ADMIN_AUTH=functionKey) is for local runs, where there is no sign-in.
 */

import { settingNameOf, type AdminAuthMode } from '../config/index.js';

/** The app roles of the admin API's app registration (infra/README.md says how to create them). */
export const appRoles = { Reader: 'emfleet.Reader', Operator: 'emfleet.Operator' } as const;
export type AdminRole = keyof typeof appRoles;

/** Who the audit names for a caller with the function key only. */
export const functionKeyActor = 'function-key';

export const principalHeader = 'x-ms-client-principal';

export interface Caller {
  /** The Audit table's actor: the signed-in name (with the object id), or `function-key`. */
  readonly actor: string;
  readonly roles: readonly string[];
}

export type Authorization =
  | { readonly ok: true; readonly caller: Caller }
  | {
      readonly ok: false;
      readonly status: 401 | 403;
      readonly error: 'Unauthenticated' | 'Forbidden';
      readonly detail: string;
    };

interface ClientPrincipal {
  readonly auth_typ?: string;
  readonly name_typ?: string;
  readonly role_typ?: string;
  readonly claims?: readonly { readonly typ?: string; readonly val?: string }[];
}

const roleClaims = ['roles', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'];
const nameClaims = [
  'preferred_username',
  'upn',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  'name',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
];
export const objectIdClaims = ['http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid'];

/**
 * Whether a request may use a route that needs `required`: 401 without a sign-in (Entra mode),
 * 403 when the principal lacks the app role; Operator includes Reader.
 *
 * @example authorize({ get: () => null }, 'Reader', 'functionKey') → { ok: true, caller: { actor: 'function-key', roles: [] } }
 */
export function authorize(
  headers: { get(name: string): string | null },
  required: AdminRole,
  mode: AdminAuthMode,
): Authorization {
  if (mode === 'functionKey') return { ok: true, caller: { actor: functionKeyActor, roles: [] } };
  const header = headers.get(principalHeader);
  if (header === null) {
    return {
      ok: false,
      status: 401,
      error: 'Unauthenticated',
      detail: `the admin API needs a Microsoft Entra sign-in (App Service Authentication); the function key alone is for local runs (${settingNameOf.adminAuth}=functionKey)`,
    };
  }
  const principal = parsePrincipal(header);
  if (!principal)
    return {
      ok: false,
      status: 401,
      error: 'Unauthenticated',
      detail: `the ${principalHeader} header is not the platform's base64 JSON principal`,
    };
  const claims = principal.claims ?? [];
  const values = (types: readonly string[]): string[] =>
    claims
      .filter(
        (claim) =>
          claim.typ !== undefined &&
          types.includes(claim.typ) &&
          typeof claim.val === 'string' &&
          claim.val !== '',
      )
      .map((claim) => claim.val!);
  const roles = values([...(principal.role_typ ? [principal.role_typ] : []), ...roleClaims]);
  const name = values([...(principal.name_typ ? [principal.name_typ] : []), ...nameClaims])[0];
  const objectId = values(objectIdClaims)[0];
  const actor =
    name && objectId
      ? `${name} (oid ${objectId})`
      : (name ?? (objectId ? `oid ${objectId}` : 'unnamed principal'));
  const allowed = required === 'Reader' ? [appRoles.Reader, appRoles.Operator] : [appRoles.Operator];
  if (!roles.some((role) => (allowed as readonly string[]).includes(role))) {
    return {
      ok: false,
      status: 403,
      error: 'Forbidden',
      detail: `${actor} needs the app role ${appRoles[required]}${required === 'Reader' ? ` or ${appRoles.Operator}` : ''}; it has ${roles.length > 0 ? roles.join(', ') : 'no app role'} (assign it to the user or group in Microsoft Entra ID, Enterprise applications)`,
    };
  }
  return { ok: true, caller: { actor, roles } };
}

function parsePrincipal(header: string): ClientPrincipal | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as unknown;
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      ('claims' in parsed && !Array.isArray((parsed as ClientPrincipal).claims))
    )
      return undefined;
    return parsed as ClientPrincipal;
  } catch {
    return undefined;
  }
}
