import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connectHelp, gatewayPort } from '../../lambda/core/doctor/connect-links';
import { diagnose } from '../../lambda/core/doctor/diagnose';
import { probeFindings } from '../../lambda/core/doctor/probe-findings';

const FIXTURES = fileURLToPath(new URL('../fixtures/doctor/', import.meta.url));
const read = (path: string) => readFileSync(`${FIXTURES}${path}`, 'utf8');
const gateway = (name: string) => ({ file: `${name}.toml`, text: read(`gateway/${name}.toml`) });
const dcv = (name: string) => ({ file: `${name}.conf`, text: read(`dcv/${name}.conf`) });
const rules = (findings: readonly { severity: string; rule: string }[]) => findings.map((f) => `${f.severity}:${f.rule}`);

describe('doctor: one gateway fixture per rule (each is the clean config with one thing wrong)', () => {
  it.each([
    ['clean', []],
    ['resolver-url-missing', ['error:resolver.url-missing']],
    ['resolver-url-invalid', ['error:resolver.url-invalid']],
    ['resolver-url-trailing-slash', ['error:resolver.url-trailing-slash']],
    ['resolver-url-bare-slash', ['warning:resolver.url-trailing-slash']],
    ['resolver-url-suffix', ['error:resolver.url-resolvesession-suffix']],
    ['resolver-plain-http', ['error:resolver.plain-http']],
    ['resolver-tls-strict-false', ['warning:tls.tls-strict-false']],
    ['dcv-tls-strict-false', ['warning:tls.tls-strict-false']],
    ['tls-strict-string', ['error:tls.tls-strict-type']],
    ['cert-unpaired', ['error:tls.cert-unpaired']],
    ['gateway-self-signed', ['info:gateway.self-signed']],
    ['web-resources-missing', ['error:web-resources.missing']],
    ['web-resources-both', ['warning:web-resources.both']],
    ['web-resources-local-server', ['info:web-resources.local-server']],
    ['function-url-no-prefix', ['warning:resolver.function-url-no-prefix']],
    ['execute-api-private', []],
    ['execute-api-no-stage', ['warning:resolver.execute-api-url']],
    ['execute-api-endpoint-name', ['warning:resolver.execute-api-url']],
    ['listen-missing', ['error:gateway.listen-missing']],
    ['log-verbose', ['info:log.verbose']],
    ['toml-syntax', ['error:gateway.toml-syntax']],
  ])('%s', (name, expected) => {
    expect(rules(diagnose({ gateway: gateway(name), dcv: [] }).findings)).toEqual(expected);
  });

  it.each([
    ['resolver-url-trailing-slash', "write url = 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f'", /asks for \/3f9c0b1e0d8a4e6f\/\/resolveSession, which misses the path prefix/],
    ['resolver-url-suffix', "write url = 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f'", /appends it again/],
    ['resolver-plain-http', 'use https:// (serve --tls-cert/--tls-key), or run the resolver or proxy on this host and use http://127.0.0.1', /plain http:\/\/ to 10\.0\.0\.5/],
    ['cert-unpaired', 'add cert-key-file (the matching private key) or remove cert-file', /cert-file without cert-key-file/],
    ['web-resources-missing', "install nice-dcv-web-viewer on the gateway and add [web-resources] local-resources-path = '/usr/share/dcv/www'", /browsers get 404/],
    ['toml-syntax', "quote strings ('…'), write lists as ['a', 'b'], one key = value per line", /not valid TOML \(line 6, column \d+\)/],
  ])('%s: the message says what, the fix says how', (name, fix, message) => {
    const [finding] = diagnose({ gateway: gateway(name), dcv: [] }).findings;
    expect(finding!.fix).toBe(fix);
    expect(finding!.message).toMatch(message);
    expect(finding!.file).toBe(`${name}.toml`);
  });

  it('web-listen-endpoints as a string, not a list', () => {
    const text = read('gateway/clean.toml').replace("web-listen-endpoints = ['0.0.0.0:8443']", "web-listen-endpoints = '0.0.0.0:8443'");
    const [finding] = diagnose({ gateway: { file: 'g', text }, dcv: [] }).findings;
    expect(finding).toMatchObject({ rule: 'gateway.listen-missing', severity: 'error', message: 'web-listen-endpoints must be a list, not "0.0.0.0:8443"', fix: "write web-listen-endpoints = ['0.0.0.0:8443']" });
  });

  it('tls-strict = false on an http:// resolver says it has no effect there', () => {
    const text = read('gateway/clean.toml').replace("url = 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f'", "url = 'http://127.0.0.1:9000'\ntls-strict = false");
    const [finding] = diagnose({ gateway: { file: 'g', text }, dcv: [] }).findings;
    expect(finding).toMatchObject({ rule: 'tls.tls-strict-false', key: '[resolver] tls-strict', message: expect.stringMatching(/no effect on a plain http:\/\/ url/) });
  });

  it('--resolver-url: a gateway pointing elsewhere is named; a loopback gateway url (the proxy) is not', () => {
    const elsewhere = diagnose({ gateway: gateway('clean'), dcv: [], resolverUrl: new URL('https://abc.lambda-url.eu-west-1.on.aws/prefix') });
    expect(rules(elsewhere.findings)).toEqual(['warning:resolver.not-this-resolver']);
    const proxy = read('gateway/clean.toml').replace("url = 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f'", "url = 'http://127.0.0.1:9000'");
    expect(diagnose({ gateway: { file: 'g', text: proxy }, dcv: [], resolverUrl: new URL('http://localhost:9100') }).findings).toEqual([]);
  });
});

