import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A DCV host's `dcv` and `nvidia-smi` as fake executables for a PATH, printing what the real ones print
 * (the formats in dcv-contract.md section 6), from fixture files a test can rewrite at any time (a client
 * connects, a GPU gets busy) with `update`. The shipped host script runs against them under dash, directly
 * or through the loopback SSM (test/helpers/ssm-server.ts, a host's `binDir`).
 */
export interface FakeDcvHost {
  /** What `dcv list-sessions -j` prints, and its exit status; undefined: no dcv on PATH. */
  readonly list?: { readonly out: string; readonly exit?: number };
  readonly describe?: Readonly<Record<string, { readonly out: string; readonly exit?: number }>>;
  /** What nvidia-smi prints and its exit status; undefined: no nvidia-smi. */
  readonly gpu?: { readonly out: string; readonly exit?: number };
}

/** `dcv describe-session ID -j` as DCV prints it (pretty JSON, more fields than the script reads). */
export function described(id: string, connections: number, created: string, lastDisconnection: string): string {
  return `{
  "id" : "${id}",
  "owner" : "ubuntu",
  "name" : "Desk, with a comma",
  "type" : "console",
  "x11-display" : ":0",
  "num-of-connections" : ${connections},
  "creation-time" : "${created}",
  "last-disconnection-time" : "${lastDisconnection}",
  "licensing-mode" : "EVALUATION",
  "licenses" : [ { "product" : "dcv", "status" : "LICENSED", "check-timeout" : "2026-03-03T00:00:00Z", "expiration-date" : "2027-01-01T00:00:00Z" } ],
  "storage-root" : "",
  "display-layout" : [ { "width" : 1920, "height" : 1080, "x" : 0, "y" : 0 } ]
}
`;
}

/** `dcv list-sessions -j` as DCV prints it. */
export function listed(ids: readonly string[]): string {
  return `[\n${ids.map((id) => `  {\n    "id" : "${id}",\n    "owner" : "ubuntu",\n    "name" : "n",\n    "type" : "console"\n  }`).join(',\n')}\n]\n`;
}

/** A host with one session per entry: [id, connections, creation time, last disconnection ('' = never)]. */
export function dcvSessions(sessions: readonly (readonly [string, number, string, string])[], gpu?: readonly number[]): FakeDcvHost {
  return {
    list: { out: listed(sessions.map(([id]) => id)) },
    describe: Object.fromEntries(sessions.map(([id, n, created, last]) => [id, { out: described(id, n, created, last) }])),
    ...(gpu ? { gpu: { out: gpu.map((p) => `${p}\n`).join('') } } : {}),
  };
}

export interface FakeDcvHostFiles {
  /** Put this first on PATH. */
  readonly bin: string;
  /** Replaces what the fakes print from now on. */
  update(host: FakeDcvHost): void;
}

/** Writes the fakes under `dir` (created); the fixture files can be replaced later with `update`. */
export function writeFakeDcvHost(dir: string, host: FakeDcvHost): FakeDcvHostFiles {
  const bin = join(dir, 'bin');
  const data = join(dir, 'data');
  mkdirSync(bin, { recursive: true });
  const fake = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}`);
    chmodSync(join(bin, name), 0o755);
  };
  const update = (next: FakeDcvHost) => {
    rmSync(data, { recursive: true, force: true });
    mkdirSync(data);
    rmSync(join(bin, 'dcv'), { force: true });
    rmSync(join(bin, 'nvidia-smi'), { force: true });
    if (next.list) {
      writeFileSync(join(data, 'list'), next.list.out);
      writeFileSync(join(data, 'list.exit'), String(next.list.exit ?? 0));
      for (const [id, answer] of Object.entries(next.describe ?? {})) {
        writeFileSync(join(data, `describe-${id}`), answer.out);
        writeFileSync(join(data, `describe-${id}.exit`), String(answer.exit ?? 0));
      }
      fake(
        'dcv',
        `D='${data}'
case "$1 $3" in
  "list-sessions ") [ "$2" = -j ] || exit 64; cat "$D/list"; exit "$(cat "$D/list.exit")" ;;
  "describe-session -j") [ -f "$D/describe-$2" ] || { echo "no session $2" >&2; exit 1; }; cat "$D/describe-$2"; exit "$(cat "$D/describe-$2.exit")" ;;
esac
exit 64
`,
      );
    }
    if (next.gpu) {
      writeFileSync(join(data, 'gpu'), next.gpu.out);
      fake(
        'nvidia-smi',
        `[ "$*" = "--query-gpu=utilization.gpu --format=csv,noheader,nounits" ] || exit 64\ncat '${join(data, 'gpu')}'\nexit ${next.gpu.exit ?? 0}\n`,
      );
    }
  };
  update(host);
  return { bin, update };
}
