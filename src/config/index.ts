export type { Config, ConfigInput } from './schema.js';
export { loadConfig, parseConfig, type Overrides } from './load.js';