describe('doctor: one dcv.conf fixture per rule (checked against the clean gateway’s resolver)', () => {
  it.each([
    ['clean', []],
    ['field-report', ['error:dcv.verifier-missing']],
    ['verifier-wrong-section', ['error:dcv.verifier-wrong-section']],
    ['verifier-elsewhere', ['error:dcv.verifier-elsewhere']],
    ['verifier-other-host', ['error:dcv.verifier-elsewhere']],
    ['verifier-no-server', ['warning:dcv.verifier-no-server']],
    ['verifier-plain-http', ['error:dcv.verifier-plain-http', 'error:dcv.verifier-elsewhere']],
    ['verifier-loopback-proxy', ['info:dcv.verifier-unverifiable']],
    ['web-url-path', ['error:dcv.web-url-path']],
    ['quirky', ['info:dcv.unparsed-line']],
  ])('%s', (name, expected) => {
    expect(rules(diagnose({ gateway: gateway('clean'), dcv: [dcv(name)] }).findings)).toEqual(expected);
  });

  it('the missing-verifier fix is the exact [security] line for this resolver', () => {
    const [finding] = diagnose({ gateway: gateway('clean'), dcv: [dcv('field-report')] }).findings;
    expect(finding!.fix).toBe('add [security] auth-token-verifier="https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f/verifyToken/<DcvServerEndpoint of this server>" and restart dcvserver');
  });

  it('a loopback verifier against a loopback resolver (the iam proxy layout) is fine', () => {
    const proxyGateway = read('gateway/clean.toml').replace("url = 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f'", "url = 'http://127.0.0.1:9000/3f9c0b1e0d8a4e6f'");
    expect(diagnose({ gateway: { file: 'g', text: proxyGateway }, dcv: [dcv('verifier-loopback-proxy')] }).findings).toEqual([]);
  });

  it('--resolver-url is the reference when given (the gateway url is not)', () => {
    const findings = diagnose({ gateway: gateway('clean'), dcv: [dcv('verifier-other-host')], resolverUrl: new URL('https://other-resolver.example.internal') }).findings;
    expect(rules(findings)).toEqual(['warning:resolver.not-this-resolver']);
  });

  it('several servers: each file is named in its findings', () => {
    const findings = diagnose({ gateway: gateway('clean'), dcv: [dcv('clean'), dcv('web-url-path'), dcv('verifier-no-server')] }).findings;
    expect(findings.map((f) => f.file)).toEqual(['web-url-path.conf', 'verifier-no-server.conf']);
  });
});

