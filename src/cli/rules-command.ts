import { InvalidArgumentError, type Command } from 'commander';
import { checkRules, type RulesCheck } from '../rules/index.js';
import { formatProblem } from '../shared/index.js';
import { registerBundleCommands } from './bundle-command.js';
import { exitWithError, helpAfter } from './util.js';

type Format = 'text' | 'json';

function parseFormat(value: string): Format {
  if (value === 'text' || value === 'json') return value;
  throw new InvalidArgumentError('expected text or json');
}

export function registerRulesCommands(program: Command): Command {
  const rules = program.command('rules').description('check and package rule files');
  rules
    .command('check')
    .argument('<path>', 'rules directory (scenarios, templates/, policy.yaml, schema.yaml), or one rule file')
    .description('compile the rules and report every problem at once, as file:line:col: message with a hint')
    .option('--format <format>', 'text, or json for CI', parseFormat, 'text' as Format)
    .addHelpText(
      'after',
      helpAfter(
        [
          'A file is checked with the directory it belongs to (its templates, schema and the events other',
          "scenarios emit); only that file's problems are reported. With a schema file in the directory, every",
          'expression is type-checked against the event fields and profile fields it declares.',
        ],
        '0 when the rules compile, 1 when there are problems, 2 on a usage error.',
      ),
    )
    .action(async (path: string, flags: { format: Format }) => {
      try {
        const result = await checkRules(path);
        if (flags.format === 'json') process.stdout.write(`${JSON.stringify(checkJson(path, result))}\n`);
        else process.stderr.write(checkText(path, result));
        if (result.problems.length > 0) process.exitCode = 1;
      } catch (err) {
        exitWithError(err);
      }
    });
  registerBundleCommands(rules);
  return rules;
}

/** What the check says of types: checked against a schema, or not (and why). */
function typesLine(result: RulesCheck): string {
  return result.schema !== undefined
    ? `types checked against ${result.schema}`
    : `no schema in ${result.dir}: syntax and references checked, types not (add a schema.yaml to check them)`;
}

/** Every problem as `file:line:col: message`, its hint indented below, then a summary line. */
export function checkText(path: string, result: RulesCheck): string {
  const lines: string[] = [];
  for (const p of result.problems) {
    lines.push(formatProblem(p));
    if (p.hint !== undefined) lines.push(`    hint: ${p.hint}`);
  }
  const n = result.problems.length;
  const count = (k: number, what: string): string => `${k} ${what}${k === 1 ? '' : 's'}`;
  const others =
    result.elsewhere > 0 ? ` (${count(result.elsewhere, 'problem')} in other files of ${result.dir})` : '';
  const verdict =
    n > 0 ? count(n, 'problem') : others !== '' ? 'no problems' : `${count(result.scenarios, 'scenario')} OK`;
  lines.push(`${path}: ${verdict}${others}; ${typesLine(result)}`);
  return `${lines.join('\n')}\n`;
}

export function checkJson(path: string, result: RulesCheck): Record<string, unknown> {
  return {
    path,
    ok: result.problems.length === 0,
    scenarios: result.scenarios,
    problemsElsewhere: result.elsewhere,
    typesChecked: result.schema !== undefined,
    schema: result.schema ?? null,
    problems: result.problems.map((p) => ({
      file: p.file,
      line: p.line,
      col: p.col ?? null,
      message: p.message,
      hint: p.hint ?? null,
    })),
  };
}
