// browser.mjs: a real browser (Debian's chromium, headless, driven by
// playwright-core) logging in through syncgate's OpenID Connect code flow
// at oidc-provider's own login page, then reading a document through the
// front with the session cookie it was given.
//
// Usage: node browser.mjs SPEC
//
// SPEC is one JSON object (the argument itself, not a file name):
//   start        syncgate's login URL, http://127.0.0.1:PORT/{db}/_oidc
//                (it answers a redirect to the provider)
//   username     the login typed into the provider's form
//   password     the password typed in (default "pw"; devInteractions
//                takes any)
//   doc_url      a document under the same database, read once the
//                callback answered, whatever its status (optional)
//   screenshot   where a PNG of the page is saved: the callback's page once
//                the login is through, or the current page when something
//                fails
//   timeout_ms   the whole run's limit (default 30000)
//   forge_state  optional: when the provider sends the browser back to the
//                callback, the browser goes instead to the same URL with
//                this state, as a link planted by someone else would
//   executable   the browser (default /usr/bin/chromium, or
//                $SG_CHROMIUM)
//
// On success one JSON line is printed on stdout:
//   {"callback_url", "callback_status", "callback_body", "callback_text",
//    "prompts", "cookies", "doc_status", "doc_body", "doc_challenge",
//    "screenshot"}
// callback_body is the callback's answer parsed as JSON (its text when it
// is not JSON), callback_text what the page shows, prompts the provider's
// forms filled in, cookies what the browser holds for the front's doc_url
// (or the callback URL) as context.cookies() gives them, doc_challenge the
// document's WWW-Authenticate header (null without one).  "Success" means
// the browser got through to the callback: a callback refusing the login
// (forge_state) is an answer to report, not a failure.
//
// On failure (a page that is neither the provider's form nor the callback,
// a timeout, a browser that does not start) the current page is saved to
// the screenshot path, {"error", "screenshot"} is printed and the exit
// status is 1.  The browser is closed in every case, the watchdog's too.

import { chromium } from 'playwright-core';

// The flags that let Debian's chromium run headless in a container without
// a display, a GPU, a user namespace for its sandbox, or a network to reach
// Google's services.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

function output(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

let spec;
try {
  spec = JSON.parse(process.argv[2] || '');
  if (typeof spec !== 'object' || spec === null) throw new Error('not an object');
  if (!spec.start || !spec.username) throw new Error('"start" and "username" are required');
} catch (e) {
  output({ error: `usage: node browser.mjs '{"start": URL, "username": NAME}': ${e.message}` });
  process.exit(2);
}

const timeoutMs = Number(spec.timeout_ms) > 0 ? Number(spec.timeout_ms) : 30000;
// Each wait gets what is left of the whole run, so that the watchdog below
// is the last resort and not the usual way a slow page ends.
const deadline = Date.now() + timeoutMs;
const left = () => Math.max(1000, deadline - Date.now() - 2000);

let browser = null;
let page = null;
let finished = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) {
    try {
      await b.close();
    } catch (e) {
      // Already gone: nothing left to close.
    }
  }
}

async function fail(message) {
  if (finished) return;
  finished = true;
  let shot = null;
  if (page && spec.screenshot) {
    try {
      // A navigation still under way (a server that does not answer)
      // would hold the screenshot back: stop it, keep what is shown.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Page.stopLoading');
    } catch (e) {
      // The screenshot below says whether the page is still usable.
    }
    try {
      await page.screenshot({ path: spec.screenshot, fullPage: true, timeout: 5000 });
      shot = spec.screenshot;
    } catch (e) {
      message += ` (no screenshot: ${e.message.split('\n')[0]})`;
    }
  }
  await closeBrowser();
  // The messages of playwright color their call logs for a terminal.
  // eslint-disable-next-line no-control-regex
  const plain = message.replace(/\u001b\[[0-9;]*m/g, '');
  output({ error: plain, screenshot: shot, url: page ? page.url() : null });
  process.exit(1);
}

// The watchdog: a page that never loads still ends the run, with its
// screenshot, and with the browser closed.
const watchdog = setTimeout(() => {
  fail(`timed out after ${timeoutMs} ms`);
}, timeoutMs);

function parseBody(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return text;
  }
}

async function pageText() {
  try {
    return await page.innerText('body', { timeout: 2000 });
  } catch (e) {
    return '';
  }
}