describe('doctor on the field report’s configuration (seed-report-ja.md) names what it got wrong', () => {
  const diagnosis = diagnose({ gateway: gateway('field-report'), dcv: [dcv('field-report')] });

  it('errors first: the DCV server has no token verifier', () => {
    expect(rules(diagnosis.findings)).toEqual([
      'error:dcv.verifier-missing',
      'warning:tls.tls-strict-false',
      'warning:tls.tls-strict-false',
      'info:web-resources.local-server',
      'info:log.verbose',
    ]);
    expect(diagnosis.findings.map((f) => f.key)).toEqual([
      '[security] auth-token-verifier',
      '[resolver] tls-strict',
      '[dcv] tls-strict',
      '[web-resources] url',
      '[log] level',
    ]);
  });

  it('and the 404 on /auth is explained by the link, not a gateway limitation', () => {
    const help = connectHelp(diagnosis.port);
    expect(help).toContain('browser:        https://<gateway-host>:8443/?authToken=<token>#<sessionId>');
    expect(help).toContain('native client:  dcv://<gateway-host>:8443/?authToken=<token>#<sessionId>');
    expect(help).toContain('https://<gateway-host>:8443/?sessionId=console loads the web client');
    expect(help).toContain('It is not a gateway limitation: the gateway does not support connecting without an\n  authentication token.');
  });
});

describe('doctor on accessMode private (API Gateway) URLs', () => {
  const API = 'https://a1b2c3d4e5-vpce-0123456789abcdef0.execute-api.eu-west-3.amazonaws.com';
  const conf = (verifier: string) => ({ file: 'dcv.conf', text: `[security]\nauth-token-verifier="${verifier}"\n` });
  const verifierRules = (verifier: string) =>
    rules(diagnose({ gateway: gateway('execute-api-private'), dcv: [conf(verifier)] }).findings).filter((r) => r.includes('execute-api'));

  it('a verifier URL with the stage is fine; without it, or on the endpoint name, is a warning', () => {
    expect(verifierRules(`${API}/prod/verifyToken/10.0.0.21`)).toEqual([]);
    expect(verifierRules(`${API}/prod/s3cret/verifyToken/10.0.0.21`)).toEqual([]);
    expect(verifierRules(`${API}/verifyToken/10.0.0.21`)).toEqual(['warning:dcv.verifier-execute-api-url']);
    expect(verifierRules('https://vpce-0123456789abcdef0-abcd1234.execute-api.eu-west-3.vpce.amazonaws.com/prod/verifyToken/10.0.0.21')).toEqual([
      'warning:dcv.verifier-execute-api-url',
    ]);
  });

  it('the no-stage finding says what API Gateway does and where the right URL is', () => {
    const [finding] = diagnose({ gateway: gateway('execute-api-no-stage'), dcv: [] }).findings;
    expect(finding!.message).toMatch(/without its stage: API Gateway answers 403/);
    expect(finding!.fix).toMatch(/GatewayResolverUrl output/);
  });
});

describe('doctor helpers', () => {
  it.each([
    [['0.0.0.0:8443'], '8443'],
    [['[::]:8445', '0.0.0.0:8443'], '8445'],
    [[], '8443'],
    [undefined, '8443'],
  ])('gatewayPort(%j) = %s', (endpoints, port) => {
    expect(gatewayPort(endpoints)).toBe(port);
  });

  it.each([
    ['no answer', { answered: false as const, error: 'connect ECONNREFUSED 127.0.0.1:9000', latencyMs: 1 }, ['error:probe.no-answer']],
    ['a violation', { answered: true as const, status: 200, latencyMs: 2, violations: [{ rule: 'port', message: 'Port must be…' }] }, ['error:probe.port']],
    ['a good 200', { answered: true as const, status: 200, latencyMs: 2, violations: [], answer: { DcvServerEndpoint: 'h', Port: 8443, SessionId: 'console' } }, ['info:probe.ok']],
    ['a 404', { answered: true as const, status: 404, latencyMs: 2, violations: [] }, ['info:probe.not-found']],
    ['a 400 to the gateway’s own request', { answered: true as const, status: 400, latencyMs: 2, violations: [] }, ['error:probe.bad-request']],
  ])('probe findings: %s', (_name, outcome, expected) => {
    expect(rules(probeFindings('http://127.0.0.1:9000', 'console', outcome))).toEqual(expected);
  });
});

