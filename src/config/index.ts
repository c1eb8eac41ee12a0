export type { Config, ConfigInput } from './schema.js';
export { loadConfig, type Overrides } from './load.js';
export { parseConfig } from './validate.js';
