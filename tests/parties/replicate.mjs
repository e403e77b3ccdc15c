// replicate.mjs: a real PouchDB client for syncgate's black-box tests.  It
// replicates an in-memory local database with a remote one, through the
// front, and reports what happened.
//
// Usage: node replicate.mjs SPEC
//
// SPEC is a JSON object, given as the argument itself or as the name of a
// file holding it:
//   remote      the remote database's URL, e.g. "http://127.0.0.1:4984/db"
//   auth        {"basic": [user, password]}, {"cookie": "Name=value"} or
//               null (no credentials)
//   headers     more request headers for every request to the remote, e.g.
//               {"X-Syncgate-User": "admin"} (optional)
//   mode        "push", "pull", "sync" (one pass each) or "continuous" (a
//               live sync in both directions with retry off: it runs until
//               an error or SIGTERM/SIGINT)
//   docs        documents put into the local database before replicating
//   options     more replication options (optional, e.g. batch_size)
//   timeout_ms  give up after this long (default 30000; 0 for none)
//
// Output, on stdout, one JSON object per line:
//   {"event":"request","method","path","status"}  each request to the remote
//   {"event":"change","direction","docs_read","docs_written","ids"}
//   {"event":"active"|"paused","direction"}
//   {"event":"denied","direction","id","status","message"}
//   {"event":"error","status","name","message"}
//   {"event":"complete","docs_read","docs_written","status"}
//   {"event":"timeout"} and {"event":"stopped"}
// and a last line {"event":"final","ok","status","docs_read","docs_written",
// "local_docs"} where status is the error's HTTP status (null without one)
// and local_docs the local database's documents at the end.
//
// Exit status: 0 when the replication completed (or was stopped by a
// signal), 1 when it failed, 2 for a bad SPEC, 3 on timeout.  Nothing here
// reaches the network beyond the remote URL given.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

import PouchNode from 'pouchdb-node';
import memoryAdapter from 'pouchdb-adapter-memory';

function fail(message) {
  process.stderr.write(`replicate.mjs: ${message}\n`);
  process.exit(2);
}

