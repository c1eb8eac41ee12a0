import { describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import type { ArbiterCandidate } from '../../src/actions/index.js';
import { policyFromObject } from '../../src/rules/policy.js';
import { encodeCheckpoint, type CheckpointSource } from '../../src/runtime/checkpoint.js';

const MIN = 60_000;

function candidate(scenario: string, actor: string, category: string): ArbiterCandidate {
  const action = {
    id: `${scenario}/${actor}`,
    gateway: 'gw1',
    scenario,
    action: 'notify',
    actor,
    priority: 1,
    category,
    decidedAt: 0,
    eventAt: 0,
    payload: {},
  };
  return { action, to: ['upstream'] };
}

const policy = policyFromObject({
  contact: { max: 2, per: '1h', except: ['support'] },
  cooldown: '10m',
  exclusive: [{ active: 'support', for: '2h', suppress: ['offer'] }],
});

function source(arbiter: CheckpointSource['arbiter']): CheckpointSource {
  return {
    version: 1,
    seq: 7,
    at: 0,
    engine: { version: 1, scenarios: [] },
    arbiter,
    lastSeen: [],
    duplicates: [],
  };
}

describe('Arbiter.checkpointState', () => {
  test('encodes as the snapshot does, and holds the state as it was when taken', () => {
    const arbiter = new Arbiter(policy);
    const ids = ['d1', 'é-2', '😀', '\ud800', 'churn-0'];
    for (const [i, id] of ids.entries()) {
      arbiter.decide(
        [candidate('device-offline', id, 'support'), candidate('hot', id, 'maintenance')],
        i * MIN,
      );
    }
    const snapshot = arbiter.snapshot();
    expect(snapshot.active.length).toBe(ids.length);
    const taken = arbiter.checkpointState();
    // Decided after it was taken, and forgotten: neither shows in what it encodes.
    arbiter.decide([candidate('device-offline', 'late', 'support')], 10 * MIN);
    arbiter.prune(3 * 60 * MIN);
    expect(arbiter.snapshot().active).toEqual([]);
    const fromSnapshot = encodeCheckpoint(source(snapshot));
    const fromLists = encodeCheckpoint(source(taken));
    expect(Buffer.concat(fromLists.chunks)).toEqual(Buffer.concat(fromSnapshot.chunks));
    expect([...taken.active]).toEqual(snapshot.active);
    expect([...taken.cooldowns]).toEqual(snapshot.cooldowns);
  });
});
