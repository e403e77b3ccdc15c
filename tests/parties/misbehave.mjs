// misbehave.mjs: an OpenID Connect provider of syncgate's tests that answers
// whatever ID token the current case describes (tests/data/tokens/), so that
// every way of getting a token wrong can be put in front of syncgate.
//
// Usage: node misbehave.mjs CONFIG.json
//
// The configuration file holds:
//   port               the TCP port (required)
//   issuer             default http://127.0.0.1:PORT; the endpoints are
//                      always at the root of http://127.0.0.1:PORT
//   discovery_issuer   the issuer the discovery document names (default:
//                      issuer), to make the two differ
//   discovery_extra    members merged over the discovery document; a null
//                      value removes one
//   client_id, client_secret
//   auth_methods       token_endpoint_auth_methods_supported, and the
//                      methods the token endpoint accepts (default
//                      ["client_secret_basic", "client_secret_post"])
//   algs               id_token_signing_alg_values_supported (default
//                      ["RS256", "ES256"])
//   jwks_alg           false: the published keys carry no "alg" member
//   jku_url            what @jku stands for; by default a second listener
//                      of this process whose requests are counted in
//                      /_stats as "jku:PATH"
//   sub                the default subject (default "carol")
//   cases_dir          the directory of the case files (NAME.json)
//   rotate_refresh     true: each refresh answers a new refresh token and
//                      forgets the old one; otherwise the same one comes back
//
// Keys: an RSA 2048 key (kid "k1") and a P-256 key (kid "e1"), made at
// start; POST /_rotate replaces the RSA key by a new one (kid "k2", "k3"...).
//
// Endpoints:
//   GET  .../.well-known/openid-configuration  (any path ending so)
//   GET  /jwks
//   GET  /authorize   302 to redirect_uri with code and state; PKCE with
//                     S256 required; remembers nonce, challenge and
//                     redirect_uri of the code
//   POST /token       client authentication by the configured methods,
//                     grant_type authorization_code (code used once, PKCE
//                     verifier checked) or refresh_token; answers
//                     {access_token, token_type, expires_in, refresh_token,
//                     id_token} with the ID token of the current case for
//                     the current subject; @nonce is the nonce of the code,
//                     and no nonce claim in the refresh grant's token
//   POST /_case       {"case": NAME, "sub": optional} sets the current case
//                     (default valid-rs256) and subject (default: config)
//   GET  /mint?case=NAME[&nonce=N][&sub=S]  one token as text/plain; without
//                     nonce the nonce claim is left out
//   GET  /_stats      {"PATH": count} of the requests seen, the control
//                     paths /_* left out; DELETE clears
//   GET  /_last       {"authorize": query of the last /authorize,
//                     "token": {"form": ..., "basic": bool}} of the last
//                     /token, a client_secret in the form shown as "(given)"
//   POST /_rotate     {"kid": the new RSA kid}
//
// Besides the case files, the current case may be a misbehaviour of the
// endpoints: "token-error" (/token answers 400 {"error":"invalid_grant"}),
// "token-oversize" (/token answers a JSON body of 1 MiB + 1 byte) and
// "authorize-error" (/authorize redirects with error=access_denied and an
// error_description holding markup and quotes).
//
// ID tokens follow tests/data/tokens/README.md; a string that is not
// exactly a placeholder is left as it is.  Choices it leaves open:
// "bad-signature" flips the lowest bit of the middle byte of the signature;
// "hs256-public-pem" keys HMAC with the SPKI PEM text of the RSA public key,
// final newline included; "padded" signs the padded segments as they are
// sent, so only the padding makes that token wrong; "oversize" adds a claim
// "filler" of 16384 characters.
//
// Every request is logged on stdout as "METHOD PATH STATUS"; "ready" is
// printed once the port listens.

