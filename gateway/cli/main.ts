import { existsSync, readFileSync } from 'node:fs';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { commands } from './commands/index.ts';

/** From the source tree (gateway/cli) or the build (dist/gateway/cli): the nearest package.json up. */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(url)) return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  }
  return 'unknown';
}
const VERSION = packageVersion();

const USAGE = `usage: hcgw <command> [options]      (hcgw <command> --help for its options)

${commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

  --help, -h     this text          --version, -v  the version
`;

const isHelp = (a: string) => a === '--help' || a === '-h';

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || isHelp(cmd) || cmd === 'help') {
    const topic = cmd === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(topic ? `usage: ${topic.usage}\n` : USAGE);
    return 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    process.stdout.write(`hcgw ${VERSION}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === cmd);
  if (!command) {
    process.stderr.write(`hcgw: unknown command "${cmd}"\n\n${USAGE}`);
    return 2;
  }
  if (rest.some(isHelp)) {
    process.stdout.write(`usage: ${command.usage}\n`);
    return 0;
  }
  return runCommand(command, rest);
}

async function runCommand(command: Command, args: string[]): Promise<number> {
  try {
    return await (await command.load()).run(args);
  } catch (err) {
    // Bad flags are the user's mistake: say so plainly, with the command's usage, without a stack trace.
    const code = (err as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS') && !(err instanceof UsageError)) throw err;
    process.stderr.write(`hcgw ${command.name}: ${(err as Error).message}\n\nusage: ${command.usage}\n`);
    return 2;
  }
}
