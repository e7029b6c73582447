import {
  declarations,
  isType,
  literalValue,
  objectProperties,
  property,
  problemAt,
  resources,
  stringLiteral,
  type BicepDocument,
  type InfraProblem,
} from './bicep.js';

/**
 * No secret is written into the templates, the parameters file or a sample: keys come from the
 * resources themselves (listKeys into Key Vault), from Key Vault references, or from the
 * deployer's environment. The text checks read any file, comments included; the others read the
 * Bicep tree.
 */
const secretPatterns: readonly { readonly what: string; readonly pattern: RegExp }[] = [
  { what: 'a storage account key (AccountKey=)', pattern: /AccountKey=[^;'"\s]+/gi },
  { what: 'a shared access key (SharedAccessKey=)', pattern: /SharedAccessKey=[^;'"\s]+/gi },
  {
    what: 'a shared access signature',
    pattern: /SharedAccessSignature\s+sr=|[?&]sig=[A-Za-z0-9%+/=]{16,}/gi,
  },
  { what: 'a private key', pattern: /-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----/g },
  {
    what: 'a webhook URL (it is its own credential)',
    pattern:
      /https:\/\/(?:hooks\.slack\.com\/services\/|[A-Za-z0-9-]+\.webhook\.office\.com\/webhookb2\/)\S+/gi,
  },
  { what: 'a base64 key', pattern: /[A-Za-z0-9+/]{40,}={0,2}/g },
];

/** Long base64 runs are keys when they mix cases and digits; paths and hex fingerprints do not. */
function looksLikeKey(what: string, match: string): boolean {
  if (what !== 'a base64 key') return true;
  return /[a-z]/.test(match) && /[A-Z]/.test(match) && /[0-9]/.test(match);
}

export function secretTextProblems(file: string, text: string): InfraProblem[] {
  const problems: InfraProblem[] = [];
  text.split('\n').forEach((line, index) => {
    for (const { what, pattern } of secretPatterns) {
      for (const match of line.matchAll(pattern)) {
        if (looksLikeKey(what, match[0]))
          problems.push({
            file,
            line: index + 1,
            column: match.index + 1,
            message: `${what} is written here; keep it in Key Vault or the deployer's environment`,
          });
      }
    }
  });
  return problems;
}

/** Property names whose literal values would be credentials. */
const credentialProperty =
  /^(password|adminPassword|clientSecret|secret|accountKey|sharedAccessKey|primaryKey|secondaryKey|connectionString)$/i;

/**
 * In a .bicep file: @secure() parameters without literal defaults, Key Vault secrets and
 * credential-named properties without literal values.
 */
export function bicepSecretProblems(document: BicepDocument): InfraProblem[] {
  const problems: InfraProblem[] = [];
  for (const declaration of declarations(document).values()) {
    if (declaration.kind !== 'param' || !declaration.decorators.includes('secure') || !declaration.value)
      continue;
    const literal = literalValue(declaration.value);
    if (literal?.value !== '' && literal !== undefined)
      problems.push(
        problemAt(
          document,
          declaration.value,
          `@secure() parameter ${declaration.name} has a literal default; leave it empty and pass the value at deployment`,
        ),
      );
  }
  for (const secret of resources(document).filter((resource) =>
    isType(resource, 'Microsoft.KeyVault/vaults/secrets'),
  )) {
    const value = property(property(secret.body, 'properties'), 'value');
    if (value && literalValue(value) !== undefined)
      problems.push(
        problemAt(
          document,
          value,
          `Key Vault secret ${secret.symbol} has a literal value; take it from a @secure() parameter or the resource's listKeys()`,
        ),
      );
  }
  for (const object of document.root.descendantsOfType('object')) {
    for (const { key, value } of objectProperties(object)) {
      const text = stringLiteral(value);
      if (credentialProperty.test(key) && text !== undefined && text !== '')
        problems.push(problemAt(document, value, `${key} has a literal value`));
    }
  }
  return problems;
}

/** The names of a template's @secure() parameters. */
export function secureParameters(template: BicepDocument): Set<string> {
  return new Set(
    [...declarations(template).values()]
      .filter((declaration) => declaration.kind === 'param' && declaration.decorators.includes('secure'))
      .map((declaration) => declaration.name),
  );
}

/** The template a parameters file is for (`using '...'`), relative to the parameters file. */
export function usingTarget(parameters: BicepDocument): string | undefined {
  return stringLiteral(parameters.root.descendantsOfType('using_statement')[0]?.namedChildren[0]);
}

/**
 * In a .bicepparam file: a @secure() parameter of its template gets no literal, but
 * readEnvironmentVariable(...) or az.getSecret(...).
 */
export function parameterFileSecretProblems(
  parameters: BicepDocument,
  secure: ReadonlySet<string>,
): InfraProblem[] {
  const problems: InfraProblem[] = [];
  // parseBicep reads `param NAME = value` as `var`: see there.
  for (const assignment of declarations(parameters).values()) {
    if (assignment.kind !== 'var' || !secure.has(assignment.name) || !assignment.value) continue;
    const literal = literalValue(assignment.value);
    if (literal !== undefined && literal.value !== '')
      problems.push(
        problemAt(
          parameters,
          assignment.value,
          `@secure() parameter ${assignment.name} is given a literal; use readEnvironmentVariable() or az.getSecret()`,
        ),
      );
  }
  return problems;
}

/** Sample settings whose names say they hold credentials must be empty. */
const credentialSetting = /(KEY|SECRET|PASSWORD|TOKEN)$/i;

export function sampleSettingProblems(file: string, text: string): InfraProblem[] {
  const values = (JSON.parse(text) as { Values?: Record<string, unknown> }).Values ?? {};
  const problems: InfraProblem[] = [];
  for (const [name, value] of Object.entries(values)) {
    if (!credentialSetting.test(name) || value === '') continue;
    const offset = text.indexOf(JSON.stringify(name));
    const before = text.slice(0, Math.max(0, offset)).split('\n');
    problems.push({
      file,
      line: before.length,
      column: before.at(-1)!.length + 1,
      message: `${name} holds a credential; the sample leaves it empty`,
    });
  }
  return problems;
}
