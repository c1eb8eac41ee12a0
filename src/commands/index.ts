export { CommandMetrics } from './command-metrics.js';
export { DeviceCommands, commandTopic } from './device-commands.js';
export type { CommandLink, CommandOutcome, DeviceCommandsOptions } from './device-commands.js';
