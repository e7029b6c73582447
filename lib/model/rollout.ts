/** The words of a rollout (DESIGN §7): its states, what it does, and its wave profile. */

export const rolloutStates = [
  'Planned',
  'Running',
  'Baking',
  'Paused',
  'Halted',
  'Aborted',
  'Completed',
] as const;
export type RolloutState = (typeof rolloutStates)[number];

/** Not ended (Halted, Aborted and Completed are): the rollout may still send work, and its feed starts no other rollout meanwhile. */
const activeStates = ['Planned', 'Running', 'Baking', 'Paused'] as const satisfies readonly RolloutState[];

export function isActive(state: RolloutState): boolean {
  return (activeStates as readonly RolloutState[]).includes(state);
}

/** The states a paused rollout goes back to on resume. */
export const resumableStates = ['Planned', 'Running', 'Baking'] as const satisfies readonly RolloutState[];
export type ResumableState = (typeof resumableStates)[number];

/** What a rollout does to the mitigations it names. */
export const rolloutOperations = ['apply', 'remove'] as const;
export type RolloutOperation = (typeof rolloutOperations)[number];

/** The wave profile: the default waves, or the emergency profile's fewer waves and shorter bake. */
export const rolloutProfiles = ['default', 'emergency'] as const;
export type RolloutProfile = (typeof rolloutProfiles)[number];

/** Where one server's operation stands: the agent's reply and the Results row say the same. */
export const operationStatuses = ['InProgress', 'Completed'] as const;
export type OperationStatus = (typeof operationStatuses)[number];