describe('doctor: would the DCV server let in the name the verifier answers with? (--sessions)', () => {
  const sessions = JSON.parse(read('sessions.json')) as Record<string, unknown>[];
  // null: no --sessions given.
  const check = (name: string, items: Record<string, unknown>[] | null = sessions) =>
    diagnose({ gateway: gateway('clean'), dcv: [dcv(name)], ...(items ? { sessions: items } : {}) }).findings;
  const about = (findings: ReturnType<typeof check>) => findings.map((f) => `${f.severity}:${f.rule}:${f.key}`);

  it('a Linux console owned by ubuntu: the session without DcvUser and the one naming someone else are errors, each with its fix', () => {
    const findings = check('console-linux');
    expect(about(findings)).toEqual([
      "error:dcv.authorization-refused:session 'linux-person' → 10.0.1.15",
      "error:dcv.authorization-not-owner:session 'linux-typo' → 10.0.1.15",
      "warning:dcv.authorization-unknown:session 'linux-virtual' → 10.0.1.15",
    ]);
    const [refused, typo] = findings;
    expect(refused!.message).toContain("DCV lets only the console session's owner in: 'ubuntu' ([session-management/automatic-console-session] owner, line 6)");
    expect(refused!.fix).toBe(
      "set DcvUser to the owner: dcv-resolver sessions put linux-person --endpoint 10.0.1.15 … --dcv-user ubuntu (or tag the instance dcv:user=ubuntu); " +
        "or grant the people in a permissions file ([session-management/automatic-console-session] permissions-file, e.g. '%any% allow builtin')",
    );
    expect(typo!.message).toContain("answers DCV as 'Ubuntu' (DcvUser)");
    expect(typo!.fix).toContain("set DcvUser to 'ubuntu' exactly");
  });

  it('a Windows console (no owner setting): the session without DcvUser is an error naming who the owner is; DcvUser Administrator is not', () => {
    const findings = check('console-windows');
    expect(about(findings)).toEqual(["error:dcv.authorization-refused:session 'windows-person' → 10.0.2.20"]);
    expect(findings[0]!.message).toContain('the user who started the DCV server (no [session-management/automatic-console-session] owner; Administrator on a Windows install');
    expect(findings[0]!.fix).toContain('--dcv-user <the owner dcv list-sessions shows>');
  });

  it('a console whose permissions file can grant the people: no error, a note on what the file must say', () => {
    const findings = check('console-any-permissions');
    expect(about(findings)).toEqual(["info:dcv.authorization-permissions-file:session 'shared' → 10.0.3.30"]);
    expect(findings[0]!.message).toContain('/etc/dcv/console-any.perm ([session-management/automatic-console-session] permissions-file, line 9)');
    expect(findings[0]!.fix).toContain("'%any% allow builtin'");
  });

  it('the fixed records pass: DcvUser set to the owner on every console session', () => {
    const fixed = sessions.map((s) => (s.TargetSessionId === 'console' ? { ...s, DcvUser: s.DcvServerEndpoint === '10.0.2.20' ? 'Administrator' : 'ubuntu' } : s));
    expect(about(check('console-linux', fixed))).toEqual(["warning:dcv.authorization-unknown:session 'linux-virtual' → 10.0.1.15"]);
    expect(check('console-windows', fixed)).toEqual([]);
    expect(check('console-any-permissions', fixed)).toEqual([]);
  });

  it('without --sessions there is nothing to check the servers against: no authorization findings', () => {
    expect(check('console-linux', null)).toEqual([]);
  });

  it('expired sessions and portal leases are left out; the endpoint compares as the verifier compares it', () => {
    const items = [
      { SessionId: 'gone', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', ExpiresAt: 1000 },
      { SessionId: 'lease:x', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', Source: 'lease', Pool: 'p', LeaseUser: 'u', AllowedUsers: ['u'], ExpiresAt: 4_000_000_000 },
      { SessionId: 'other-host', DcvServerEndpoint: '10.0.1.16', TargetSessionId: 'console' },
      { SessionId: 'malformed', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', DcvUser: '' },
    ];
    expect(check('console-linux', items)).toEqual([]);
  });

  it('supervision-control = enforced: a warning, with or without sessions', () => {
    expect(rules(check('supervision-enforced', null))).toEqual(['warning:dcv.supervision-enforced']);
    const [finding] = check('supervision-enforced', null);
    expect(finding!.message).toContain("let in only while the owner is connected");
  });
});
