import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A cloud broker that only speaks TLS with client certificates signed by the test CA, as AWS IoT Core does. */
async function tlsCloud(pki: TestPki): Promise<Broker> {
  const cloud = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 1024 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: { onPublish: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
    tls: {
      host: '127.0.0.1',
      port: 0,
      cert: await readFile(pki.serverCert),
      key: await readFile(pki.serverKey),
      ca: await readFile(pki.caCert),
    },
  });
  cleanups.push(() => cloud.close());
  return cloud;
}

async function gateway(
  data: string,
  upstream: string,
  tls: { ca?: string; cert?: string; key?: string },
): Promise<Gateway> {
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data,
      mqtt: { host: '127.0.0.1', port: 0 },
      http: { port: 0 },
      upstream: { url: upstream, reconnect: '200ms', tls },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gw.stop());
  return gw;
}

describe('the upstream over TLS with a client certificate', () => {
  test('actions reach a cloud broker that requires client certificates; without one the uplink stays down', async () => {
    const dir = await tempDir('vigil-uptls-');
    cleanups.push(() => dir.remove());
    const pki = await makePki(dir.path);
    const cloud = await tlsCloud(pki);
    const url = `mqtts://127.0.0.1:${cloud.tlsAddress?.port ?? 0}`;
    const consumerCert = await pki.client('consumer');
    const atCloud = await Collector.connect(url, ['vigil/gw1/actions'], {
      ca: await readFile(pki.caCert),
      cert: await readFile(consumerCert.cert),
      key: await readFile(consumerCert.key),
    });
    cleanups.push(() => atCloud.close());

    const gwCert = await pki.client('gw1');
    const gw = await gateway(`${dir.path}/data`, url, { ca: pki.caCert, cert: gwCert.cert, key: gwCert.key });
    await gw.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    const secret = await new CredentialStore(gw.store.sublevels.creds).add('dev-1');
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
      clientId: 'dev-1',
      username: 'dev-1',
      password: secret,
      reconnectPeriod: 0,
    });
    cleanups.push(() => device.endAsync());
    await device.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 61 }), { qos: 1 });
    await atCloud.waitFor((m) => m.length === 1, 10_000, 'the action at the TLS cloud');
    expect(atCloud.json()[0]).toMatchObject({ scenario: 'overheat', actor: 'dev-1' });

    // The same, trusting the CA but with no certificate of its own: the cloud refuses the handshake.
    const bare = await gateway(`${dir.path}/data-bare`, url, { ca: pki.caCert });
    await new Promise((r) => setTimeout(r, 1_000));
    const up = await bare.metrics.upstreamConnected.get();
    expect(up.values[0]?.value ?? 0).toBe(0);
  });

  test('a certificate without its key, or an unreadable file, stops start-up with the setting named', async () => {
    const dir = await tempDir('vigil-uptls-');
    cleanups.push(() => dir.remove());
    const pki = await makePki(dir.path);
    await expect(
      gateway(`${dir.path}/data`, 'mqtts://127.0.0.1:1', { cert: pki.serverCert }),
    ).rejects.toThrow(/upstream\.tls\.cert and upstream\.tls\.key go together/);
    await expect(
      gateway(`${dir.path}/data`, 'mqtts://127.0.0.1:1', { ca: `${dir.path}/missing.pem` }),
    ).rejects.toThrow(/upstream\.tls\.ca: cannot read/);
  });
});
