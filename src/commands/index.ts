export {
  CLOUD_COMMAND_SCENARIO,
  CloudCommandMetrics,
  cloudCommandAction,
  cloudCommandOf,
  cloudCommandOutboxId,
  parseCloudCommand,
} from './cloud-command.js';
export type {
  CloudCommand,
  CloudCommandRefusal,
  CloudCommandStatus,
  ParsedCloudCommand,
} from './cloud-command.js';
export { CommandMetrics } from './command-metrics.js';
export { DeviceCommands, commandPayload, commandTopic } from './device-commands.js';
export type { CommandFate, CommandLink, CommandOutcome, DeviceCommandsOptions } from './device-commands.js';