function say(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

if (process.argv.length < 3) fail('usage: node replicate.mjs SPEC');
let spec;
try {
  const arg = process.argv[2];
  spec = JSON.parse(arg.trimStart().startsWith('{') ? arg : readFileSync(arg, 'utf8'));
} catch (err) {
  fail(`SPEC: ${err.message}`);
}
const modes = ['push', 'pull', 'sync', 'continuous'];
if (typeof spec.remote !== 'string') fail('SPEC: "remote" is required');
if (!modes.includes(spec.mode)) fail(`SPEC: "mode" must be one of ${modes.join(', ')}`);
const auth = spec.auth || null;
if (auth !== null && !Array.isArray(auth.basic) && typeof auth.cookie !== 'string') {
  fail('SPEC: "auth" must be {"basic": [user, password]}, {"cookie": "Name=value"} or null');
}
const timeoutMs = spec.timeout_ms === undefined ? 30000 : Number(spec.timeout_ms);

PouchNode.plugin(memoryAdapter);
const PouchDB = PouchNode.defaults({ adapter: 'memory' });

// Every request to the remote goes through this function: PouchDB 9 calls
// the "fetch" option with a node-fetch Headers object it has already filled
// in (Content-Type, Accept, and Authorization from the "auth" option), so the
// cookie and the extra headers are set on it here.  PouchNode.fetch is the
// library's own fetch (node-fetch behind a cookie jar of this process, empty
// here since the front sets no cookie on replication requests); a header set
// here is sent as it is.
const extraHeaders = spec.headers || {};
async function remoteFetch(url, opts) {
  if (auth && auth.cookie) opts.headers.set('Cookie', auth.cookie);
  for (const [name, value] of Object.entries(extraHeaders)) opts.headers.set(name, value);
  const res = await PouchNode.fetch(url, opts);
  const u = new URL(url);
  say({ event: 'request', method: opts.method || 'GET', path: u.pathname, status: res.status });
  return res;
}

// The remote is named by its URL, which makes PouchDB pick its http
// adapter; the memory default above is for the local database only.
const remoteOpts = { adapter: 'http', fetch: remoteFetch };
if (auth && auth.basic) {
  remoteOpts.auth = { username: String(auth.basic[0]), password: String(auth.basic[1]) };
}
const remote = new PouchDB(spec.remote, remoteOpts);
const local = new PouchDB(`local-${randomBytes(8).toString('hex')}`);

let failure = null;
// Counts per direction: each change event carries its direction's running
// totals ("push" and "pull" for a sync, the mode's name otherwise).
const byDirection = {};
const totals = {
  get docs_read() { return Object.values(byDirection).reduce((n, d) => n + d.docs_read, 0); },
  get docs_written() {
    return Object.values(byDirection).reduce((n, d) => n + d.docs_written, 0);
  },
};

function statusOf(err) {
  return err && Number.isInteger(err.status) ? err.status : null;
}

function messageOf(err) {
  return err ? String(err.message || err.reason || err) : null;
}

// The first error decides the outcome; PouchDB may report the same one as
// an event and as the rejection of the replication.
function reportError(err) {
  if (failure !== null) return;
  failure = err || new Error('unknown error');
  say({ event: 'error', status: statusOf(err), name: err && err.name, message: messageOf(err) });
}

async function finish(ok, code) {
  let localDocs = [];
  try {
    const all = await local.allDocs({ include_docs: true });
    localDocs = all.rows.map((r) => r.doc);
  } catch (err) {
    process.stderr.write(`replicate.mjs: reading the local database: ${err.message}\n`);
  }
  say({
    event: 'final',
    ok,
    status: statusOf(failure),
    docs_read: totals.docs_read,
    docs_written: totals.docs_written,
    local_docs: localDocs,
  });
  process.exit(code);
}

function count(info) {
  // A sync reports {direction, change}; a replication its info itself.  The
  // documents are those of this batch, the counts the running totals.
  const change = info.change || info;
  return {
    direction: info.direction || spec.mode,
    docs_read: change.docs_read || 0,
    docs_written: change.docs_written || 0,
    ids: (change.docs || []).map((d) => d._id),
  };
}

async function main() {
  if (Array.isArray(spec.docs) && spec.docs.length > 0) {
    await local.bulkDocs(spec.docs);
  }
  const opts = { ...(spec.options || {}) };
  let rep;
  if (spec.mode === 'push') rep = local.replicate.to(remote, opts);
  else if (spec.mode === 'pull') rep = local.replicate.from(remote, opts);
  else if (spec.mode === 'sync') rep = local.sync(remote, opts);
  else rep = local.sync(remote, { ...opts, live: true, retry: false });

  let done = false;
  if (timeoutMs > 0) {
    setTimeout(() => {
      if (done) return;
      done = true;
      say({ event: 'timeout' });
      rep.cancel();
      finish(false, 3);
    }, timeoutMs).unref();
  }
  const onSignal = () => {
    if (done) return;
    done = true;
    say({ event: 'stopped' });
    rep.cancel();
    finish(true, 0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Keep the process alive while a live replication waits between changes.
  const keepAlive = setInterval(() => {}, 1 << 30);

  rep.on('change', (info) => {
    const c = count(info);
    byDirection[c.direction] = { docs_read: c.docs_read, docs_written: c.docs_written };
    say({ event: 'change', ...c });
  });
  rep.on('active', (info) => {
    say({ event: 'active', direction: (info && info.direction) || spec.mode });
  });
  rep.on('paused', (err) => {
    say({ event: 'paused', direction: spec.mode, status: statusOf(err), message: messageOf(err) });
  });
  rep.on('denied', (err) => {
    say({
      event: 'denied',
      direction: spec.mode,
      id: err && (err.id || (err.doc && err.doc._id)),
      status: statusOf(err),
      message: messageOf(err),
    });
  });
  rep.on('error', reportError);

  try {
    const info = await rep;
    if (done) return;
    if (spec.mode === 'push' || spec.mode === 'pull') {
      byDirection[spec.mode] = {
        docs_read: info.docs_read || 0, docs_written: info.docs_written || 0,
      };
    }
    say({
      event: 'complete',
      docs_read: totals.docs_read,
      docs_written: totals.docs_written,
      status: info.status || null,
    });
  } catch (err) {
    reportError(err);
  }
  if (done) return;
  done = true;
  clearInterval(keepAlive);
  // A live sync that was cancelled by an error in one direction resolves
  // rather than rejects: the error event decides.
  await finish(failure === null, failure === null ? 0 : 1);
}

main().catch((err) => {
  reportError(err);
  finish(false, 1);
});
