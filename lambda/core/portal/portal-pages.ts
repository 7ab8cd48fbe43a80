/**
 * The portal's pages: server-rendered HTML, no scripts, no front-end build. Plain landmarks, headings
 * and buttons so a keyboard and a screen reader work without help; one column that reads on a phone.
 * Every value from a record, a claim or a URL is escaped.
 */

export interface SessionView {
  readonly sessionId: string;
  /** "Available", "Disabled", "Expired", "Available until …". */
  readonly state: string;
  readonly usable: boolean;
  /** Not running, and this portal may start it (StartOnConnect): a Start and open button. */
  readonly startable?: boolean;
  /** Running: when it stops if nobody uses it (desktops on demand). */
  readonly note?: string;
}

export interface PoolView {
  readonly name: string;
  /** Hosts the user could be placed on now, of the members they may use. */
  readonly free: number;
  readonly total: number;
  /** The host the user holds a lease on, and until when (ISO), if any. */
  readonly held?: { readonly sessionId: string; readonly until: string };
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `
:root{color-scheme:light dark;font-family:system-ui,sans-serif;line-height:1.5}
body{margin:0 auto;max-width:44rem;padding:1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between}
ul.desktops{list-style:none;padding:0;display:grid;gap:1rem}
ul.desktops>li{border:1px solid #8886;border-radius:.5rem;padding:.75rem 1rem}
h2{font-size:1.15rem;margin:0 0 .25rem;overflow-wrap:anywhere}
.state{margin:0 0 .5rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem}
button,.button{font:inherit;padding:.5rem 1rem;min-height:2.75rem;border-radius:.375rem;border:1px solid #0a58ca;background:#0b5ed7;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:transparent;color:inherit;border-color:#888}
button[disabled]{opacity:.5;cursor:not-allowed}
:focus-visible{outline:3px solid #f90;outline-offset:2px}
code{overflow-wrap:anywhere}
`;

function page(title: string, body: string, head = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
${head ? `${head}\n` : ''}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · DCV desktops</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

export function signedOutPage(loginPath: string, notice?: string): string {
  return page(
    'Sign in',
    `<main>
<h1>DCV desktops</h1>
${notice ? `<p role="status">${escapeHtml(notice)}</p>` : ''}
<p>Sign in with your organisation's account to see the desktops you may open.</p>
<p><a class="button" href="${escapeHtml(loginPath)}">Sign in</a></p>
</main>`,
  );
}

export interface ListPageInput {
  readonly user: string;
  readonly sessions: readonly SessionView[];
  readonly pools: readonly PoolView[];
  readonly csrf: string;
  /** Absolute paths of the form targets. */
  readonly connectPath: string;
  /** Start and open's form target (used only by startable desktops). */
  readonly startPath?: string;
  readonly logoutPath: string;
}

function connectForm(input: ListPageInput, field: 'session' | 'pool', value: string, label: string, usable: boolean): string {
  const hidden = `<input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}"><input type="hidden" name="${field}" value="${escapeHtml(value)}">`;
  const disabled = usable ? '' : ' disabled';
  return `<form method="post" action="${escapeHtml(input.connectPath)}" class="actions">${hidden}
<button type="submit" name="client" value="web" aria-label="Open ${escapeHtml(label)} in browser"${disabled}>Open in browser</button>
<button type="submit" name="client" value="native" class="secondary" aria-label="Native client link for ${escapeHtml(label)}"${disabled}>Native client link</button>
</form>`;
}

function startForm(input: ListPageInput, sessionId: string): string {
  return `<form method="post" action="${escapeHtml(input.startPath ?? '')}" class="actions"><input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}"><input type="hidden" name="session" value="${escapeHtml(sessionId)}">
<button type="submit" aria-label="Start and open ${escapeHtml(sessionId)}">Start and open</button>
</form>`;
}

export function listPage(input: ListPageInput): string {
  const items: string[] = [];
  for (const s of input.sessions) {
    const actions = s.startable && input.startPath ? startForm(input, s.sessionId) : connectForm(input, 'session', s.sessionId, s.sessionId, s.usable);
    items.push(`<li>
<h2>${escapeHtml(s.sessionId)}</h2>
<p class="state">${escapeHtml(s.state)}</p>
${s.note ? `<p class="note">${escapeHtml(s.note)}</p>\n` : ''}${actions}
</li>`);
  }
  for (const p of input.pools) {
    const label = `Pool ${p.name}`;
    const state = p.held
      ? `Your host: ${p.held.sessionId.replace(/^lease:/, '')}, held until ${p.held.until}`
      : `${p.free} of ${p.total} hosts free`;
    items.push(`<li>
<h2>${escapeHtml(label)}</h2>
<p class="state">${escapeHtml(state)}</p>
${connectForm(input, 'pool', p.name, label, p.held !== undefined || p.free > 0)}
</li>`);
  }
  const list =
    items.length > 0
      ? `<ul class="desktops">\n${items.join('\n')}\n</ul>`
      : '<p>No desktops are assigned to you. Ask your administrator to add you to a session (AllowedUsers or AllowedGroups).</p>';
  return page(
    'Your desktops',
    `<header>
<p>Signed in as <strong>${escapeHtml(input.user)}</strong></p>
<form method="post" action="${escapeHtml(input.logoutPath)}"><input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}"><button type="submit" class="secondary">Sign out</button></form>
</header>
<main>
<h1>Your desktops</h1>
${list}
</main>`,
  );
}

export function nativeLinkPage(label: string, nativeUrl: string, expiresAt: string, backPath: string): string {
  return page(
    'Native client link',
    `<main>
<h1>Open ${escapeHtml(label)} in the DCV client</h1>
<p><a class="button" href="${escapeHtml(nativeUrl)}">Open in the DCV client</a></p>
<p>Or paste this link into the client's connection field. It works until ${escapeHtml(expiresAt)} and only a few times; do not share it.</p>
<p><code>${escapeHtml(nativeUrl)}</code></p>
<p><a href="${escapeHtml(backPath)}">Back to your desktops</a></p>
</main>`,
  );
}

export interface StartingPageInput {
  readonly sessionId: string;
  /** Where the start is, e.g. "Instance running, waiting for the DCV server". */
  readonly message: string;
  /** Since Start and open was clicked. */
  readonly seconds: number;
  readonly refreshSeconds: number;
  readonly backPath: string;
}

/**
 * The progress page of Start and open. It reloads itself with a meta refresh (no script: the CSP allows
 * none, and a refresh is not one); each load asks again and, once the desktop is ready, answers with the
 * redirect to the gateway instead of this page.
 */
export function startingPage(input: StartingPageInput): string {
  const refresh = `<meta http-equiv="refresh" content="${input.refreshSeconds}">`;
  return page(
    `Starting ${input.sessionId}`,
    `<main>
<h1>Starting ${escapeHtml(input.sessionId)}</h1>
<p role="status" class="progress">${escapeHtml(input.message)}</p>
<p>${input.seconds} s since you asked. This page checks again every ${input.refreshSeconds} seconds and opens the desktop as soon as it is ready; a stopped desktop usually takes one to three minutes.</p>
<p><a href="${escapeHtml(input.backPath)}">Back to your desktops</a></p>
</main>`,
    refresh,
  );
}

export function errorPage(title: string, message: string, backPath: string): string {
  return page(
    title,
    `<main>
<h1>${escapeHtml(title)}</h1>
<p role="alert">${escapeHtml(message)}</p>
<p><a href="${escapeHtml(backPath)}">Back to your desktops</a></p>
</main>`,
  );
}
