// Drives a real headless Chromium (Debian's /usr/bin/chromium, via playwright-core; no
// browser download) through the OIDC browser login of docker-token-server:
//   node browser-login.mjs START_URL USER PASSWORD
// opens START_URL (our /oidc_auth), signs in at the provider's interaction page, follows the
// redirects back to our page and prints `USER <name>` and `PASSWORD <docker password>`.
// Env: CHROMIUM (default /usr/bin/chromium). Exit code 1 with a message on any failure.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';

const [startUrl, user, password] = process.argv.slice(2);
if (!startUrl || !user || !password) {
  console.error('usage: node browser-login.mjs START_URL USER PASSWORD');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(startUrl);
  // the provider's sign-in form (provider.mjs's interaction page)
  await page.waitForSelector('input[name=username]');
  console.log(`PROVIDER_PAGE ${new URL(page.url()).pathname}`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(new URL(startUrl).origin)),
    page.click('button'),
  ]);
  // consent is auto-granted by provider.mjs; we land on our page
  await page.waitForSelector('#password, #error');
  const error = await page.$('#error');
  if (error) {
    console.error(`LOGIN_ERROR ${await error.textContent()}`);
    process.exit(1);
  }
  console.log(`USER ${(await page.textContent('#user')).trim()}`);
  console.log(`PASSWORD ${(await page.textContent('#password')).trim()}`);
  console.log(`DOCKER_CMD ${(await page.textContent('#docker-login')).trim()}`);
} catch (e) {
  console.error(`BROWSER_ERROR ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
