// provider.mjs: a real OpenID Connect provider (oidc-provider) for
// syncgate's black-box tests, on 127.0.0.1 with the issuer
// http://127.0.0.1:PORT.
//
// Usage: node provider.mjs CONFIG.json
//
// The configuration file holds:
//   port            the TCP port (required)
//   clients         [{client_id, client_secret, redirect_uris,
//                     token_endpoint_auth_method?, grant_types?,
//                     response_types?}]; grant_types default to
//                   authorization_code and refresh_token, response_types
//                   to code, the authentication method to the first of
//                   auth_methods
//   keys_file       a private JWKS; when the file does not exist an RSA 2048
//                   key with a random kid is made and saved there, so that
//                   a restart with a new file rotates the signing key
//   rotate_refresh  true: every use of a refresh token answers a new one
//   auth_methods    the token endpoint's client authentication methods
//                   (default ["client_secret_basic", "client_secret_post"]);
//                   a request by another method is refused (401
//                   invalid_client), which oidc-provider alone does not do
//                   between these two
//   accounts        {name: {roles: [...], channels: [...]}}, optional
//
// Any login name is accepted with any password at the login form
// (devInteractions), then a consent form follows.  The account's sub is the
// login name, its email name@example.com; the claims roles and channels come
// from "accounts" and are part of the openid scope, email and
// email_verified of the email scope.  ID tokens carry these claims even
// from the token endpoint.  PKCE with S256 is required for every client.
// A refresh token is issued to every client allowed the refresh_token
// grant, with or without offline_access (offline_access needs
// prompt=consent, as the OpenID Connect specification says).
//
// Every HTTP request is logged on stdout as "METHOD PATH STATUS" (the path
// without its query string); "ready" is printed once the port listens.
// Nothing here reaches the network beyond the loopback listener.

import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

if (process.argv.length < 3) fail('usage: node provider.mjs CONFIG.json');
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('config: "port" is required');
if (!config.keys_file) fail('config: "keys_file" is required');

// The signing keys: read, or made and saved on first use.
function loadKeys(file) {
  if (existsSync(file)) {
    return JSON.parse(readFileSync(file, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const jwks = {
    keys: [{ ...jwk, kid: randomBytes(12).toString('base64url'), alg: 'RS256', use: 'sig' }],
  };
  writeFileSync(file, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  return jwks;
}

const authMethods = config.auth_methods || ['client_secret_basic', 'client_secret_post'];
const accounts = config.accounts || {};

const clients = (config.clients || []).map((c) => {
  const client = {
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: c.token_endpoint_auth_method || authMethods[0],
    grant_types: c.grant_types || ['authorization_code', 'refresh_token'],
    response_types: c.response_types || ['code'],
  };
  return client;
});

async function findAccount(ctx, id) {
  const extra = accounts[id] || {};
  return {
    accountId: id,
    async claims() {
      const claims = { sub: id, email: `${id}@example.com`, email_verified: true };
      if (extra.roles !== undefined) claims.roles = extra.roles;
      if (extra.channels !== undefined) claims.channels = extra.channels;
      return claims;
    },
  };
}

const configuration = {
  clients,
  jwks: loadKeys(config.keys_file),
  findAccount,
  claims: {
    openid: ['sub', 'roles', 'channels'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'email'],
  conformIdTokenClaims: false,
  clientAuthMethods: authMethods,
  features: {
    devInteractions: { enabled: true },
  },
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => Boolean(config.rotate_refresh),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 300,
    IdToken: 3600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
    RefreshToken: 86400,
  },
};

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, configuration);
const handle = provider.callback();

// The log line is written before the answer leaves, so that a client that
// has its answer finds its request in the log.
function logRequests(req, res) {
  const path = (req.url || '').split('?', 1)[0];
  const end = res.end.bind(res);
  let logged = false;
  res.end = (...args) => {
    if (!logged) {
      logged = true;
      process.stdout.write(`${req.method} ${path} ${res.statusCode}\n`);
    }
    return end(...args);
  };
}

function refuse(res, description) {
  const body = JSON.stringify({ error: 'invalid_client', error_description: description });
  res.writeHead(401, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

// oidc-provider takes client_secret_basic and client_secret_post for one
// another; the token endpoint here accepts only the methods of
// auth_methods.  The body is read first and handed on as already parsed.
async function tokenRequest(req, res) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) {
      refuse(res, 'request body too large');
      return;
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const form = new URLSearchParams(text);
  if (/^basic /i.test(req.headers.authorization || '')
      && !authMethods.includes('client_secret_basic')) {
    refuse(res, 'client_secret_basic is not allowed');
    return;
  }
  if (form.has('client_secret') && !authMethods.includes('client_secret_post')) {
    refuse(res, 'client_secret_post is not allowed');
    return;
  }
  req.body = text;
  handle(req, res);
}

const server = createServer((req, res) => {
  logRequests(req, res);
  if (req.method === 'POST' && (req.url || '').split('?', 1)[0] === '/token') {
    tokenRequest(req, res).catch((err) => {
      if (!res.headersSent) refuse(res, err.message);
      else res.destroy();
    });
    return;
  }
  handle(req, res);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
server.on('error', (err) => fail(`listen: ${err.message}`));
