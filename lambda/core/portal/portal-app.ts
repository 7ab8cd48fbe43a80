import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HttpError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError, ServiceUnavailableError } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http-router.js';
import { beforeDeadline, OutOfTimeError } from '../deadline.js';
import type { Log } from '../log.js';
import { describeError, type SessionResolver } from '../resolve.js';
import { allowedAs } from '../session-access.js';
import { parseGatewayUrl } from '../tokens/connect-links.js';
import { issueToken } from '../tokens/issue-token.js';
import type { TokenStore } from '../tokens/token-store.js';
import { codeChallengeOf, newSignInTransaction, OidcError, OidcUnavailableError, type OidcClient, type SignIn } from './oidc.js';
import { placeInPool, portalEntries, type PoolEntry, type SessionEntry } from './pool-placement.js';
import { errorPage, listPage, nativeLinkPage, signedOutPage, startingPage, type PoolView, type SessionView } from './portal-pages.js';
import {
  anchorsOf,
  DCV_CHECK_MS,
  downLabel,
  planProgress,
  planStartRequest,
  readiness,
  startable,
  startRefusal,
  stopNote,
  timedOut,
  type DesktopStartPort,
  type StartAnchor,
} from './desktop-start.js';
import { releaseClaim, type PowerWrite } from '../power/power-plan.js';
import type { SessionRecord } from '../session-record.js';
import {
  DEFAULT_GROUPS_CLAIM,
  portalUserFromClaims,
  portalUserFromCookie,
  portalUserToCookie,
  userClaimsProblem,
  userInfoWanted,
  withUserInfo,
  type PortalUser,
  type UserClaimsPolicy,
} from './portal-user.js';
import { readCatalog, type LeaseStore, type SessionCatalog } from './session-catalog.js';
import { CookieSealer, CookieTooLargeError, readCookie, setCookie } from './signed-cookie.js';

/** How long a portal sign-in lasts before the identity provider is asked again. */
export const DEFAULT_SESSION_SECONDS = 8 * 60 * 60;
/** How long a Start and open ticket lets its browser watch the start (the page gives up after 10 minutes). */
const START_TICKET_SECONDS = 15 * 60;
const START_COOKIE_PREFIX = 'dcv_portal_start_';
/** How often the progress page reloads itself (a meta refresh: the pages run no scripts). */
const START_REFRESH_SECONDS = 2;
/** How long a user has to finish signing in at the provider. */
const SIGN_IN_SECONDS = 10 * 60;
const SESSION_COOKIE = 'dcv_portal';
const SIGN_IN_COOKIE = 'dcv_portal_login';
const MAX_FORM_BYTES = 4096;
/**
 * A request's time when it comes without a deadline (`serve`): room for the provider's four calls at the
 * adapter's usual cap, and less than a browser waits.
 */
export const DEFAULT_PORTAL_BUDGET_MS = 10_000;

export interface PortalOptions {
  readonly oidc: OidcClient;
  /** HMAC key for the cookies (≥ 32 bytes): Secrets Manager on AWS, per process or env locally. */
  readonly cookieKey: string | Buffer;
  /** The gateway's public https address, for the links. */
  readonly gatewayUrl: string;
  readonly catalog: SessionCatalog;
  readonly leases: LeaseStore;
  readonly resolver: SessionResolver;
  readonly tokens: TokenStore;
  readonly log: Log;
  /** The claim with the user's groups (ID token, else UserInfo). @default 'groups' (Cognito: 'cognito:groups') */
  readonly groupsClaim?: string;
  /**
   * Claims the operator trusts as names besides `sub`, a verified `email` and (Cognito issuers)
   * `cognito:username`: see UserClaimsPolicy. @default none
   */
  readonly userClaims?: readonly string[];
  /** Pool lease length. @default 8 h */
  readonly leaseSeconds?: number;
  /** @default DEFAULT_SESSION_SECONDS */
  readonly sessionSeconds?: number;
  /**
   * The portal's public base (scheme, host, path prefix), e.g. `https://abc.lambda-url.eu-west-1.on.aws`.
   * @default the request's own scheme and Host, and the path prefix it came in on
   */
  readonly publicUrl?: string;
  /**
   * Start and open for desktops with `StartOnConnect` (EC2, the table, the host's DCV through SSM). Absent
   * (`serve --sessions`, a portal function without POWER_SIGNALS_DOCUMENT): no Start button, and
   * /portal/start is a 404.
   */
  readonly desktopStart?: DesktopStartPort;
  /** A request's time for its calls when the request has no `deadline` (`serve`). @default DEFAULT_PORTAL_BUDGET_MS */
  readonly budgetMs?: number;
  readonly now?: () => number;
}

