import type { Scenario } from '../rules/types.js';
import type { Profile } from '../shared/index.js';

/**
 * The parameters CEL sees as `params` for an actor with `profile`: the scenario's own, or those of the rules'
 * parameter file for the profile's field values (a later field over an earlier one). No copy unless two fields
 * match.
 */
export function paramsOf(sc: Scenario, profile: Profile | undefined): Readonly<Record<string, unknown>> {
  const by = sc.paramsBy;
  if (by === undefined || profile === undefined) return sc.params;
  let params = sc.params;
  let merged = false;
  for (const { field, values } of by) {
    const value = profile[field];
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    const entry = values.get(String(value));
    if (entry === undefined) continue;
    if (params === sc.params) params = entry.params;
    else {
      params = merged ? Object.assign(params, entry.overrides) : { ...params, ...entry.overrides };
      merged = true;
    }
  }
  return params;
}
