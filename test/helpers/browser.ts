import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

/**
 * Debian's chromium driven by playwright-core (which downloads no browser of its own). `.ci/run`
 * installs the package when it is missing. Headless, and with --no-sandbox because CI runs as root.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    timeout: 30_000,
    // No sandbox as root; /dev/shm is small in containers; nothing phones home.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A fresh context (its own cookies: one person) with one page. The caller closes the context.
 * Any request to a host other than 127.0.0.1 / localhost / [::1] is aborted and recorded in `offLoopback`,
 * so a test can assert that the browser never tried to leave the machine.
 */
export async function openContext(browser: Browser, options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, ...options });
  try {
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(15_000);
    await context.route(
      (url) => !isLoopback(url),
      async (route) => {
        offLoopback.push(route.request().url());
        await route.abort('blockedbyclient');
      },
    );
    return { context, page: await context.newPage() };
  } catch (error) {
    await context.close();
    throw error;
  }
}

/** openContext for the length of `use`, always closed afterwards. */
export async function withContext<T>(browser: Browser, use: (context: BrowserContext, page: Page) => Promise<T>, options: BrowserContextOptions = {}): Promise<T> {
  const { context, page } = await openContext(browser, options);
  try {
    return await use(context, page);
  } finally {
    await context.close();
  }
}

/** Every URL a context tried to reach off loopback (aborted); a test asserts this stays empty. */
export const offLoopback: string[] = [];

export function isLoopback(url: URL): boolean {
  if (url.protocol === 'about:' || url.protocol === 'data:' || url.protocol === 'blob:') return true;
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

/** On the test IdP's sign-in page (see oidc-provider.ts): sign in as `user`. */
export async function signInAtTestIdp(page: Page, user: string): Promise<void> {
  await page.getByLabel('User name').fill(user);
  await page.getByRole('button', { name: 'Sign in to test IdP' }).click();
}
