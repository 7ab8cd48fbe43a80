import { parseHttpUrl } from './resolver-url.js';
import { setting, type DcvConf, type DcvSetting } from './dcv-conf.js';
import type { Finding, Severity } from './finding.js';
import { parseSessionRecord, type RawItem, type SessionRecord } from '../session-record.js';
import { sameEndpoint } from '../tokens/verify-token.js';

/**
 * After the verifier says yes, the DCV server authorizes the `<username>` it answered with (contract section 2,
 * step 6): by default only the session's owner may connect. These rules read what a dcv.conf says about that
 * and, given the session records, name each session on that server whose answer DCV would refuse.
 *
 * What dcv.conf can tell: the automatic console session (`[session-management] create-session = true`, id
 * `console`), its owner (`[session-management/automatic-console-session] owner`; when unset, the user who
 * started the server, `Administrator` on a Windows install) and its `permissions-file`. Sessions created any
 * other way (`dcv create-session`, Session Manager) get their owner and permissions there, out of sight.
 */

const CONSOLE_SESSION_ID = 'console';
const CONSOLE_SECTION = 'session-management/automatic-console-session';

export interface DcvAuthorization {
  /** The last segment of `auth-token-verifier` (`…/verifyToken/<endpoint>`): the server the sessions name. */
  readonly endpoint?: string;
  /** `[session-management] create-session = true`: DCV makes the `console` session at start-up. */
  readonly createsConsole: boolean;
  readonly owner?: DcvSetting;
  readonly permissionsFile?: DcvSetting;
  readonly supervision?: DcvSetting;
}

/** DCV's booleans are written true/false, sometimes quoted or capitalized. */
function isTrue(value: DcvSetting | undefined): boolean {
  return value !== undefined && value.value.trim().toLowerCase() === 'true';
}

export function readAuthorization(conf: DcvConf): DcvAuthorization {
  const verifier = setting(conf, 'security', 'auth-token-verifier');
  let endpoint: string | undefined;
  const url = verifier ? parseHttpUrl(verifier.value) : undefined;
  const segment = url ? /\/verifyToken\/([^/]+)$/.exec(url.pathname)?.[1] : undefined;
  if (segment !== undefined) {
    try {
      endpoint = decodeURIComponent(segment);
    } catch {
      endpoint = undefined;
    }
  }
  const owner = setting(conf, CONSOLE_SECTION, 'owner');
  const permissionsFile = setting(conf, CONSOLE_SECTION, 'permissions-file');
  const supervision = setting(conf, 'security', 'supervision-control');
  return {
    ...(endpoint === undefined ? {} : { endpoint }),
    createsConsole: isTrue(setting(conf, 'session-management', 'create-session')),
    // An empty owner= or permissions-file= is no setting at all.
    ...(owner && owner.value.trim() !== '' ? { owner } : {}),
    ...(permissionsFile && permissionsFile.value.trim() !== '' ? { permissionsFile } : {}),
    ...(supervision ? { supervision } : {}),
  };
}

function usable(item: RawItem, nowMs: number): SessionRecord | undefined {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) return undefined;
  const r = parsed.record;
  // Disabled, expired or a portal lease (it copies its member, which is checked): nobody connects through it.
  if (!r.enabled || r.source === 'lease') return undefined;
  if (r.expiresAt !== undefined && nowMs >= r.expiresAt * 1000) return undefined;
  return r;
}

function ownerText(auth: DcvAuthorization): string {
  return auth.owner
    ? `'${auth.owner.value}' ([${CONSOLE_SECTION}] owner, line ${auth.owner.line})`
    : `the user who started the DCV server (no [${CONSOLE_SECTION}] owner; Administrator on a Windows install; 'dcv list-sessions' shows it)`;
}

function ownerName(auth: DcvAuthorization): string {
  return auth.owner?.value ?? '<the owner dcv list-sessions shows>';
}

