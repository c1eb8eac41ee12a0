import { compileRuleFiles } from '../../src/rules/index.js';

/**
 * One scenario, `quiet`: a device that sends no heartbeat for 5 minutes gets `check-device` upstream. The rules the
 * journal and checkpoint tests run a decision loop with, where what is decided matters less than that it is.
 */
function compileQuietRules() {
  const loaded = compileRuleFiles([
    {
      path: 'quiet.yaml',
      text: 'id: quiet\nwhen: { absent: heartbeat, for: 5m }\nthen: { action: check-device, to: [upstream] }\n',
    },
  ]);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

export const QUIET_RULES = compileQuietRules();
