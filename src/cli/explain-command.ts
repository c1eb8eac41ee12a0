import type { Command } from 'commander';
import { GatewayClient, gatewayInfoPath, isProcessAlive, readGatewayInfo } from '../api/index.js';
import type { DeviceExplanation, ScenarioExplanation } from '../dashboard/index.js';
import { VigilError } from '../shared/index.js';
import { iso } from './run-report.js';
import { exitWithError, helpAfter, parsePositiveInt } from './util.js';

interface ExplainFlags {
  data: string;
  json?: boolean;
  limit: number;
}

export function registerExplainCommand(program: Command): void {
  program
    .command('explain')
    .argument('<device>', 'device id (or any actor: a customer, a site)')
    .description(
      'ask a running gateway where a device stands in every scenario, and why its latest actions were sent or held back',
    )
    .option(
      '--data <dir>',
      'data directory of the running gateway (its gateway.json names the API)',
      './data',
    )
    .option('--json', 'print the answer of GET /api/devices/{id}/explain as it is')
    .option('--limit <n>', 'decisions shown per scenario, newest first', parsePositiveInt, 5)
    .addHelpText(
      'after',
      helpAfter(
        [
          'For each scenario: when it fires, where the device stands now as the scenario kind explains it',
          '(count 3 of 5 within 10m; waiting for B until T; avg 61.2 over the 5m window; the silence deadline),',
          'and its latest decisions with their reasons (sent; suppressed by the contact cap 2 per 1h until T;',
          'exclusive because of a support action at T; suppressed by the cooldown; expired in the outbox).',
          'The state lives in the gateway, so the command asks the running one through its local HTTP API;',
          'the gateway keeps the latest 16 decisions of each of the 2,000 devices decided most recently.',
        ],
        '0 explained, 1 the gateway knows nothing of the device, 2 no running gateway or the request failed.',
      ),
    )
    .action(async (device: string, flags: ExplainFlags) => {
      try {
        process.exitCode = await explainCommand(device, flags);
      } catch (err) {
        exitWithError(err);
      }
    });
}

async function explainCommand(device: string, flags: ExplainFlags): Promise<number> {
  const info = await readGatewayInfo(flags.data);
  if (info === undefined || !isProcessAlive(info.pid)) {
    throw new VigilError(
      'VIGIL_GATEWAY_API',
      `no gateway is running on ${flags.data} (${gatewayInfoPath(flags.data)} ${info === undefined ? 'does not exist' : `names pid ${info.pid}, which is gone`})`,
      {
        hint: 'the state explained lives in a running gateway: start it, or pass its data directory with --data DIR',
      },
    );
  }
  const explained = await new GatewayClient(info).explain(device);
  if (explained === undefined) {
    process.stderr.write(
      `vigil: the gateway knows nothing of ${device}: no profile, not seen since it started, nothing pending or decided\n`,
    );
    return 1;
  }
  if (flags.json === true) process.stdout.write(JSON.stringify(explained, null, 2) + '\n');
  else process.stdout.write(explanationText(explained, flags.limit).join('\n') + '\n');
  return 0;
}

function scenarioLines(device: string, s: ScenarioExplanation, limit: number): string[] {
  const lines = [`${s.scenario} (${s.kind}): ${s.summary}`];
  if (s.groups.length === 0) lines.push('  now: nothing pending');
  for (const g of s.groups) lines.push(`  now: ${g.group === device ? '' : `group ${g.group}: `}${g.state}`);
  for (const d of s.decisions.slice(0, limit)) lines.push(`  ${iso(d.at)} ${d.action}: ${d.why}`);
  if (s.decisions.length > limit) lines.push(`  … and ${s.decisions.length - limit} earlier decisions`);
  return lines;
}

/** The explanation for people: the scenarios with something to say first, then the quiet ones on one line. */
export function explanationText(e: DeviceExplanation, limit: number): string[] {
  const lines = [`${e.device} at ${iso(e.at)}`, ''];
  const busy = e.scenarios.filter((s) => s.groups.length > 0 || s.decisions.length > 0);
  const quiet = e.scenarios.filter((s) => s.groups.length === 0 && s.decisions.length === 0);
  for (const s of busy) lines.push(...scenarioLines(e.device, s, limit), '');
  if (quiet.length > 0)
    lines.push(`nothing pending and no decisions kept in ${quiet.map((s) => s.scenario).join(', ')}`);
  return lines;
}
