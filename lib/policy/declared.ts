import { z } from 'zod';
import { mitigationId, ringName, serverName } from '../model/names.js';
import { onDegradedPolicies, type DeclaredLayers, type PolicyLayer } from '../model/policy.js';
import { definedOnly } from '../defined.js';

const scopeSettings = {
  mitigationsEnabled: z.boolean().optional(),
  blockedMitigations: z.array(mitigationId).optional(),
  /** rollback (default): the agent undoes a change that degrades the server; keep: it reports Degraded and leaves it. */
  onDegraded: z.enum(onDegradedPolicies).optional(),
};

/**
 * Policy as code: the `EMFLEET_POLICY` app setting, loaded from `infra/policy.json` by Bicep.
 * The same schema is exported as JSON Schema for editors (`infra/policy.schema.json`).
 */
export const declaredPolicySchema = z
  .object({
    $schema: z.string().optional(),
    org: z.object(scopeSettings).strict().default({}),
    servers: z.record(serverName, z.object(scopeSettings).strict()).default({}),
    /** Ring name → the servers in it. */
    rings: z.record(ringName, z.array(serverName)).default({}),
  })
  .strict()
  .superRefine((policy, context) => {
    const ringOf = new Map<string, string>();
    for (const [ring, members] of Object.entries(policy.rings)) {
      for (const member of members) {
        const earlier = ringOf.get(member.toLowerCase());
        if (earlier !== undefined && earlier !== ring) {
          context.addIssue({
            code: 'custom',
            path: ['rings', ring],
            message: `server ${member} is already in ring ${earlier}`,
          });
        }
        ringOf.set(member.toLowerCase(), ring);
      }
    }
  });

export type DeclaredPolicy = z.infer<typeof declaredPolicySchema>;

/** Parses the setting's JSON text; errors name the JSON path that is wrong. */
export function parseDeclaredPolicy(
  text: string,
  where: string,
): { ok: true; policy: DeclaredPolicy } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `${where} is not valid JSON: ${(error as Error).message}` };
  }
  const parsed = declaredPolicySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A bad record key is reported by zod as "Invalid key in record"; the key schema's own message says why.
    const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
    return { ok: false, error: `${where} at ${formatPath(issue.path)}: ${inner ?? issue.message}` };
  }
  return { ok: true, policy: parsed.data };
}

/** The rows the declaration stands for: one for the org, one per server it mentions (settings or ring). */
export function declaredLayers(policy: DeclaredPolicy): DeclaredLayers {
  const servers = new Map<string, PolicyLayer>();
  for (const [name, settings] of Object.entries(policy.servers))
    servers.set(name.toLowerCase(), definedOnly(settings));
  for (const [ring, members] of Object.entries(policy.rings)) {
    for (const member of members.map((name) => name.toLowerCase()))
      servers.set(member, { ...servers.get(member), ring });
  }
  return { org: definedOnly(policy.org), servers };
}

/** org.blockedMitigations[1], servers["ex01.contoso.com"]: readable even when keys hold dots. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top)';
  return path
    .map((part, index) => {
      if (typeof part === 'number') return `[${part}]`;
      const text = String(part);
      if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(text)) return index === 0 ? text : `.${text}`;
      return `[${JSON.stringify(text)}]`;
    })
    .join('');
}
