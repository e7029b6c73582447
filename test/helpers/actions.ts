import type { MitigationAction } from '../../lib/package/model.js';

type ActionOf<K extends MitigationAction['kind']> = Extract<MitigationAction, { kind: K }>;

/** One action of each kind, as tests of the policy, planner and diff build mitigations from. */
export const rewrite: ActionOf<'IisUrlRewrite'> = {
  kind: 'IisUrlRewrite',
  scope: 'IIS',
  description: 'block the autodiscover SSRF pattern',
  site: 'Default Web Site',
  ruleName: 'EM1 rule',
  ruleXml: '<rule name="EM1 rule"><match url=".*autodiscover.*"/></rule>',
};
export const disablePool: ActionOf<'DisableAppPool'> = {
  kind: 'DisableAppPool',
  scope: 'IIS',
  description: 'stop the pool',
  appPool: 'MSExchangeOWAAppPool',
};
export const disableService: ActionOf<'DisableService'> = {
  kind: 'DisableService',
  scope: 'Service',
  description: 'stop the service',
  service: 'MSExchangeUM',
};
export const ping: ActionOf<'DoNothing'> = {
  kind: 'DoNothing',
  scope: 'Server',
  description: 'Does nothing',
  value: 'DoNothing',
};
