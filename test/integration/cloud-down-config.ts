import { fileURLToPath } from 'node:url';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { tempDir } from '../helpers/temp.js';

const RULES = fileURLToPath(new URL('../fixtures/rules/priorities', import.meta.url));

/**
 * A gateway's config on a fresh data directory (removed by `cleanups`), the `priorities` rules, anonymous devices, and
 * a cloud that is not up yet: its port is taken from a broker started and closed, for the test to start the cloud on
 * later. `extra` adds to or replaces the top-level settings.
 */
export async function cloudDownConfig(
  cleanups: Array<() => Promise<unknown>>,
  extra: Record<string, unknown> = {},
): Promise<{ config: Config; cloudPort: number }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const probe = await startLocalBroker({ port: 0 });
  const cloudPort = probe.address.port;
  await probe.close();
  const config = parseConfig({
    gatewayId: 'gw1',
    data: dir.path,
    rules: RULES,
    mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { port: 0 },
    upstream: { url: `mqtt://127.0.0.1:${cloudPort}`, reconnect: '100ms' },
    ...extra,
  });
  return { config, cloudPort };
}
