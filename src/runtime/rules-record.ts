import { createHash } from 'node:crypto';
import { compileRuleFiles, type RuleSet } from '../rules/index.js';
import type { RulesRecord } from './journal-records.js';

/** The journal record of `rules`: the files they were compiled from, and a hash that names them. */
export function rulesRecordOf(rules: RuleSet, source: RulesRecord['source'], version: number): RulesRecord {
  const files = [...(rules.sources ?? [])].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hash = createHash('sha256');
  for (const f of files) hash.update(f.path).update('\u0000').update(f.text).update('\u0000');
  return { source, version, hash: hash.digest('hex'), files };
}

/** Compiles the rules a record names, as they were compiled when it was written. */
export function rulesOfRecord(record: RulesRecord): RuleSet {
  const compiled = compileRuleFiles(record.files);
  if (!compiled.ok) {
    throw new Error(
      `the rules of journal record ${record.hash.slice(0, 12)} no longer compile: ${compiled.problems[0]?.message ?? ''}`,
    );
  }
  return compiled.rules;
}
