import { CliError } from './cli-error.js';

/**
 * Subcommands: each module exports its usage text and its run function. Modules load on demand, so
 * `serve` does not carry the EC2 client (or `discover` the HTTP server): less start-up time, and a
 * smaller heap for the long-running commands.
 */
export interface CommandModule {
  /** A function when the command has subcommands with their own help (it gets the arguments). */
  readonly usage: string | ((argv: string[]) => string);
  run(argv: string[]): Promise<void>;
}

export interface Command {
  readonly summary: string;
  load(): Promise<CommandModule>;
}

/** Every subcommand (test/docs checks that each command the docs show is one of these). */
export const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'answer the gateway over HTTP from a sessions file or a DynamoDB table',
    load: async () => {
      const m = await import('./serve-command.js');
      return { usage: m.SERVE_USAGE, run: m.runServe };
    },
  },
  proxy: {
    summary: "sign and forward the gateway's requests to an accessMode=iam Function URL",
    load: async () => {
      const m = await import('./proxy-command.js');
      return { usage: m.PROXY_USAGE, run: m.runProxy };
    },
  },
  token: {
    summary: 'issue connect links (tokens) for the gateway, list and revoke them',
    load: async () => {
      const m = await import('./token-command.js');
      return { usage: m.TOKEN_USAGE, run: m.runToken };
    },
  },
  discover: {
    summary: 'register running EC2 instances tagged dcv:session-id in the table (and remove stale ones)',
    load: async () => {
      const m = await import('./discover-command.js');
      return { usage: m.DISCOVER_USAGE, run: m.runDiscover };
    },
  },
  power: {
    summary: 'one power pass: start scheduled desktops, stop idle ones (what the stack runs every minute)',
    load: async () => {
      const m = await import('./power-command.js');
      return { usage: m.POWER_USAGE, run: m.runPower };
    },
  },
  sessions: {
    summary: 'list, show, add, enable/disable, remove, import and export session items (table or file)',
    load: async () => {
      const m = await import('./sessions-command.js');
      return { usage: m.sessionsUsage, run: m.runSessions };
    },
  },
  resolve: {
    summary: "send the gateway's exact request to a resolver and check the answer against the contract",
    load: async () => {
      const m = await import('./resolve-command.js');
      return { usage: m.RESOLVE_USAGE, run: m.runResolve };
    },
  },
  'gateway-config': {
    summary: 'print a complete, commented dcv-connection-gateway.conf for this resolver',
    load: async () => {
      const m = await import('./gateway-config-command.js');
      return { usage: m.GATEWAY_CONFIG_USAGE, run: m.runGatewayConfig };
    },
  },
  doctor: {
    summary: "check the gateway's and DCV servers' configuration (and probe the resolver); explain connect links",
    load: async () => {
      const m = await import('./doctor-command.js');
      return { usage: m.DOCTOR_USAGE, run: m.runDoctor };
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: dcv-resolver <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'dcv-resolver <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    process.stderr.write(`dcv-resolver: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(typeof command.usage === 'function' ? command.usage(rest) : command.usage);
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