export interface AuthorizationInput {
  /** The session records (a sessions file or the table), as stored; undefined: not given, no session findings. */
  readonly sessions?: readonly RawItem[];
  /** Milliseconds since the epoch, for ExpiresAt. */
  readonly nowMs: number;
}

export function checkAuthorization(file: string, conf: DcvConf, input: AuthorizationInput): Finding[] {
  const out: Finding[] = [];
  const add = (rule: string, severity: Severity, key: string, message: string, fix: string) => out.push({ rule, severity, file, key, message, fix });
  const auth = readAuthorization(conf);

  if (auth.supervision && auth.supervision.value.trim().toLowerCase() === 'enforced') {
    add(
      'dcv.supervision-enforced',
      'warning',
      `[security] supervision-control (line ${auth.supervision.line})`,
      "supervision-control = enforced: anyone who is not the session's owner is let in only while the owner is connected, so users a permissions file grants by name cannot connect on their own",
      "remove it (the default lets them in), or answer DCV with the owner's name (DcvUser) so every user connects as the owner",
    );
  }

  if (input.sessions === undefined || auth.endpoint === undefined) return out;
  const on = input.sessions
    .map((item) => usable(item, input.nowMs))
    .filter((r): r is SessionRecord => r !== undefined && sameEndpoint(r.dcvServerEndpoint, auth.endpoint!));

  for (const r of on) {
    const id = `session '${r.sessionId}'`;
    const key = `${id} → ${r.dcvServerEndpoint}`;
    const isConsole = auth.createsConsole && r.targetSessionId === CONSOLE_SESSION_ID;
    const putFix = `dcv-resolver sessions put ${r.sessionId} --endpoint ${r.dcvServerEndpoint} … --dcv-user ${ownerName(auth)} (or tag the instance dcv:user=${ownerName(auth)})`;

    if (!isConsole) {
      if (r.dcvUser !== undefined) continue;
      add(
        'dcv.authorization-unknown',
        'warning',
        key,
        `${id} opens server session '${r.targetSessionId}', which this dcv.conf does not create (no [session-management] create-session = true for 'console'): its owner and permissions are set where it is created, and DCV lets only the owner in unless a permissions file grants others. The verifier answers DCV with each token's user`,
        `set DcvUser to that session's owner ('dcv list-sessions' shows it), or create the session with a permissions file that grants the people`,
      );
      continue;
    }
    if (auth.permissionsFile) {
      // The file may grant anyone (`%any% allow builtin`); the doctor cannot read it from here.
      if (r.dcvUser === undefined) {
        add(
          'dcv.authorization-permissions-file',
          'info',
          key,
          `${id} answers DCV with each token's user; DCV admits them only if ${auth.permissionsFile.value} ([${CONSOLE_SECTION}] permissions-file, line ${auth.permissionsFile.line}) grants them`,
          "make sure it has a [permissions] line for them, e.g. '%any% allow builtin' (anyone the verifier admits)",
        );
      }
      continue;
    }
    if (r.dcvUser === undefined) {
      add(
        'dcv.authorization-refused',
        'error',
        key,
        `${id} answers DCV with each token's user (no DcvUser), but DCV lets only the console session's owner in: ${ownerText(auth)}, and no permissions file grants anyone else. The verifier says yes and the desktop still does not open`,
        `set DcvUser to the owner: ${putFix}; or grant the people in a permissions file ([${CONSOLE_SECTION}] permissions-file, e.g. '%any% allow builtin')`,
      );
    } else if (auth.owner && r.dcvUser !== auth.owner.value) {
      add(
        'dcv.authorization-not-owner',
        'error',
        key,
        `${id} answers DCV as '${r.dcvUser}' (DcvUser), but the console session's owner is ${ownerText(auth)} and no permissions file grants anyone else: DCV refuses '${r.dcvUser}'`,
        `set DcvUser to '${auth.owner.value}' exactly (DCV compares the name as written), or grant '${r.dcvUser}' in a permissions file`,
      );
    }
  }
  return out;
}
