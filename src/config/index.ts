export { configSchema, type Config, type ConfigInput } from './schema.js';
export { loadConfig, parseConfig, ENV_KEYS, type Overrides } from './load.js';
