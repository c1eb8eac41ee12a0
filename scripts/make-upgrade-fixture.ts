// Makes test/fixtures/upgrade/<tag>-data.tar.gz: a data directory written by a released gateway, for the
// upgrade test (test/e2e/upgrade.test.ts). The tag is checked out in a temporary worktree and built; that
// gateway runs with a cloud it cannot reach, simulated devices publish, profiles are imported, and it is
// stopped (SIGTERM, as an upgrade stops it) while it still holds:
//   - actions for the cloud in the outbox and a command for a device in the command outbox,
//   - a device's durable MQTT session (clean: false, subscribed to its commands),
//   - silence timers that have not fired yet, in the checkpoint and the journal,
//   - profiles in LevelDB (imported through the gateway, so recorded in the journal too).
// The archive holds `data/` and the `rules/` it ran with. What it holds is written to `<tag>-data.json`
// beside it, which the test reads.
//
//   node_modules/.bin/node --import tsx scripts/make-upgrade-fixture.ts [--tag v0.1.0]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({ options: { tag: { type: 'string', default: 'v0.1.0' } } });
const TAG = values.tag;
const ROOT = resolve(import.meta.dirname, '..');
const OUT_DIR = join(ROOT, 'test/fixtures/upgrade');

/** Short periods, so that the test sees the silences end within seconds of starting the upgraded gateway. */
const FIXTURE_RULES: Record<string, string> = {
  'overheat.yaml': `id: overheat
priority: 70
category: maintenance
when:
  event: telemetry
  where: data.temp > profile.maxTemp
then:
  action: inspect-device
  to: [upstream, device]
  payload:
    temp: data.temp
    site: 'has(profile.site) ? profile.site : "unknown"'
`,
  'device-offline.yaml': `id: device-offline
priority: 90
category: support
when:
  absent: any
  for: 4s
then:
  action: device-offline
  to: [upstream]
  payload:
    lastSeen: last.at
`,
};

const PROFILES = [
  { id: 'dev-hot', maxTemp: 50, site: 'north' },
  { id: 'dev-cmd', maxTemp: 50, site: 'south' },
  { id: 'dev-quiet', maxTemp: 50, site: 'east' },
];

function run(cmd: string, args: string[], cwd: string): string {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

async function startGateway(cli: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [cli, 'run', '--mqtt-host', '127.0.0.1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`gateway did not start:\n${out}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /mqtt listening on \S+:(\d+)/.exec(out);
      if (m && /http listening/.test(out)) {
        clearTimeout(timer);
        res(Number(m[1]));
      }
    });
    child.once('exit', (code) => rej(new Error(`gateway exited with ${code}:\n${out}`)));
  });
  return { child, port };
}

async function device(port: number, id: string, clean = true): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, clean, reconnectPeriod: 0 });
}

async function traffic(port: number, cli: string, scene: string, data: string): Promise<void> {
  const profiles = join(scene, 'profiles.ndjson');
  await writeFile(profiles, PROFILES.map((p) => JSON.stringify(p)).join('\n') + '\n');
  run(process.execPath, [cli, 'profiles', 'import', profiles, '--data', data], scene);
  // dev-cmd keeps a durable session subscribed to its commands, overheats, and goes away: the command waits.
  const cmd = await device(port, 'dev-cmd', false);
  await cmd.subscribeAsync('devices/dev-cmd/commands/#', { qos: 1 });
  await cmd.publishAsync('devices/dev-cmd/events/telemetry', JSON.stringify({ temp: 61 }), { qos: 1 });
  await cmd.endAsync();
  // Past a checkpoint (every second), then more: some state is in the checkpoint, some only in the journal.
  await new Promise((r) => setTimeout(r, 1_500));
  for (const id of ['dev-hot', 'dev-quiet']) {
    const d = await device(port, id);
    const temp = id === 'dev-hot' ? 72 : 20;
    await d.publishAsync(`devices/${id}/events/telemetry`, JSON.stringify({ temp }), { qos: 1 });
    await d.endAsync();
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'vigil-fixture-'));
  const src = join(work, 'src');
  try {
    run('git', ['worktree', 'add', '--detach', src, TAG], ROOT);
    await symlink(await realpath(join(ROOT, 'node_modules')), join(src, 'node_modules'));
    console.log(`building ${TAG} in ${src}`);
    run('npm', ['run', 'build'], src);
    const version = run(process.execPath, [join(src, 'dist/cli.js'), '--version'], src).split('\n')[0];

    const scene = join(work, 'scene');
    const rules = join(scene, 'rules');
    await mkdir(rules, { recursive: true });
    for (const [name, text] of Object.entries(FIXTURE_RULES)) await writeFile(join(rules, name), text);
    const config = join(scene, 'vigil.yaml');
    await writeFile(config, 'durability:\n  checkpointInterval: 1s\n');
    const data = join(scene, 'data');
    const cli = join(src, 'dist/cli.js');
    // Port 9 on loopback: nothing listens, so every action stays in the outbox.
    const args = ['--allow-anonymous', '--config', config, '--mqtt-port', '0', '--http-port', '0'];
    args.push('--data', data, '--rules', rules, '--upstream', 'mqtt://127.0.0.1:9', '--gateway-id', 'gw1');
    const gateway = await startGateway(cli, args);
    const startedAt = Date.now();
    await traffic(gateway.port, cli, scene, data);
    const exited = new Promise((r) => gateway.child.once('exit', r));
    gateway.child.kill('SIGTERM');
    const code = await exited;
    const stoppedAt = Date.now();
    if (code !== 0) throw new Error(`the gateway exited with ${String(code)}`);
    if (stoppedAt - startedAt > 4_000) throw new Error('too slow: the silences ended before the stop');

    await mkdir(OUT_DIR, { recursive: true });
    const archive = join(OUT_DIR, `${TAG}-data.tar.gz`);
    run('tar', ['--sort=name', '--owner=0', '--group=0', '-czf', archive, 'data', 'rules'], scene);
    const about = { tag: TAG, version, gateway: 'gw1', profiles: PROFILES, stoppedAt };
    await writeFile(join(OUT_DIR, `${TAG}-data.json`), JSON.stringify(about, null, 2) + '\n');
    console.log(`wrote ${archive}`);
  } finally {
    spawnSync('git', ['worktree', 'remove', '--force', src], { cwd: ROOT });
    await rm(work, { recursive: true, force: true });
  }
}

await main();