import { createHash, createHmac, randomBytes, sign as cryptoSign, KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

import { base64url, exportJWK, generateKeyPair } from 'jose';

const SPECIAL_CASES = new Set(['token-error', 'token-oversize', 'authorize-error']);
const MAX_BODY = 64 * 1024;
const OVERSIZE_BODY = 1024 * 1024 + 1;
const FILLER = 16384;

function fail(message) {
  process.stderr.write(`misbehave.mjs: ${message}\n`);
  process.exit(2);
}

if (process.argv.length < 3) fail('usage: node misbehave.mjs CONFIG.json');
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('config: "port" is required');

const base = `http://127.0.0.1:${port}`;
const issuer = config.issuer || base;
const clientId = config.client_id || 'syncgate';
const clientSecret = config.client_secret || 'secret';
const authMethods = config.auth_methods || ['client_secret_basic', 'client_secret_post'];
const algs = config.algs || ['RS256', 'ES256'];
const jwksAlg = config.jwks_alg !== false;
const casesDir = config.cases_dir || '.';

const state = {
  currentCase: 'valid-rs256',
  sub: config.sub || 'carol',
  codes: new Map(), // code -> {nonce, challenge, redirectUri}
  refresh: new Set(),
  stats: {},
  last: { authorize: null, token: null },
  rotations: 1,
  jku: config.jku_url || null,
};

// ---------------------------------------------------------------------------
// Keys

async function makeRsaKey(kid) {
  const { publicKey, privateKey } = await generateKeyPair('RS256', {
    modulusLength: 2048,
    extractable: true,
  });
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig' };
  if (jwksAlg) jwk.alg = 'RS256';
  return {
    kid,
    jwk,
    pem: KeyObject.from(publicKey).export({ type: 'spki', format: 'pem' }),
    priv: KeyObject.from(privateKey),
  };
}

async function makeEcKey(kid) {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig' };
  if (jwksAlg) jwk.alg = 'ES256';
  return { kid, jwk, priv: KeyObject.from(privateKey) };
}

const keys = {
  rsa: await makeRsaKey('k1'),
  ec: await makeEcKey('e1'),
};

// ---------------------------------------------------------------------------
// The token generator of tests/data/tokens/README.md

function loadCase(name) {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) {
    throw new Error(`bad case name ${JSON.stringify(name)}`);
  }
  const file = join(casesDir, `${name}.json`);
  if (!existsSync(file)) throw new Error(`no case file ${name}.json`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

function caseKnown(name) {
  if (SPECIAL_CASES.has(name)) return true;
  try {
    loadCase(name);
    return true;
  } catch {
    return false;
  }
}

// Replaces placeholders in string values, recursively.  A string that is
// not exactly a placeholder stays as it is.  Returns undefined for @nonce
// when there is no nonce (the member is then left out).
function substitute(value, ctx) {
  if (Array.isArray(value)) return value.map((v) => substitute(v, ctx));
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const s = substitute(v, ctx);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
  if (typeof value !== 'string') return value;
  switch (value) {
    case '@issuer': return issuer;
    case '@client_id': return clientId;
    case '@sub': return ctx.sub;
    case '@nonce': return ctx.nonce === null || ctx.nonce === undefined ? undefined : ctx.nonce;
    case '@kid': return keys.rsa.kid;
    case '@ec_kid': return keys.ec.kid;
    case '@jku': return state.jku;
    case '@now': return ctx.now;
    default: break;
  }
  const m = /^@now([+-])([0-9]+)$/.exec(value);
  if (m) return m[1] === '+' ? ctx.now + Number(m[2]) : ctx.now - Number(m[2]);
  return value;
}

// Merges over into base: a null value removes a member.
function merge(baseObj, over) {
  const out = { ...baseObj };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

function b64(buf) {
  return base64url.encode(buf);
}

function padded(buf) {
  return Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

const HASHES = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512' };

function signature(mode, alg, input) {
  const data = Buffer.from(input, 'ascii');
  switch (mode) {
    case 'rs256': {
      const hash = HASHES[alg] || 'sha256';
      return cryptoSign(hash, data, keys.rsa.priv);
    }
    case 'es256':
      return cryptoSign('sha256', data, { key: keys.ec.priv, dsaEncoding: 'ieee-p1363' });
    case 'bad-signature': {
      const sig = cryptoSign('sha256', data, keys.rsa.priv);
      sig[sig.length >> 1] ^= 0x01;
      return sig;
    }
    case 'none':
      return Buffer.alloc(0);
    case 'hs256-public-pem':
      return createHmac('sha256', keys.rsa.pem).update(data).digest();
    default:
      throw new Error(`unknown sign mode ${JSON.stringify(mode)}`);
  }
}

// Builds the compact token of case NAME for subject sub and nonce (null:
// no nonce claim).
function mint(name, sub, nonce) {
  const spec = loadCase(name);
  const ctx = { sub, nonce, now: Math.floor(Date.now() / 1000) };
  const header = substitute(
    merge({ alg: 'RS256', typ: 'JWT', kid: '@kid' }, spec.header),
    ctx,
  );
  const claims = substitute(
    merge(
      {
        iss: '@issuer', aud: '@client_id', sub: '@sub', iat: '@now', exp: '@now+300', nonce: '@nonce',
      },
      spec.claims,
    ),
    ctx,
  );
  if (spec.shape === 'oversize') claims.filler = 'x'.repeat(FILLER);
  let payload = JSON.stringify(claims);
  if (spec.duplicate && Object.keys(spec.duplicate).length > 0) {
    const dup = substitute(spec.duplicate, ctx);
    const extra = Object.entries(dup).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    payload = payload === '{}'
      ? `{${extra.join(',')}}`
      : `${payload.slice(0, -1)},${extra.join(',')}}`;
  }
  const headerSeg = b64(JSON.stringify(header));
  let payloadSeg;
  if (spec.shape === 'padded') {
    if (Buffer.byteLength(payload) % 3 === 0) payload += ' ';
    payloadSeg = padded(Buffer.from(payload));
  } else {
    payloadSeg = b64(payload);
  }
  const input = `${headerSeg}.${payloadSeg}`;
  const sig = b64(signature(spec.sign || 'rs256', header.alg, input));
  switch (spec.shape) {
    case 'two-segments': return input;
    case 'four-segments': return `${input}.${sig}.${sig}`;
    case 'five-segments': return `${input}.${sig}.${sig}.${sig}`;
    default: return `${input}.${sig}`;
  }
}

// ---------------------------------------------------------------------------
// HTTP

function send(res, status, body, headers = {}) {
  let data;
  let type;
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    data = Buffer.from(body);
    type = 'text/plain; charset=utf-8';
  } else {
    data = Buffer.from(JSON.stringify(body));
    type = 'application/json';
  }
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': data.length,
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function count(key) {
  state.stats[key] = (state.stats[key] || 0) + 1;
}

function discovery() {
  const doc = {
    issuer: config.discovery_issuer || issuer,
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: `${base}/token`,
    jwks_uri: `${base}/jwks`,
    response_types_supported: ['code', 'id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: algs,
    token_endpoint_auth_methods_supported: authMethods,
    scopes_supported: ['openid', 'email', 'offline_access'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'implicit'],
    code_challenge_methods_supported: ['S256'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'email'],
  };
  return merge(doc, config.discovery_extra);
}

function jwks() {
  return { keys: [keys.rsa.jwk, keys.ec.jwk] };
}

function withParams(uri, params) {
  const u = new URL(uri);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) u.searchParams.set(k, v);
  }
  return u.toString();
}

function authorize(res, q) {
  const params = Object.fromEntries(q.entries());
  state.last.authorize = params;
  const redirectUri = params.redirect_uri;
  if (!redirectUri || !/^https?:\/\//.test(redirectUri)) {
    send(res, 400, { error: 'invalid_request', error_description: 'redirect_uri' });
    return;
  }
  if (params.client_id !== clientId) {
    send(res, 400, { error: 'invalid_client' });
    return;
  }
  if (state.currentCase === 'authorize-error') {
    const to = withParams(redirectUri, {
      error: 'access_denied',
      error_description: 'User said <no> & "left" \'now\'',
      state: params.state,
    });
    send(res, 302, '', { Location: to });
    return;
  }
  if (params.response_type !== 'code' || !params.code_challenge
      || params.code_challenge_method !== 'S256') {
    const to = withParams(redirectUri, {
      error: 'invalid_request',
      error_description: 'response_type code with PKCE S256 required',
      state: params.state,
    });
    send(res, 302, '', { Location: to });
    return;
  }
  const code = randomBytes(16).toString('base64url');
  state.codes.set(code, {
    nonce: params.nonce === undefined ? null : params.nonce,
    challenge: params.code_challenge,
    redirectUri,
  });
  send(res, 302, '', { Location: withParams(redirectUri, { code, state: params.state }) });
}

function formDecode(s) {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

// Client authentication: "basic", "post", or an error string.
function clientAuth(req, form) {
  const header = req.headers.authorization || '';
  const hasBasic = /^basic /i.test(header);
  const hasPost = form.has('client_secret');
  if (hasBasic && hasPost) return 'invalid_request';
  if (hasBasic) {
    if (!authMethods.includes('client_secret_basic')) return 'invalid_client';
    const raw = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = raw.indexOf(':');
    if (colon < 0) return 'invalid_client';
    let id;
    let secret;
    try {
      id = formDecode(raw.slice(0, colon));
      secret = formDecode(raw.slice(colon + 1));
    } catch {
      return 'invalid_client';
    }
    if (id !== clientId || secret !== clientSecret) return 'invalid_client';
    if (form.has('client_id') && form.get('client_id') !== clientId) return 'invalid_client';
    return 'basic';
  }
  if (hasPost) {
    if (!authMethods.includes('client_secret_post')) return 'invalid_client';
    if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
      return 'invalid_client';
    }
    return 'post';
  }
  return 'invalid_client';
}

function s256(verifier) {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

async function token(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const redacted = Object.fromEntries(form.entries());
  if ('client_secret' in redacted) redacted.client_secret = '(given)';
  state.last.token = { form: redacted, basic: /^basic /i.test(req.headers.authorization || '') };

  const auth = clientAuth(req, form);
  if (auth === 'invalid_client') {
    send(res, 401, { error: 'invalid_client' }, { 'WWW-Authenticate': 'Basic realm="token"' });
    return;
  }
  if (auth === 'invalid_request') {
    send(res, 400, { error: 'invalid_request', error_description: 'one client authentication' });
    return;
  }
  if (state.currentCase === 'token-error') {
    send(res, 400, { error: 'invalid_grant' });
    return;
  }
  if (state.currentCase === 'token-oversize') {
    const head = '{"access_token":"';
    const tail = '","token_type":"Bearer"}';
    const body = head + 'a'.repeat(OVERSIZE_BODY - head.length - tail.length) + tail;
    send(res, 200, body, { 'Content-Type': 'application/json' });
    return;
  }

  let nonce = null;
  const grant = form.get('grant_type');
  if (grant === 'authorization_code') {
    const code = form.get('code') || '';
    const entry = state.codes.get(code);
    if (!entry) {
      send(res, 400, { error: 'invalid_grant', error_description: 'unknown code' });
      return;
    }
    state.codes.delete(code);
    if (form.has('redirect_uri') && form.get('redirect_uri') !== entry.redirectUri) {
      send(res, 400, { error: 'invalid_grant', error_description: 'redirect_uri' });
      return;
    }
    const verifier = form.get('code_verifier') || '';
    if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || s256(verifier) !== entry.challenge) {
      send(res, 400, { error: 'invalid_grant', error_description: 'code_verifier' });
      return;
    }
    nonce = entry.nonce;
  } else if (grant === 'refresh_token') {
    const rt = form.get('refresh_token') || '';
    if (!state.refresh.has(rt)) {
      send(res, 400, { error: 'invalid_grant', error_description: 'unknown refresh token' });
      return;
    }
    if (config.rotate_refresh) state.refresh.delete(rt);
    else {
      answerTokens(res, null, rt);
      return;
    }
  } else {
    send(res, 400, { error: 'unsupported_grant_type' });
    return;
  }
  answerTokens(res, nonce, null);
}

function answerTokens(res, nonce, keepRefresh) {
  let idToken;
  try {
    idToken = mint(state.currentCase, state.sub, nonce);
  } catch (err) {
    send(res, 500, { error: 'server_error', error_description: err.message });
    return;
  }
  let refreshToken = keepRefresh;
  if (!refreshToken) {
    refreshToken = randomBytes(24).toString('base64url');
    state.refresh.add(refreshToken);
  }
  send(res, 200, {
    access_token: randomBytes(24).toString('base64url'),
    token_type: 'Bearer',
    expires_in: 300,
    refresh_token: refreshToken,
    id_token: idToken,
  });
}

async function setCase(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    send(res, 400, { error: 'JSON body {"case": NAME} expected' });
    return;
  }
  const name = body && body.case;
  if (typeof name !== 'string' || !caseKnown(name)) {
    send(res, 400, { error: `unknown case ${JSON.stringify(name)}` });
    return;
  }
  state.currentCase = name;
  state.sub = typeof body.sub === 'string' ? body.sub : (config.sub || 'carol');
  send(res, 200, { case: state.currentCase, sub: state.sub });
}

async function route(req, res, url) {
  const path = url.pathname;
  const method = req.method;
  if (path.endsWith('/.well-known/openid-configuration') && method === 'GET') {
    send(res, 200, discovery());
  } else if (path === '/jwks' && method === 'GET') {
    send(res, 200, jwks());
  } else if (path === '/authorize' && method === 'GET') {
    authorize(res, url.searchParams);
  } else if (path === '/token' && method === 'POST') {
    await token(req, res);
  } else if (path === '/_case' && method === 'POST') {
    await setCase(req, res);
  } else if (path === '/_case' && method === 'GET') {
    send(res, 200, { case: state.currentCase, sub: state.sub });
  } else if (path === '/mint' && method === 'GET') {
    const name = url.searchParams.get('case') || '';
    if (SPECIAL_CASES.has(name) || !caseKnown(name)) {
      send(res, 400, `no token case ${name}\n`);
      return;
    }
    const sub = url.searchParams.has('sub') ? url.searchParams.get('sub') : state.sub;
    const nonce = url.searchParams.has('nonce') ? url.searchParams.get('nonce') : null;
    send(res, 200, mint(name, sub, nonce));
  } else if (path === '/_stats' && method === 'GET') {
    send(res, 200, state.stats);
  } else if (path === '/_stats' && method === 'DELETE') {
    state.stats = {};
    send(res, 200, state.stats);
  } else if (path === '/_last' && method === 'GET') {
    send(res, 200, state.last);
  } else if (path === '/_rotate' && method === 'POST') {
    await readBody(req);
    state.rotations += 1;
    keys.rsa = await makeRsaKey(`k${state.rotations}`);
    send(res, 200, { kid: keys.rsa.kid });
  } else {
    send(res, 404, { error: 'not_found' });
  }
}

function logged(handler, prefix) {
  return (req, res) => {
    const url = new URL(req.url || '/', base);
    if (!url.pathname.startsWith('/_')) count(prefix + url.pathname);
    // Logged before the answer leaves: whoever has the answer finds the line.
    const end = res.end.bind(res);
    let logged = false;
    res.end = (...args) => {
      if (!logged) {
        logged = true;
        process.stdout.write(`${req.method} ${prefix}${url.pathname} ${res.statusCode}\n`);
      }
      return end(...args);
    };
    handler(req, res, url).catch((err) => {
      if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: err.message });
      else res.destroy();
    });
  };
}

const servers = [createServer(logged(route, ''))];

// The jku listener: whatever it is asked, it answers an empty JWKS; a
// request reaching it means a token's jku header was followed.
if (!state.jku) {
  const jkuServer = createServer(logged(async (req, res) => send(res, 200, { keys: [] }), 'jku:'));
  servers.push(jkuServer);
  await new Promise((resolve) => {
    jkuServer.listen(0, '127.0.0.1', resolve);
  });
  state.jku = `http://127.0.0.1:${jkuServer.address().port}/jwks`;
}

function stop() {
  let left = servers.length;
  for (const s of servers) {
    s.close(() => {
      left -= 1;
      if (left === 0) process.exit(0);
    });
    s.closeAllConnections();
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

servers[0].on('error', (err) => fail(`listen: ${err.message}`));
servers[0].listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