async function run() {
  const start = new URL(spec.start);
  const callbackPath = start.pathname.replace(/\/_oidc$/, '/_oidc_callback');
  const isCallback = (u) => {
    const url = new URL(u);
    return url.origin === start.origin && url.pathname === callbackPath;
  };

  browser = await chromium.launch({
    executablePath: spec.executable || process.env.SG_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: left(),
  });
  const context = await browser.newContext();
  page = await context.newPage();
  page.setDefaultTimeout(left());

  // The answers of the main frame's navigations, to find the callback's
  // status among the redirects.
  const answers = [];
  page.on('response', (resp) => {
    if (resp.request().isNavigationRequest() && resp.frame() === page.mainFrame()) {
      answers.push(resp);
    }
  });

  if (spec.forge_state) {
    // The provider's redirect to the callback is answered, inside the
    // browser, by a redirect to the same URL with another state: what the
    // user would get by following a link made by someone else in the
    // middle of a login of their own.  The forged URL itself goes on to
    // syncgate.  Chrome DevTools' Fetch domain is used because it pauses
    // the target of a redirect too, which page.route() does not.
    const cdp = await context.newCDPSession(page);
    cdp.on('Fetch.requestPaused', async (ev) => {
      try {
        const url = new URL(ev.request.url);
        if (url.searchParams.get('state') === spec.forge_state) {
          await cdp.send('Fetch.continueRequest', { requestId: ev.requestId });
          return;
        }
        url.searchParams.set('state', spec.forge_state);
        await cdp.send('Fetch.fulfillRequest', {
          requestId: ev.requestId,
          responseCode: 302,
          responseHeaders: [{ name: 'Location', value: url.href }],
        });
      } catch (e) {
        // The page went away meanwhile: the run reports what it reached.
      }
    });
    await cdp.send('Fetch.enable', {
      patterns: [{ urlPattern: `${start.origin}${callbackPath}?*`, requestStage: 'Request' }],
    });
  }

  await page.goto(spec.start, { waitUntil: 'load' });
  const prompts = [];
  // Fill in whatever form the provider shows until the page is back at
  // syncgate's callback: the login form, then the consent form (skipped
  // by the provider when the grant already exists).
  for (let step = 0; !isCallback(page.url()); step += 1) {
    if (step >= 6) {
      throw new Error(`still not at the callback after ${step} pages, at ${page.url()}`);
    }
    if (new URL(page.url()).origin === start.origin) {
      throw new Error(`back at the front but not at its callback: ${page.url()}`);
    }
    const login = page.locator('input[name=login]');
    const submit = page.locator('button[type=submit], input[type=submit]').first();
    if (await login.count()) {
      prompts.push('login');
      await login.fill(spec.username);
      await page.locator('input[name=password]').fill(spec.password || 'pw');
    } else if (await submit.count()) {
      prompts.push('consent');
    } else {
      throw new Error(`neither a login nor a consent form at ${page.url()}: ` +
                      `${(await pageText()).slice(0, 500)}`);
    }
    const before = page.url();
    await Promise.all([
      page.waitForURL((u) => u.href !== before, { waitUntil: 'load' }),
      submit.click(),
    ]);
  }

  const callbackUrl = page.url();
  const answer = [...answers].reverse().find((r) => r.url() === callbackUrl);
  if (!answer) throw new Error(`no answer recorded for ${callbackUrl}`);
  const callbackRaw = await answer.text();
  // The page the login ended at, for the test to keep should one of its
  // own checks fail (it removes the file otherwise).  The document's page
  // is not the one to keep: a 401 asking for a password leaves it blank.
  if (spec.screenshot) {
    await page.screenshot({ path: spec.screenshot, fullPage: true });
  }
  const result = {
    callback_url: callbackUrl,
    callback_status: answer.status(),
    callback_body: parseBody(callbackRaw),
    callback_text: await pageText(),
    prompts,
    cookies: await context.cookies(spec.doc_url || callbackUrl),
    doc_status: null,
    doc_body: null,
    doc_challenge: null,
    screenshot: spec.screenshot || null,
  };

  if (spec.doc_url) {
    const seen = answers.length;
    let doc = null;
    try {
      doc = await page.goto(spec.doc_url, { waitUntil: 'load' });
    } catch (e) {
      // A 401 with "WWW-Authenticate: Basic" asks the browser for a
      // password; headless and without one to give, chromium abandons the
      // navigation.  The answer itself was still received.
      doc = answers.slice(seen).reverse().find((r) => r.url() === spec.doc_url);
      if (!doc) throw e;
    }
    if (!doc) throw new Error(`no answer for ${spec.doc_url}`);
    result.doc_status = doc.status();
    result.doc_body = parseBody(await doc.text().catch(() => ''));
    result.doc_challenge = (await doc.allHeaders())['www-authenticate'] || null;
  }
  return result;
}

try {
  const result = await run();
  if (!finished) {
    finished = true;
    clearTimeout(watchdog);
    await closeBrowser();
    output(result);
  }
} catch (e) {
  await fail(e && e.message ? e.message.split('\n').slice(0, 4).join(' ') : String(e));
}