/** What the router hands the portal: the request, the prefix it stripped, the path after it. */
export interface PortalRequest {
  readonly request: HttpRequest;
  /** The path the portal is mounted under: '' from the shared router (the portal is never under the secret prefix). */
  readonly basePath: string;
  /** '/portal' or '/portal/…'. */
  readonly path: string;
  /** The request's log line: the portal adds what it did (never a token, code or cookie). */
  readonly fields: Record<string, unknown>;
}

export type PortalHandler = (input: PortalRequest) => Promise<HttpResponse>;

/**
 * No scripts at all, no framing (clickjacking a Connect button), forms only to ourselves and, since
 * browsers apply form-action to a form's redirect too, Connect's 303 to the gateway.
 * `Referrer-Policy: same-origin`, not no-referrer: under no-referrer browsers send `Origin: null` on our
 * own form posts, and the Origin check below needs the real one; nothing goes to other origins.
 */
function htmlHeaders(gatewayOrigin: string): Record<string, string> {
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${gatewayOrigin}; frame-ancestors 'none'; base-uri 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
  };
}

/** A refusal shown as a page (the portal never answers JSON). */
class PortalError extends HttpError {
  constructor(statusCode: number, readonly title: string, message: string) {
    super(statusCode, message);
  }
}

/**
 * The self-service portal: sign in with OpenID Connect (code flow, PKCE, state, nonce), list the desktops
 * the user may open, and Connect (mint a token with the auth-loop library, redirect to the gateway).
 * State lives only in signed cookies, so any number of Lambda instances or `serve` processes can answer.
 */
