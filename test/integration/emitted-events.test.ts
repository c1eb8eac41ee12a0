import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { replayJournal } from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';
import { OnboardingGateway } from './onboarding-gateway.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a business event emitted for another actor (rules/examples/grouped-onboarding)', () => {
  test("the customer's welcome carries the name and e-mail of a profile read from LevelDB, and replay --journal decides it again with the same id", async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const run = await OnboardingGateway.start(tmp.path);
    cleanups.push(() => run.stop());
    await run.importProfiles();
    // A fresh process: the customers' profiles are in LevelDB and nowhere else.
    await run.restart();
    expect(run.gateway.store.profiles.peek('cust-1').hit).toBe(false);
    expect(run.gateway.store.profiles.peek('cust-2').hit).toBe(false);

    // Each record comes from another system, none of them the customer: the group key is.
    await run.record('crm', 'account-created', { customerId: 'cust-1' });
    await run.record('billing', 'contract-created', { customerId: 'cust-1', plan: 'gold' });
    await run.record('router-17', 'device-assigned', { customerId: 'cust-1', model: 'r7' });
    await run.record('billing', 'contract-created', { customerId: 'cust-2', plan: 'basic' });
    await run.record('crm', 'account-created', { customerId: 'cust-2' });
    await run.record('stb-4', 'device-assigned', { customerId: 'cust-2', model: 's4' });
    const welcomes = await run.welcomes(2);
    expect(welcomes).toMatchObject([
      {
        action: 'send-welcome',
        actor: 'cust-1',
        payload: { name: 'Ada Lovelace', email: 'ada@example.com', plan: 'gold' },
      },
      { action: 'send-welcome', actor: 'cust-2', payload: { name: 'customer', email: 'grace@example.com' } },
    ]);
    await run.gateway.stop();

    const replayed = await replayJournal({
      dir: join(tmp.path, 'journal'),
      gateway: 'gw1',
      logger: captureLogs().logger,
    });
    const again = replayed?.actions.filter((a) => a.scenario === 'welcome') ?? [];
    expect(again.map((a) => [a.id, a.actor, a.payload])).toEqual(
      welcomes.map((a) => [a.id, a.actor, a.payload]),
    );
    expect(again.every((a) => a.suppressed === undefined)).toBe(true);
    expect(replayed?.unprofiled).not.toContain('cust-1');
  });
});
