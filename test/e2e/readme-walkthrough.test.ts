import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copyRepository, ROOT, userShellEnv } from '../helpers/repo-copy.js';
import { tempDir } from '../helpers/temp.js';

/**
 * The README's "Writing rules" walkthrough, replayed in a copy of the repository (after `npm run build`, as
 * the section says) from a new user's shell: each ```yaml block headed `# PATH` is written to PATH without
 * its header line (the pasted `file:line:col` positions count from the line after it), each edit the prose
 * spells out as `key: value` replaces that key's line in the section's files, and each `$ ` line of a
 * ```console block runs with bash in order (a heredoc's lines, up to its terminator, belong to the
 * command). What a command prints, stdout and stderr in the order written as on a terminal, must equal the
 * lines pasted under it, byte for byte. Nothing is normalised: the events carry their own timestamps,
 * action ids are derived from their content, and the outputs name only relative paths.
 */
const SECTION = 'Writing rules';

type Step =
  | { kind: 'file'; path: string; text: string }
  | { kind: 'edit'; prose: string; lines: { key: string; line: string }[] }
  | { kind: 'command'; command: string; output: string };

/** The text of the README section headed `## TITLE`, up to the next `## ` heading. */
function readmeSection(title: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start === -1) throw new Error(`README.md has no "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The `$ ` commands of a ```console block, each with the lines pasted under it as its output. */
function consoleSteps(body: string): Step[] {
  const lines = body.split('\n').slice(0, -1);
  const steps: Step[] = [];
  for (let i = 0; i < lines.length;) {
    const first = lines[i] ?? '';
    if (!first.startsWith('$ ')) throw new Error(`console block: output with no command before it: ${first}`);
    const command = [first.slice(2)];
    const terminator = /<<-?\s*'?(\w+)'?/.exec(first)?.[1];
    i++;
    if (terminator !== undefined) {
      while (i < lines.length && lines[i] !== terminator) command.push(lines[i++] ?? '');
      command.push(lines[i++] ?? '');
    }
    const output: string[] = [];
    while (i < lines.length && !(lines[i] ?? '').startsWith('$ ')) output.push(lines[i++] ?? '');
    steps.push({
      kind: 'command',
      command: command.join('\n'),
      output: output.map((l) => `${l}\n`).join(''),
    });
  }
  return steps;
}

/** The section's files, prose edits and commands, in the order a reader meets them. */
function walkthroughSteps(section: string): Step[] {
  const steps: Step[] = [];
  let proseFrom = 0;
  for (const block of section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    const prose = section.slice(proseFrom, block.index);
    proseFrom = block.index + block[0].length;
    const lines = [...prose.matchAll(/`(\w+): ([^`]+)`/g)].map(([, key = '', value = '']) => ({
      key,
      line: `${key}: ${value}`,
    }));
    if (lines.length > 0) steps.push({ kind: 'edit', prose: prose.trim(), lines });
    const [, lang, body = ''] = block;
    if (lang === 'console') steps.push(...consoleSteps(body));
    else if (lang === 'yaml') {
      const path = /^# (\S+)\n/.exec(body)?.[1];
      if (path === undefined) throw new Error(`a yaml block without a "# PATH" first line:\n${body}`);
      steps.push({ kind: 'file', path, text: body.slice(body.indexOf('\n') + 1) });
    } else throw new Error(`a \`\`\`${lang} block the walkthrough test does not know how to run:\n${body}`);
  }
  return steps;
}

const steps = walkthroughSteps(readmeSection(SECTION));
let dir: string;
let env: NodeJS.ProcessEnv;
let removeDir: () => Promise<void>;

/** Runs a command with bash in the copy; stdout and stderr share one pipe, so `out` is in write order. */
function sh(command: string, timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `exec 2>&1\n${command}`], { cwd: dir, env, detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Replaces, in the one file of the section that has it, the line of each key the prose gives a new value. */
function applyEdit(step: Extract<Step, { kind: 'edit' }>, files: string[]): void {
  for (const { key, line } of step.lines) {
    const pattern = new RegExp(`^(\\s*)${key}:.*$`, 'm');
    const holders = files.filter((f) => pattern.test(readFileSync(join(dir, f), 'utf8')));
    expect(holders, `exactly one file of the section has a "${key}:" line for: ${step.prose}`).toHaveLength(
      1,
    );
    const file = join(dir, holders[0] ?? '');
    writeFileSync(file, readFileSync(file, 'utf8').replace(pattern, `$1${line}`));
  }
}

beforeAll(async () => {
  const temp = await tempDir('vigil-walkthrough-');
  dir = temp.path;
  removeDir = () => temp.remove();
  copyRepository(dir);
  env = userShellEnv();
  const build = await sh('npm run build');
  expect(build.code, build.out).toBe(0);
}, 120_000);

afterAll(async () => {
  await removeDir();
});

describe(`the README's "${SECTION}" walkthrough, as pasted`, () => {
  test('the section has commands with output to check', () => {
    const commands = steps.filter((s) => s.kind === 'command');
    expect(commands.filter((s) => s.output !== '').length).toBeGreaterThan(0);
  });

  const files: string[] = [];
  for (const step of steps) {
    if (step.kind === 'file') {
      test(`file ${step.path}`, () => {
        writeFileSync(join(dir, step.path), step.text);
        files.push(step.path);
      });
    } else if (step.kind === 'edit') {
      test(`edit ${step.lines.map((l) => l.line).join(', ')}`, () => applyEdit(step, files));
    } else {
      test(`$ ${step.command.split('\n')[0] ?? ''}`, async () => {
        const run = await sh(step.command);
        expect(run.out, `exit code ${run.code}`).toBe(step.output);
      }, 120_000);
    }
  }
});