export function createPortal(options: PortalOptions): PortalHandler {
  const sealer = new CookieSealer(options.cookieKey);
  const now = options.now ?? Date.now;
  const { log } = options;
  const groupsClaim = options.groupsClaim ?? DEFAULT_GROUPS_CLAIM;
  const claimsPolicy: UserClaimsPolicy = { named: [...(options.userClaims ?? [])], groupsClaim };
  const claimsProblem = userClaimsProblem(claimsPolicy.named, groupsClaim);
  if (claimsProblem) throw new Error(`portal user claims: ${claimsProblem}`);
  const sessionSeconds = options.sessionSeconds ?? DEFAULT_SESSION_SECONDS;
  const headers = htmlHeaders(new URL(parseGatewayUrl(options.gatewayUrl)).origin);
  const html = (statusCode: number, body: string, extra: Record<string, string> = {}): HttpResponse => ({
    statusCode,
    headers: { ...headers, ...extra },
    body,
  });

  return async function portal(input: PortalRequest): Promise<HttpResponse> {
    const paths = portalPaths(input.basePath);
    // Date.now(), not options.now: a deadline is wall-clock time, whatever clock the cookies use.
    const started = Date.now();
    const deadline = input.request.deadline ?? started + (options.budgetMs ?? DEFAULT_PORTAL_BUDGET_MS);
    try {
      const base = publicBase(options.publicUrl, input);
      switch (input.path) {
        case '/portal':
        case '/portal/':
          allow(input.request, ['GET', 'HEAD']);
          return await home(input, paths);
        case '/portal/login':
          allow(input.request, ['GET', 'HEAD']);
          return await login(input, base, deadline);
        case '/portal/callback':
          // GET only: redeeming the code is a side effect a HEAD must not have.
          allow(input.request, ['GET']);
          return await callback(input, base, paths, deadline);
        case '/portal/connect':
          allow(input.request, ['POST']);
          return await connect(input, base, paths);
        case '/portal/logout':
          allow(input.request, ['POST']);
          return logout(input, base, paths);
        case '/portal/start':
          if (!options.desktopStart) throw new PortalError(404, 'Not found', 'There is no such page.');
          allow(input.request, ['POST']);
          return await startDesktop(options.desktopStart, input, base, paths);
        default:
          if (options.desktopStart && input.path.startsWith(STARTING_PREFIX)) {
            // GET only: a refresh may start the instance or mint a token, which a HEAD must not do.
            allow(input.request, ['GET']);
            return await starting(options.desktopStart, input, base, paths, deadline);
          }
          throw new PortalError(404, 'Not found', 'There is no such page.');
      }
    } catch (error) {
      if (error instanceof OutOfTimeError) return outOfTimePage(error, input, paths, deadline - started);
      return failure(error, input, paths);
    }
  };

  async function home(input: PortalRequest, paths: PortalPaths): Promise<HttpResponse> {
    const session = readSession(input.request);
    if (!session) return html(200, signedOutPage(paths.login));
    const nowSeconds = now() / 1000;
    const catalog = await readCatalog(options.catalog, log).catch((error: unknown) => {
      log.error('session store failed', { requestId: input.request.requestId, cause: describeError(error) });
      throw new ServiceUnavailableError('The list of desktops cannot be read just now. Try again in a minute.');
    });
    const records = catalog.map((e) => e.record);
    const entries = portalEntries(records, session.user, nowSeconds);
    const anchors = anchorsOf(records);
    const view = (entry: SessionEntry) => sessionView(entry, anchors, now(), options.desktopStart !== undefined);
    input.fields.portal = 'list';
    input.fields.user = session.user.displayName;
    return html(
      200,
      listPage({
        user: session.user.displayName,
        sessions: entries.sessions.map(view),
        pools: entries.pools.map(poolView),
        csrf: session.csrf,
        connectPath: paths.connect,
        startPath: paths.start,
        logoutPath: paths.logout,
      }),
    );
  }

  async function login(input: PortalRequest, base: PortalBase, deadline: number): Promise<HttpResponse> {
    const transaction = newSignInTransaction();
    const location = await options.oidc.authorizationUrl(
      {
        redirectUri: base.callbackUrl,
        state: transaction.state,
        nonce: transaction.nonce,
        codeChallenge: codeChallengeOf(transaction.codeVerifier),
      },
      deadline,
    );
    input.fields.portal = 'login';
    const expires = now() / 1000 + SIGN_IN_SECONDS;
    const cookie = sealer.seal(SIGN_IN_COOKIE, { ...transaction }, expires);
    return redirect(302, location, [setCookie(SIGN_IN_COOKIE, cookie, { path: base.cookiePath, maxAge: SIGN_IN_SECONDS })]);
  }

  async function callback(input: PortalRequest, base: PortalBase, paths: PortalPaths, deadline: number): Promise<HttpResponse> {
    input.fields.portal = 'callback';
    const nowSeconds = now() / 1000;
    const transaction = sealer.open(SIGN_IN_COOKIE, readCookie(input.request.headers?.cookie, SIGN_IN_COOKIE), nowSeconds);
    const clearSignIn = setCookie(SIGN_IN_COOKIE, '', { path: base.cookiePath, maxAge: 0 });
    const params = new URLSearchParams(input.request.rawQueryString);
    const state = params.get('state') ?? '';
    // No sign-in cookie: this browser did not start this sign-in, it took too long, or the callback is a
    // replay of one already completed (the cookie is cleared on success).
    if (!transaction || typeof transaction.state !== 'string' || !sameSecret(state, transaction.state)) {
      throw new PortalError(400, 'Sign-in not accepted', 'This sign-in was not started here, has expired, or was already used. Please sign in again.');
    }
    let claims;
    try {
      const signIn = await options.oidc.signIn(
        new URL(`${base.callbackUrl}?${input.request.rawQueryString}`),
        {
          redirectUri: base.callbackUrl,
          state: transaction.state,
          nonce: String(transaction.nonce),
          codeVerifier: String(transaction.codeVerifier),
        },
        deadline,
      );
      claims = await userClaims(signIn, input, deadline);
    } catch (error) {
      if (error instanceof OidcError) {
        log.warn('portal sign-in refused', { requestId: input.request.requestId, reason: error.message });
        throw new PortalError(400, 'Sign-in not accepted', 'The identity provider did not confirm this sign-in. Please sign in again.');
      }
      throw error;
    }
    let user: PortalUser;
    try {
      user = portalUserFromClaims(claims, claimsPolicy);
    } catch (error) {
      throw new PortalError(400, 'Sign-in not accepted', (error as Error).message);
    }
    let cookie: string;
    try {
      cookie = sealer.seal(SESSION_COOKIE, { ...portalUserToCookie(user, claimsPolicy), csrf: randomBytes(32).toString('base64url') }, nowSeconds + sessionSeconds);
    } catch (error) {
      if (!(error instanceof CookieTooLargeError)) throw error;
      throw new PortalError(400, 'Sign-in not accepted', 'Your account has too many names or groups to keep in a sign-in cookie; ask your administrator to send fewer groups in the ID token.');
    }
    input.fields.user = user.displayName;
    log.info('portal sign-in', { requestId: input.request.requestId, user: user.displayName, subject: user.subject, groups: user.groups.length, userInfo: input.fields.userInfo === true });
    return redirect(303, paths.home, [clearSignIn, setCookie(SESSION_COOKIE, cookie, { path: base.cookiePath, maxAge: sessionSeconds })]);
  }

  /**
   * The ID token's claims, completed from UserInfo when it lacks one the portal matches on. A failed
   * UserInfo read is an OidcUnavailableError (503), never a sign-in with fewer names or groups than the
   * person has: that would hide desktops shared with them without saying why.
   */
  async function userClaims(signIn: SignIn, input: PortalRequest, deadline: number): Promise<Record<string, unknown>> {
    const { idTokenClaims } = signIn;
    if (!signIn.userInfo || !userInfoWanted(idTokenClaims, claimsPolicy)) return idTokenClaims;
    const userInfo = await signIn.userInfo(deadline);
    // The adapter checks this too (openid-client's expectedSubject); held here for any OidcClient.
    if (typeof userInfo.sub !== 'string' || userInfo.sub !== idTokenClaims.sub) throw new OidcError('the UserInfo answer is for another subject than the ID token');
    input.fields.userInfo = true;
    return withUserInfo(idTokenClaims, userInfo, claimsPolicy);
  }

  async function connect(input: PortalRequest, base: PortalBase, paths: PortalPaths): Promise<HttpResponse> {
    input.fields.portal = 'connect';
    const { session, form } = checkedPost(input, base);
    const { user } = session;
    input.fields.user = user.displayName;
    const client = form.get('client') === 'native' ? 'native' : 'web';
    const sessionId = form.get('session');
    const pool = form.get('pool');
    let target: string;
    let tokenUser: string;
    if (pool !== null && sessionId === null) {
      const lease = await placeInPool(
        { catalog: options.catalog, leases: options.leases, log, leaseSeconds: options.leaseSeconds, now },
        { pool, principal: user, user: user.subject },
      );
      // The lease item allows exactly its holder, by subject: the verifier checks that name.
      target = lease.sessionId;
      tokenUser = user.subject;
      input.fields.pool = pool;
    } else if (sessionId !== null && pool === null) {
      const record = await options.resolver.findUsable(sessionId, { requestId: input.request.requestId }).catch((error: unknown) => {
        throw error instanceof NotFoundError ? notYours(sessionId) : error;
      });
      const name = tokenUserFor(record, user);
      if (name === undefined) throw notYours(sessionId);
      target = record.sessionId;
      tokenUser = name;
    } else {
      throw new PortalError(400, 'Cannot connect', 'The form must name one session or one pool.');
    }
    const issued = await issue(input, target, tokenUser, user);
    input.fields.sessionId = target;
    input.fields.tokenId = issued.tokenId;
    input.fields.client = client;
    log.info('portal connect', { requestId: input.request.requestId, user: user.displayName, sessionId: target, tokenId: issued.tokenId, client });
    if (client === 'native') {
      const until = readableTime(Date.parse(issued.expiresAt) / 1000);
      return html(200, nativeLinkPage(pool !== null ? `pool ${pool}` : target, issued.nativeUrl!, until, paths.home));
    }
    return redirect(303, issued.url!);
  }

  /**
   * A token for a record whose lists were just checked. Without `sessions`: the record was resolved (or
   * the lease was just written), so issueToken does not read it a second time (a second GetItem, and on an
   * eventually consistent store a fresh lease could read as absent). The verifier checks both again at
   * every use.
   */
  async function issue(input: PortalRequest, target: string, tokenUser: string, user: PortalUser) {
    return issueToken(
      { tokens: options.tokens, now },
      { sessionId: target, user: tokenUser, groups: user.groups, gatewayUrl: options.gatewayUrl },
    ).catch((error: unknown) => {
      if (error instanceof HttpError) throw error;
      log.error('token store failed', { requestId: input.request.requestId, cause: describeError(error) });
      throw new ServiceUnavailableError('A link cannot be issued just now. Try again in a minute.');
    });
  }

  /**
   * A desktop this user may start: present (read even though it does not resolve), enabled, not expired,
   * on their lists as Connect checks them, from discovery with its instance, `StartOnConnect`, and not a
   * pool member or lease. Anything else is Connect's 404: a user learns nothing about others' desktops.
   */
  async function startableRecord(sessionId: string, user: PortalUser, input: PortalRequest): Promise<{ record: SessionRecord; tokenUser: string }> {
    const record = await options.resolver.findRecord(sessionId, { requestId: input.request.requestId });
    if (!record || !record.enabled || (record.expiresAt !== undefined && now() / 1000 >= record.expiresAt) || !startable(record)) throw notYours(sessionId);
    const tokenUser = tokenUserFor(record, user);
    if (tokenUser === undefined) throw notYours(sessionId);
    return { record, tokenUser };
  }

  /** EC2's state and the anchor, or the portal's 503 (logged) when either cannot be read. */
  async function readInstance(port: DesktopStartPort, instanceId: string, input: PortalRequest): Promise<{ state: string | undefined; anchor: StartAnchor | undefined }> {
    try {
      const [state, anchor] = await Promise.all([port.instanceState(instanceId), port.anchor(instanceId)]);
      return { state, anchor };
    } catch (error) {
      log.error('portal start: EC2 or the table failed', { requestId: input.request.requestId, instanceId, cause: describeError(error) });
      throw new ServiceUnavailableError('The desktop’s state cannot be read just now. Try again in a minute.');
    }
  }

  /** Claim, then StartInstances if the claim was ours; an EC2 refusal gives the claim back and is said plainly. */
  async function claimAndStart(port: DesktopStartPort, claim: PowerWrite, start: boolean, input: PortalRequest): Promise<'started' | 'claimed' | 'lost'> {
    const instanceId = claim.instanceId;
    let outcome;
    try {
      if ((await port.writeClaim(claim)) === 'conflict') return 'lost';
      if (!start) return 'claimed';
      outcome = await port.start(instanceId);
    } catch (error) {
      log.error('portal start: claim or StartInstances failed', { requestId: input.request.requestId, instanceId, cause: describeError(error) });
      await giveBack(port, claim, input);
      throw new ServiceUnavailableError('The desktop cannot be started just now. Try again in a minute.');
    }
    const refusal = startRefusal(outcome);
    if (refusal === undefined) return 'started';
    log.warn('portal start refused by EC2', { requestId: input.request.requestId, instanceId, outcome: outcome.outcome, message: 'message' in outcome ? outcome.message : undefined });
    input.fields.reason = outcome.outcome;
    await giveBack(port, claim, input);
    throw new PortalError(503, 'Desktop not started', refusal);
  }

  /** Removes our claim if it is still the value we wrote; a failure only leaves it for the power pass to expire. */
  async function giveBack(port: DesktopStartPort, claim: PowerWrite, input: PortalRequest): Promise<void> {
    await port.writeClaim(releaseClaim(claim)).catch((error: unknown) => {
      log.warn('portal start: claim not released', { requestId: input.request.requestId, instanceId: claim.instanceId, cause: describeError(error) });
    });
  }

  /** POST /portal/start: Start and open. Claims and starts as needed, then sends the browser to the progress page. */
  async function startDesktop(port: DesktopStartPort, input: PortalRequest, base: PortalBase, paths: PortalPaths): Promise<HttpResponse> {
    input.fields.portal = 'start';
    const { session, form } = checkedPost(input, base);
    const { user } = session;
    input.fields.user = user.displayName;
    const sessionId = form.get('session');
    if (sessionId === null || form.get('pool') !== null) throw new PortalError(400, 'Cannot start', 'The form must name one desktop.');
    const { record } = await startableRecord(sessionId, user, input);
    const instanceId = record.instanceId!;
    input.fields.sessionId = sessionId;
    input.fields.instanceId = instanceId;
    const nowMs = now();
    const { state, anchor } = await readInstance(port, instanceId, input);
    const plan = planStartRequest({ instanceId, state, anchor, now: nowMs });
    if (plan.kind === 'refuse') throw new PortalError(409, 'Desktop not started', `This desktop cannot be started: ${plan.reason}.`);
    const action = plan.kind === 'claim' ? await claimAndStart(port, plan.claim, plan.start, input) : 'joined';
    input.fields.start = action;
    log.info('portal start', { requestId: input.request.requestId, user: user.displayName, sessionId, instanceId, state, action });
    const name = startCookieName(sessionId);
    const ticket = sealer.seal(name, { sessionId, subject: user.subject, startedAt: nowMs }, nowMs / 1000 + START_TICKET_SECONDS);
    return redirect(303, paths.starting(sessionId), [setCookie(name, ticket, { path: base.cookiePath, maxAge: START_TICKET_SECONDS })]);
  }

  /**
   * GET /portal/starting/<id>: where the start is, refreshed every 2 s; the gateway link only once the item
   * resolves and the host's DCV lists the target session. Needs the ticket Start and open set for this
   * user and desktop; without it, back to the list.
   */
  async function starting(port: DesktopStartPort, input: PortalRequest, base: PortalBase, paths: PortalPaths, deadline: number): Promise<HttpResponse> {
    input.fields.portal = 'starting';
    const session = readSession(input.request);
    let sessionId: string;
    try {
      sessionId = decodeURIComponent(input.path.slice(STARTING_PREFIX.length));
    } catch {
      return redirect(303, paths.home);
    }
    if (!session) return redirect(303, paths.home);
    const { user } = session;
    input.fields.user = user.displayName;
    const name = startCookieName(sessionId);
    const ticket = sealer.open(name, readCookie(input.request.headers?.cookie, name), now() / 1000);
    if (!ticket || ticket.sessionId !== sessionId || ticket.subject !== user.subject || typeof ticket.startedAt !== 'number') return redirect(303, paths.home);
    const clearTicket = setCookie(name, '', { path: base.cookiePath, maxAge: 0 });
    // The lists are checked again at every refresh: a user removed meanwhile gets nothing.
    const { record, tokenUser } = await startableRecord(sessionId, user, input);
    const instanceId = record.instanceId!;
    input.fields.sessionId = sessionId;
    input.fields.instanceId = instanceId;
    const nowMs = now();
    const { state, anchor } = await readInstance(port, instanceId, input);
    const plan = planProgress({ instanceId, state, anchor, now: nowMs });
    let message: string;
    if (plan.kind === 'failed') {
      input.fields.reason = plan.reason;
      return { ...html(409, errorPage('Desktop not started', `This desktop cannot be started: ${plan.reason}.`, paths.home)), cookies: [clearTicket] };
    } else if (plan.kind === 'start') {
      const action = await claimAndStart(port, plan.claim, true, input);
      log.info('portal start', { requestId: input.request.requestId, user: user.displayName, sessionId, instanceId, state, action });
      message = 'Starting the instance (EC2: stopped)';
    } else if (plan.kind === 'wait') {
      message = plan.message;
    } else {
      const ready = await hostReadiness(port, record, input, deadline);
      if (ready.ready) {
        // Usable: the claim has served (the power pass would remove it too, once it sees DCV answer).
        if (anchor?.powerStartAt !== undefined) await giveBack(port, { sessionId: anchor.sessionId, instanceId, attribute: 'PowerStartAt', value: anchor.powerStartAt }, input);
        const issued = await issue(input, ready.record.sessionId, tokenUser, user);
        input.fields.tokenId = issued.tokenId;
        log.info('portal connect', { requestId: input.request.requestId, user: user.displayName, sessionId, tokenId: issued.tokenId, client: 'web', startedMs: nowMs - ticket.startedAt });
        return redirect(303, issued.url!, [clearTicket]);
      }
      message = ready.message;
    }
    input.fields.waiting = message;
    if (timedOut(ticket.startedAt, nowMs)) {
      log.warn('portal start: desktop not ready in time', { requestId: input.request.requestId, sessionId, instanceId, reason: message });
      return {
        ...html(504, errorPage('Desktop not ready', `The desktop did not become ready within 10 minutes. Last state: ${message}. Try again, or ask your administrator.`, paths.home)),
        cookies: [clearTicket],
      };
    }
    const seconds = Math.max(0, Math.round((nowMs - ticket.startedAt) / 1000));
    return html(200, startingPage({ sessionId, message, seconds, refreshSeconds: START_REFRESH_SECONDS, backPath: paths.home }));
  }

  /** Running: the item must resolve (discovery refreshes it when it does not yet) and the host's DCV list the target. */
  async function hostReadiness(
    port: DesktopStartPort,
    record: SessionRecord,
    input: PortalRequest,
    deadline: number,
  ): Promise<{ ready: true; record: SessionRecord } | { ready: false; message: string }> {
    const usable = () =>
      options.resolver.findUsable(record.sessionId, { requestId: input.request.requestId }).then(
        (found) => ({ found }),
        (error: unknown) => {
          if (error instanceof NotFoundError) return { why: error.message };
          throw error;
        },
      );
    let check: { found?: SessionRecord; why?: string } = await usable();
    if (!check.found) {
      // EC2 says running but the item does not resolve yet: discovery for this instance now (serve has no
      // EventBridge, and on AWS the event may still be on its way).
      try {
        await port.refresh(record.instanceId!);
        check = await usable();
      } catch (error) {
        log.warn('portal start: discovery refresh failed', { requestId: input.request.requestId, instanceId: record.instanceId, cause: describeError(error) });
      }
    }
    if (!check.found) return readiness({ resolves: false, resolveReason: check.why, target: record.targetSessionId }) as { ready: false; message: string };
    const until = Math.min(Date.now() + DCV_CHECK_MS, deadline - 1000);
    const dcv = await port.dcvSessions(record.instanceId!, until).catch((error: unknown) => ({ ok: false as const, reason: error instanceof Error ? error.message : String(error) }));
    const verdict = readiness({ resolves: true, target: check.found.targetSessionId, dcv });
    return verdict.ready ? { ready: true, record: check.found } : verdict;
  }

  function logout(input: PortalRequest, base: PortalBase, paths: PortalPaths): HttpResponse {
    input.fields.portal = 'logout';
    const { session } = checkedPost(input, base);
    input.fields.user = session.user.displayName;
    return redirect(303, paths.home, [setCookie(SESSION_COOKIE, '', { path: base.cookiePath, maxAge: 0 })]);
  }

  function readSession(request: HttpRequest): { user: PortalUser; csrf: string } | undefined {
    const payload = sealer.open(SESSION_COOKIE, readCookie(request.headers?.cookie, SESSION_COOKIE), now() / 1000);
    const user = payload && portalUserFromCookie(payload, claimsPolicy);
    if (!user || typeof payload.csrf !== 'string') return undefined;
    return { user, csrf: payload.csrf };
  }

  /**
   * A state-changing POST: signed in, from our own origin (Origin / Sec-Fetch-Site when the browser sends
   * them), with the session's CSRF value in the form. SameSite=Lax already keeps the cookie off
   * cross-site POSTs; these checks hold even where it does not.
   */
  function checkedPost(input: PortalRequest, base: PortalBase): { session: { user: PortalUser; csrf: string }; form: URLSearchParams } {
    const { request } = input;
    if (request.bodyTooLarge) throw new PayloadTooLargeError(`form must be at most ${MAX_FORM_BYTES} bytes`);
    const session = readSession(request);
    if (!session) throw new PortalError(401, 'Signed out', 'Your sign-in has ended. Please sign in again.');
    const origin = request.headers?.origin;
    const fetchSite = request.headers?.['sec-fetch-site'];
    if ((origin !== undefined && origin !== base.origin) || (fetchSite !== undefined && fetchSite !== 'same-origin')) {
      throw new PortalError(403, 'Request refused', 'This request did not come from the portal page.');
    }
    const body = request.body ?? '';
    if (Buffer.byteLength(body) > MAX_FORM_BYTES) throw new PayloadTooLargeError(`form must be at most ${MAX_FORM_BYTES} bytes`);
    if (!(request.contentType ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      throw new PortalError(403, 'Request refused', 'This request did not come from the portal page.');
    }
    const form = new URLSearchParams(body);
    if (!sameSecret(form.get('csrf') ?? '', session.csrf)) {
      throw new PortalError(403, 'Request refused', 'This request did not come from the portal page.');
    }
    return { session, form };
  }

  /**
   * A call ran out of the request's time: the portal's own 503 page, well before the platform's timeout
   * would answer for it (Lambda: a bare 502), and a log line saying which call it was.
   */
  function outOfTimePage(error: OutOfTimeError, input: PortalRequest, paths: PortalPaths, budgetMs: number): HttpResponse {
    log.error('portal out of time', { requestId: input.request.requestId, call: error.call, allowedMs: error.allowedMs, budgetMs });
    input.fields.reason = error.message;
    return html(503, errorPage('Sign-in unavailable', 'The identity provider did not answer in time. Try again in a minute.', paths.home), { 'Retry-After': '5' });
  }

  function failure(error: unknown, input: PortalRequest, paths: PortalPaths): HttpResponse {
    if (error instanceof OidcUnavailableError) {
      log.error('identity provider unavailable', { requestId: input.request.requestId, cause: error.message });
      return html(503, errorPage('Sign-in unavailable', 'The identity provider cannot be reached just now. Try again in a minute.', paths.home), { 'Retry-After': '5' });
    }
    if (error instanceof HttpError) {
      input.fields.reason = error.message;
      const title = error instanceof PortalError ? error.title : titleOf(error.statusCode);
      return html(error.statusCode, errorPage(title, error.message, paths.home), error.headers);
    }
    log.error('portal failed', { requestId: input.request.requestId, error: describeError(error) });
    return html(500, errorPage('Something went wrong', 'The portal could not answer. Try again.', paths.home));
  }
}

function titleOf(status: number): string {
  if (status === 404) return 'Not available';
  if (status === 409) return 'No desktop free';
  if (status === 503) return 'Try again shortly';
  return 'Cannot do that';
}

/** Pool members and leases are reached through their pool, never by id; a group's member gets a token in their own name. */
function tokenUserFor(record: SessionRecord, user: PortalUser): string | undefined {
  const allowedName = record.pool === undefined && record.source !== 'lease' ? allowedAs(record, user) : undefined;
  if (allowedName === undefined) return undefined;
  return allowedName.startsWith('group:') ? user.displayName : allowedName;
}

const STARTING_PREFIX = '/portal/starting/';

/** One ticket cookie per desktop (two tabs starting two desktops keep both); a digest keeps the name a token. */
function startCookieName(sessionId: string): string {
  return START_COOKIE_PREFIX + createHash('sha256').update(sessionId).digest('base64url').slice(0, 16);
}

function notYours(sessionId: string): PortalError {
  // The same answer for unknown, disabled and not-yours: a user learns nothing about others' sessions.
  return new PortalError(404, 'Not available', `There is no desktop '${sessionId.slice(0, 100)}' you can open right now.`);
}

function allow(request: HttpRequest, methods: readonly string[]): void {
  if (!methods.includes(request.method)) throw new MethodNotAllowedError(methods);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

interface PortalPaths {
  readonly home: string;
  readonly login: string;
  readonly connect: string;
  readonly logout: string;
  readonly start: string;
  starting(sessionId: string): string;
}

function portalPaths(basePath: string): PortalPaths {
  return {
    home: `${basePath}/portal`,
    login: `${basePath}/portal/login`,
    connect: `${basePath}/portal/connect`,
    logout: `${basePath}/portal/logout`,
    start: `${basePath}/portal/start`,
    starting: (sessionId) => `${basePath}${STARTING_PREFIX}${encodeURIComponent(sessionId)}`,
  };
}

interface PortalBase {
  readonly origin: string;
  readonly callbackUrl: string;
  /** Cookies only go back to the portal's own paths. */
  readonly cookiePath: string;
}

function publicBase(publicUrl: string | undefined, input: PortalRequest): PortalBase {
  let root: string;
  if (publicUrl) {
    root = publicUrl.replace(/\/+$/, '');
  } else {
    const host = input.request.headers?.host;
    if (!host || !/^[A-Za-z0-9.\-:[\]]+$/.test(host)) throw new PortalError(400, 'Bad request', 'The request has no usable Host header.');
    root = `${input.request.scheme ?? 'https'}://${host}${input.basePath}`;
  }
  const url = new URL(root);
  return { origin: url.origin, callbackUrl: `${root}/portal/callback`, cookiePath: `${url.pathname.replace(/\/+$/, '')}/portal` };
}

function redirect(statusCode: 302 | 303, location: string, cookies?: string[]): HttpResponse {
  return { statusCode, headers: { Location: location, 'Cache-Control': 'no-store' }, body: '', ...(cookies ? { cookies } : {}) };
}

/** `2030-01-01 00:00 UTC`: one zone for everyone, since the page is rendered on the server. */
export function readableTime(epochSeconds: number): string {
  return `${new Date(epochSeconds * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function sessionView(entry: SessionEntry, anchors: ReadonlyMap<string, SessionRecord>, nowMs: number, canStart: boolean): SessionView {
  const { record, state } = entry;
  const anchor = record.instanceId === undefined ? undefined : anchors.get(record.instanceId);
  if (state === 'disabled') return { sessionId: entry.sessionId, state: 'Disabled by your administrator', usable: false };
  if (state === 'expired') return { sessionId: entry.sessionId, state: 'Expired', usable: false };
  if (state === 'stopped') {
    const startButton = canStart && startable(record);
    return { sessionId: entry.sessionId, state: startButton ? downLabel(record, anchor, nowMs) : 'Stopped', usable: false, startable: startButton };
  }
  const until = record.expiresAt === undefined ? '' : ` until ${readableTime(record.expiresAt)}`;
  const note = record.source === 'ec2' ? stopNote(record, anchor, nowMs) : undefined;
  return { sessionId: entry.sessionId, state: `Available${until}`, usable: true, ...(note ? { note } : {}) };
}

function poolView(entry: PoolEntry): PoolView {
  return {
    name: entry.pool,
    free: entry.free,
    total: entry.members.length,
    ...(entry.lease
      ? { held: { sessionId: entry.lease.sessionId, until: readableTime(entry.lease.expiresAt ?? 0) } }
      : {}),
  };
}

/**
 * A portal built on its first request (Lambda: the secret is read and the OpenID client loaded then, so
 * the resolver's cold start pays for neither). A failed build answers 503 and is tried again next time.
 * `build` gets the deadline of the request that starts it and must end by then (its calls bounded by it,
 * so a slow one is named: OutOfTimeError); a request that finds a build under way waits for it only until
 * its own deadline.
 */
export function deferredPortal(build: (deadline: number) => Promise<PortalHandler>, log: Log, budgetMs: number = DEFAULT_PORTAL_BUDGET_MS): PortalHandler {
  let pending: Promise<PortalHandler> | undefined;
  return async (input) => {
    const deadline = input.request.deadline ?? Date.now() + budgetMs;
    const joining = pending !== undefined;
    pending ??= build(deadline).catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    let portal: PortalHandler;
    try {
      portal = await (joining ? beforeDeadline(pending, deadline, 'portal start-up') : pending);
    } catch (error) {
      const late = error instanceof OutOfTimeError;
      if (late) log.error('portal out of time', { requestId: input.request.requestId, call: error.call, allowedMs: error.allowedMs });
      else log.error('portal unavailable', { requestId: input.request.requestId, error: describeError(error) });
      const message = late ? 'A service the portal needs did not answer in time. Try again in a minute.' : 'The portal is not ready. Try again in a minute.';
      return {
        statusCode: 503,
        headers: { ...htmlHeaders("'self'"), 'Retry-After': '5' },
        body: errorPage('Portal unavailable', message, `${input.basePath}/portal`),
      };
    }
    return portal(input);
  };
}
