import { CliError } from './cli-error';
import { DISCOVER_USAGE, runDiscover } from './discover-command';
import { PROXY_USAGE, runProxy } from './proxy-command';
import { runServe, SERVE_USAGE } from './serve-command';

/** Subcommands: each takes its own argv and owns its usage text. */
interface Command {
  readonly summary: string;
  readonly usage: string;
  run(argv: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'answer the gateway over HTTP from a sessions file or a DynamoDB table',
    usage: SERVE_USAGE,
    run: runServe,
  },
  proxy: {
    summary: "sign and forward the gateway's requests to an accessMode=iam Function URL",
    usage: PROXY_USAGE,
    run: runProxy,
  },
  discover: {
    summary: 'register running EC2 instances tagged dcv:session-id in the table (and remove stale ones)',
    usage: DISCOVER_USAGE,
    run: runDiscover,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `Usage: dcv-resolver <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'dcv-resolver <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`dcv-resolver: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(command.usage);
      return 0;
    }
    await command.run(rest);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`dcv-resolver ${name}: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
}
