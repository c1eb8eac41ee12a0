import { Command } from 'commander';
import { exitWithError } from './util.js';
import { versionReport } from './version.js';

type Register = (program: Command) => unknown;

/**
 * Each command's module, loaded only when that command runs: `vigil run` then starts without the code of
 * the other commands (the simulator, the demo, replay, the bundle and import tools). Help, and a command
 * name that is not one of these, load them all.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  run: async () => (await import('./run-command.js')).registerRunCommand,
  rules: async () => (await import('./rules-command.js')).registerRulesCommands,
  keys: async () => (await import('./keys-command.js')).registerKeysCommand,
  replay: async () => (await import('./replay-command.js')).registerReplayCommand,
  backtest: async () => (await import('./backtest-command.js')).registerBacktestCommand,
  explain: async () => (await import('./explain-command.js')).registerExplainCommand,
  profiles: async () => (await import('./profiles-command.js')).registerProfilesCommands,
  devices: async () => (await import('./devices-command.js')).registerDevicesCommands,
  actions: async () => (await import('./actions-command.js')).registerActionsCommands,
  sim: async () => (await import('../../firmware-sim/index.js')).registerSimCommand,
  demo: async () => (await import('./demo.js')).registerDemoCommand,
};

/** The command named on the command line: the first argument that is not an option (the program's
 * options take no value). */
function commandsWanted(argv: readonly string[]): string[] {
  const name = argv.slice(2).find((arg) => !arg.startsWith('-'));
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? [name] : Object.keys(COMMANDS);
}

async function main(): Promise<void> {
  const program = new Command('vigil')
    .description(
      'Vigil: an edge event gateway. Devices publish over MQTT, scenarios decide, actions reach devices and the cloud.',
    )
    // Computed only when asked: it may run git, and reports which native addons loaded.
    .option('-V, --version', 'print the version, commit, Node version and the native addons in use')
    .on('option:version', () => {
      process.stdout.write(`${versionReport()}\n`);
      process.exit(0);
    })
    .showHelpAfterError('(add --help for usage)')
    // Program options only before a command: `rules bundle --version N` is the bundle's version.
    .enablePositionalOptions();
  // In the order of `vigil --help`.
  for (const name of commandsWanted(process.argv)) {
    const load = COMMANDS[name];
    if (load) (await load())(program);
  }
  await program.parseAsync(process.argv);
}

const { startupSnapshot } = process.getBuiltinModule('node:v8');
if (startupSnapshot.isBuildingSnapshot()) {
  // The single executable's startup snapshot (docs/binary.md): `run`'s modules are evaluated now, into
  // the snapshot, and the command line is read when the executable starts from it.
  startupSnapshot.setDeserializeMainFunction(
    () => void main().catch((err: unknown) => exitWithError(err, 1)),
  );
  COMMANDS.run?.().catch((err: unknown) => exitWithError(err, 1));
} else {
  // Not a top-level await: the single executable runs the bundle as CommonJS.
  main().catch((err: unknown) => exitWithError(err, 1));
}
