// backend.mjs: a real replication server (the CouchDB protocol PouchDB
// speaks) for syncgate's black-box tests, on 127.0.0.1.
//
// Usage: node backend.mjs CONFIG.json
//
// The configuration file holds:
//   port   the TCP port (required)
//   dbs    the databases to create at start (default ["db"])
//
// express-pouchdb serves PouchDB's in-memory databases at the root, so the
// database "db" is /db: the front passes /db/... on unchanged.  Only the
// routes a replicating client needs are mounted (express-pouchdb's
// "minimumForPouchDB" mode): no _users database, no _session, no _config.
// Nothing is written to disk, and a restart starts empty.
//
// Every HTTP request is logged on stdout, once answered, as one line
//   METHOD PATH STATUS X-Syncgate-User=U X-Syncgate-Auth=A direct=D
// where PATH is without its query string, U and A are the headers' values
// percent-encoded (so that a value holding spaces or a comma, as two copies
// of a header joined by node, stays one field) or "-" when the header is
// absent, and D is "yes" when the request carried "X-Backend-Direct: 1" (the
// tests' own requests to this server, not through the front) and "no"
// otherwise.  "ready" is printed once the port listens.  Nothing here
// reaches the network beyond the loopback listener.

import { readFileSync } from 'node:fs';

import express from 'express';
import expressPouchDB from 'express-pouchdb';
import PouchNode from 'pouchdb-node';
import memoryAdapter from 'pouchdb-adapter-memory';

function fail(message) {
  process.stderr.write(`backend.mjs: ${message}\n`);
  process.exit(2);
}

if (process.argv.length < 3) fail('usage: node backend.mjs CONFIG.json');
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('config: "port" is required');
const dbs = config.dbs || ['db'];
const dbName = /^[a-z][a-z0-9_$()+-]*$/;
if (!Array.isArray(dbs) || dbs.some((d) => typeof d !== 'string' || !dbName.test(d))) {
  fail('config: "dbs" must be an array of database names');
}

// The memory adapter for every database, the list of databases
// (pouchdb-all-dbs keeps it in a database of its own) included: the leveldb
// adapter would write files into the working directory.
PouchNode.plugin(memoryAdapter);
const PouchDB = PouchNode.defaults({ adapter: 'memory' });

function field(value) {
  return value === undefined ? '-' : encodeURIComponent(value);
}

const app = express();
app.disable('x-powered-by');

app.use((req, res, next) => {
  res.on('finish', () => {
    const path = req.originalUrl.split('?')[0];
    const user = field(req.headers['x-syncgate-user']);
    const auth = field(req.headers['x-syncgate-auth']);
    const direct = req.headers['x-backend-direct'] === '1' ? 'yes' : 'no';
    process.stdout.write(`${req.method} ${path} ${res.statusCode} `
      + `X-Syncgate-User=${user} X-Syncgate-Auth=${auth} direct=${direct}\n`);
  });
  next();
});

app.use('/', expressPouchDB(PouchDB, { mode: 'minimumForPouchDB', inMemoryConfig: true }));

// Create the databases through PouchDB itself before listening, so that the
// first request already finds them (a client's GET /db must not be a 404).
for (const name of dbs) {
  // eslint-disable-next-line no-await-in-loop
  await new PouchDB(name).info();
}

const server = app.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
server.on('error', (err) => fail(`listen on 127.0.0.1:${port}: ${err.code || err.message}`));

// A long poll of _changes holds its connection open: close() alone would
// wait for it, so every connection is ended at once.
function stop() {
  server.close(() => process.exit(0));
  if (server.closeAllConnections) server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
