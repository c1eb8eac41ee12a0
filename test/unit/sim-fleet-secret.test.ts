import { expect, test } from 'vitest';
import { credentialOf, deviceSecret } from '../../firmware-sim/fleet-secret.js';
import { simOptionsFromFlags, type SimFlags } from '../../firmware-sim/command.js';
import { secretMatches } from '../../src/credentials/index.js';

test('a fleet secret gives each device its own secret, and the profile carries only its hash', () => {
  const a = deviceSecret('fleet-secret-for-tests', 'dev-1');
  const b = deviceSecret('fleet-secret-for-tests', 'dev-2');
  expect(a).not.toEqual(b);
  expect(a.length).toBeGreaterThanOrEqual(32);
  expect(deviceSecret('fleet-secret-for-tests', 'dev-1')).toEqual(a);
  const credential = credentialOf('fleet-secret-for-tests', 'dev-1');
  expect(credential).not.toContain(a);
  expect(secretMatches(credential, a)).toBe(true);
  expect(secretMatches(credential, b)).toBe(false);
});

test('--fleet-secret makes the simulated devices present their derived secrets', () => {
  const flags: SimFlags = {
    url: 'mqtt://127.0.0.1:1',
    devices: 2,
    rate: 1,
    duration: 1000,
    format: 'json',
    qos: '0',
    seed: 1,
    progress: 0,
  };
  expect(simOptionsFromFlags(flags).credentials).toBeUndefined();
  const opts = simOptionsFromFlags({ ...flags, fleetSecret: 'fleet-secret-for-tests' });
  expect(opts.credentials?.('dev-7')).toEqual({
    username: 'dev-7',
    password: deviceSecret('fleet-secret-for-tests', 'dev-7'),
  });
});
