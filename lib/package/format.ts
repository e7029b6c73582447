/**
 * The EOCS vocabulary in one place. Microsoft has not published the element names for build
 * ranges and the three action kinds; these are emfleet's (docs/package-format.md), kept here
 * so they are easy to change when the real ones are known.
 */
export const DSIG_NS = 'http://www.w3.org/2000/09/xmldsig#';

export const element = {
  root: 'EOCS',
  config: 'Config',
  actionList: 'ActionList',
  action: 'Action',
  value: 'Value',
  applicability: 'Applicability',
  range: 'Range',
  iisRule: 'rule',
  probe: 'Probe',
  probeHeader: 'Header',
  expectedDown: 'ExpectedDown',
  signature: 'Signature',
} as const;

/**
 * `signingTime` is not among them: a time the signer writes proves nothing. The signing time is
 * the RFC 3161 time stamp's (verify.ts); packages signed before emfleet used time stamps list
 * their `signingTime` attribute as unknown.
 */
export const rootAttributes = ['version', 'sequence'] as const;
export const configAttributes = ['id', 'desc'] as const;
export const actionAttributes = ['type', 'scope', 'desc'] as const;
export const rangeAttributes = ['min', 'max'] as const;
export const iisValueAttributes = ['site'] as const;
export const probeAttributes = ['method', 'path', 'expect', 'cookie'] as const;
export const probeHeaderAttributes = ['name', 'value'] as const;
export const expectedDownAttributes = ['endpoint'] as const;

/** What a `<Probe>` says the rule must do to its request. */
export const probeExpectations = ['blocked', 'passed'] as const;
export type ProbeExpectation = (typeof probeExpectations)[number];

/** Caps that keep a signed package from turning the agent into a request generator. */
export const probeLimits = {
  perAction: 20,
  headersPerProbe: 20,
  expectedDownPerAction: 20,
  pathLength: 2048,
  valueLength: 4096,
} as const;

/** Headers a probe may not set: they frame the request (Node sets them) or have their own attribute (cookie). */
export const forbiddenProbeHeaders = [
  'content-length',
  'transfer-encoding',
  'connection',
  'cookie',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'keep-alive',
] as const;

export const actionTypes = ['DoNothing', 'IisUrlRewrite', 'DisableAppPool', 'DisableService'] as const;
export type ActionType = (typeof actionTypes)[number];

export const defaultIisSite = 'Default Web Site';

/** Microsoft's feed defaults (DESIGN §4). */
export const microsoftSignerSubjectCn = 'Microsoft Exchange XML Signing';
export const microsoftSignerEku = '1.3.6.1.4.1.311.76.57.1.11';

/** Algorithms a package may use. Everything else is UnsupportedAlgorithm, whatever xml-crypto knows. */
export const algorithms = {
  canonicalization: {
    c14n: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315',
    excC14n: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  },
  envelopedSignature: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  signature: {
    rsaSha256: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    rsaSha512: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
  },
  digest: {
    sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
    sha512: 'http://www.w3.org/2001/04/xmlenc#sha512',
  },
} as const;
