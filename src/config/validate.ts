import type { z } from 'zod';
import { ConfigError } from '../shared/index.js';
import { configSchema, type Config } from './schema.js';

/** Validates an already-read configuration object, filling in the defaults. */
export function parseConfig(raw: unknown, origin = 'configuration'): Config {
  // Parsed once per start: zod's generated fast path (`new Function` per object) would cost more than it saves.
  const result = configSchema.safeParse(raw, { jitless: true });
  if (result.success) return result.data;
  throw new ConfigError(`${origin}: ${describeIssues(result.error.issues)}`);
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.join('.') || '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length > 0 ? ` in ${key}` : '';
        return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}${where}`;
      }
      return `${key}: ${issue.message}`;
    })
    .join('; ');
}
