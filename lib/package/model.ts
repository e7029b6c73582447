import type { BuildRange } from '../model/build.js';
import type { ActionType, ProbeExpectation } from './format.js';

/** The typed form of an EOCS document; built only from signed content. */
export interface EocsPackage {
  readonly version: string;
  /**
   * The trusted signing time: the genTime of the package's RFC 3161 time stamp, verified against a
   * timestamp anchor (set by the verifier, never read from the content). Absent without one.
   */
  readonly signingTime?: Date;
  /** Monotonic number for the organization's own feeds (root attribute `sequence`). */
  readonly sequence?: number;
  readonly mitigations: readonly Mitigation[];
  /** Elements and attributes emfleet does not know, by path: kept visible, never acted on. */
  readonly unknown: readonly string[];
}

export interface Mitigation {
  readonly id: string;
  readonly description: string;
  /** Empty: applies to every build. */
  readonly applicability: readonly BuildRange[];
  readonly actions: readonly MitigationAction[];
}

interface ActionBase {
  readonly scope: string;
  readonly description: string;
  /**
   * Health endpoints (e.g. `/owa/healthcheck.htm`) this action takes down by design (`<ExpectedDown>`):
   * the agent does not count them as degraded. Absent when none is declared.
   */
  readonly expectedDown?: readonly string[];
}

/** A request the agent sends after applying a rewrite rule, and what the rule must do to it (`<Probe>`). */
export interface ProbeSpec {
  readonly method: string;
  /** Path and query, as sent on the wire, relative to the server's own base URL. */
  readonly path: string;
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly cookie?: string;
  readonly expect: ProbeExpectation;
}

export type MitigationAction =
  | (ActionBase & { readonly kind: 'DoNothing'; readonly value: string })
  | (ActionBase & {
      readonly kind: 'IisUrlRewrite';
      readonly site: string;
      readonly ruleName: string;
      /** The `<rule>` element exactly as signed (canonical form). */
      readonly ruleXml: string;
      /** Requests that prove the rule works; absent: the agent's built-in set for the mitigation, if any. */
      readonly probes?: readonly ProbeSpec[];
    })
  | (ActionBase & { readonly kind: 'DisableAppPool'; readonly appPool: string })
  | (ActionBase & { readonly kind: 'DisableService'; readonly service: string })
  | (ActionBase & {
      readonly kind: 'Unsupported';
      /** The `type` attribute as written. */
      readonly type: string;
      /** Why it is not supported: unknown type or attributes. */
      readonly why: string;
    });

export type ActionKind = MitigationAction['kind'];

export function isSupportedActionType(type: string): type is ActionType {
  return (
    type === 'DoNothing' || type === 'IisUrlRewrite' || type === 'DisableAppPool' || type === 'DisableService'
  );
}
