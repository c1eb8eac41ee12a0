export * from './types.js';
export * from './errors.js';
export * from './duration.js';
export * from './byte-size.js';
export * from './expression.js';
export * from './topics.js';
export * from './formats.js';
export * from './release.js';
