// The web page's login, as a user does it in headless Chromium (ui*.test.ts).
import type { Page } from 'playwright-core';
import type { Auth } from './registry-client.js';

/** Logs `who` in at `baseUrl`/ui/ in a fresh session: whatever an earlier test left logged in is forgotten. */
export async function logInToWebPage(page: Page, baseUrl: string, who: Auth): Promise<void> {
  await page.goto(`${baseUrl}/ui/`);
  await page.evaluate('sessionStorage.clear()'); // a string: the test files have no DOM types
  await page.reload();
  await page.fill('#login-user', who.user);
  await page.fill('#login-password', who.password);
  await page.click('#login-submit');
  await page.waitForSelector('#login-view', { state: 'hidden' });
}
