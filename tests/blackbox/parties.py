"""parties: the outside parties of syncgate's black-box tests.

tests/parties/ holds two node programs: provider.mjs, a real provider
(oidc-provider) with a login and a consent form, and misbehave.mjs, a
provider of our own that answers the ID token of the current case of
tests/data/tokens/.  This module starts them (Provider, Misbehave), fills
in the provider's forms the way a browser would (login()) and speaks the
relying party's side of the code flow (authorization_request(),
token_request()), so that a test can do by hand what syncgate does.
For replication it runs backend.mjs, a CouchDB-protocol server
(express-pouchdb over in-memory PouchDB databases), as Backend, and
replicate.mjs, a PouchDB client, as Replication and replicate().

Python 3 standard library only.  node comes from PATH, the scripts and
their node_modules from $top_srcdir/tests/parties (scripts/install-deps.sh
installs them; SG_PARTIES_NODE_MODULES names another node_modules).  Each party logs to files in the directory it is given and
is stopped at stop(), at the end of a "with" block or at exit.
"""

import atexit
import base64
import collections
import hashlib
import html.parser
import http.cookiejar
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import sgtest
from sgtest import free_port, http_request  # noqa: F401  (free_port: for the tests)

# --------------------------------------------------------------------------
# Paths


def parties_dir():
    """$top_srcdir/tests/parties."""
    return os.path.join(sgtest.srcdir(), "tests", "parties")


def cases_dir():
    """$top_srcdir/tests/data/tokens, the ID token cases."""
    return os.path.join(sgtest.srcdir(), "tests", "data", "tokens")


def case_names():
    """The names of the ID token cases (file names without .json), sorted."""
    return sorted(f[:-5] for f in os.listdir(cases_dir()) if f.endswith(".json"))


def load_case(name):
    """The case file NAME.json as a dict."""
    with open(os.path.join(cases_dir(), name + ".json")) as f:
        return json.load(f)


def node_binary():
    return shutil.which("node")


def node_modules():
    """The npm packages of the parties: $SG_PARTIES_NODE_MODULES when set
    (a source tree without them, as make distcheck's, borrows those of
    another), else $top_srcdir/tests/parties/node_modules."""
    return os.path.abspath(os.environ.get("SG_PARTIES_NODE_MODULES")
                           or os.path.join(parties_dir(), "node_modules"))


def missing():
    """Why the parties cannot run (a sentence), or None when they can."""
    if node_binary() is None:
        return "node not found: run scripts/install-deps.sh"
    for pkg in ("oidc-provider", "jose"):
        if not os.path.isfile(os.path.join(node_modules(), pkg, "package.json")):
            return ("%s/%s missing: run scripts/install-deps.sh" % (node_modules(), pkg))
    return None


def script_dir(workdir):
    """Where the scripts run from: tests/parties itself when its
    node_modules is the one to use, else a copy of the scripts in
    workdir/parties beside a symbolic link to node_modules() (node looks
    for packages next to the script)."""
    if node_modules() == os.path.abspath(os.path.join(parties_dir(), "node_modules")):
        return parties_dir()
    d = os.path.join(workdir, "parties")
    if not os.path.isdir(d):
        os.makedirs(d)
        for f in os.listdir(parties_dir()):
            if f.endswith(".mjs") or f == "package.json":
                shutil.copy(os.path.join(parties_dir(), f), d)
        os.symlink(node_modules(), os.path.join(d, "node_modules"))
    return d


def require_parties():
    """Bail out (TAP) unless node and tests/parties/node_modules are there."""
    why = missing()
    if why:
        sgtest.bail_out(why)


# --------------------------------------------------------------------------
# Tokens and PKCE


def b64url_decode(seg):
    """Decodes one base64url segment, with or without padding."""
    seg = seg.strip()
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def decode_jwt(token):
    """(header, payload) of a compact JWS, both dicts; nothing is verified.
    Raises ValueError when it is not three segments of JSON objects."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWS has 3 segments, this one %d" % len(parts))
    header = json.loads(b64url_decode(parts[0]))
    payload = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("header and payload must be JSON objects")
    return header, payload


def pkce_pair():
    """(code_verifier, code_challenge) for PKCE with S256."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


AuthRequest = collections.namedtuple("AuthRequest", "url state nonce code_verifier")


def authorization_request(endpoint, client_id, redirect_uri, scope="openid email", state=None,
                          nonce=None, extra=None):
    """An authorization code request with PKCE S256, as a relying party
    makes it.  Returns AuthRequest(url, state, nonce, code_verifier); state
    and nonce are random unless given; extra: more query parameters."""
    state = state or secrets.token_urlsafe(16)
    nonce = nonce or secrets.token_urlsafe(16)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra or {})
    sep = "&" if "?" in endpoint else "?"
    return AuthRequest(endpoint + sep + urllib.parse.urlencode(params), state, nonce, verifier)


def token_request(token_url, form, client_id, client_secret, method="client_secret_basic",
                  timeout=10):
    """POSTs form (dict) to token_url with client authentication method
    "client_secret_basic" (id and secret form-urlencoded, then Basic),
    "client_secret_post" (both in the form) or None (no authentication).
    Returns sgtest.Response(status, headers, body); a JSON body is a dict."""
    u = urllib.parse.urlsplit(token_url)
    form = dict(form)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if method == "client_secret_basic":
        cred = "%s:%s" % (urllib.parse.quote_plus(client_id),
                          urllib.parse.quote_plus(client_secret))
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode("utf-8")).decode("ascii")
    elif method == "client_secret_post":
        form["client_id"] = client_id
        form["client_secret"] = client_secret
    elif method is not None:
        raise ValueError("method: client_secret_basic, client_secret_post or None")
    path = u.path + ("?" + u.query if u.query else "")
    return http_request(u.port, "POST", path, headers=headers, body=urllib.parse.urlencode(form),
                        host=u.hostname, timeout=timeout)


# --------------------------------------------------------------------------
# Logging in through the provider's forms


class LoginError(Exception):
    pass


LoginResult = collections.namedtuple("LoginResult", "url path params cookies jar prompts")
LoginResult.__doc__ = """What login() got to.

url: the absolute URL the provider finally redirected to (the relying
  party's redirect_uri with code and state, or with error).
path: its path and query, for sgtest.http_request().
params: its query parameters as a dict (one value each).
cookies: the cookies the start URL set (syncgate's sg-oidc-state), merged
  over the cookies passed in: a dict to send with the callback request.
jar: the provider's cookie jar (pass it to another login() for single
  sign-on).
prompts: the forms filled in, in order, e.g. ["login", "consent"].
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Forms(html.parser.HTMLParser):
    """The forms of a page: [{"action", "method", "inputs": {name: value}}]."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action") or "",
                         "method": (a.get("method") or "get").lower(), "inputs": {}}
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and a.get("name"):
            self._cur["inputs"][a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def _origin(url):
    u = urllib.parse.urlsplit(url)
    return (u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80))


def _open(opener, url, data=None, headers=None, timeout=10):
    """(status, headers, body text) of one request, redirects not followed."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        resp = e
    try:
        body = resp.read().decode("utf-8", "replace")
    finally:
        resp.close()
    return resp.status if hasattr(resp, "status") else resp.code, resp.headers, body


def _opener(jar):
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPCookieProcessor(jar), _NoRedirect())


def login(start_url, username, password="pw", cookies=None, jar=None, timeout=10, max_steps=20):
    """Logs username in at oidc-provider's forms, starting at start_url.

    start_url is either the relying party's login URL (syncgate's
    /{db}/_oidc, answering a redirect to the provider) or the provider's
    authorization URL itself (told by its client_id and redirect_uri
    parameters).  Redirects are followed while they stay at the provider
    (scheme, host and port); the first redirect away from it (to the
    redirect_uri) is not followed but returned.  cookies: dict sent with the
    first request to the relying party only.  jar: the provider's cookies
    from an earlier login (LoginResult.jar), for single sign-on.

    Returns LoginResult(url, path, params, cookies, jar, prompts).  Raises
    LoginError when the relying party's start_url does not redirect, or a
    page at the provider is neither a redirect nor one of its forms (the
    text says what came)."""
    jar = jar if jar is not None else http.cookiejar.CookieJar()
    sent = dict(cookies or {})
    result_cookies = dict(sent)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(start_url).query)
    if "client_id" in query and "redirect_uri" in query:
        provider = _origin(start_url)
        url = start_url
    else:
        # The relying party: its cookies stay out of the provider's jar
        # (a cookie jar does not tell ports apart).
        first_jar = http.cookiejar.CookieJar()
        headers = {}
        if sent:
            headers["Cookie"] = "; ".join("%s=%s" % kv for kv in sent.items())
        status, rh, body = _open(_opener(first_jar), start_url, headers=headers, timeout=timeout)
        if status not in (301, 302, 303, 307, 308) or not rh.get("Location"):
            raise LoginError("%s answered %s, not a redirect: %s" % (start_url, status, body[:500]))
        url = urllib.parse.urljoin(start_url, rh["Location"])
        provider = _origin(url)
        result_cookies.update({c.name: c.value for c in first_jar})
    opener = _opener(jar)
    prompts = []
    for _step in range(max_steps):
        if _origin(url) != provider:
            u = urllib.parse.urlsplit(url)
            params = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
            path = u.path + ("?" + u.query if u.query else "")
            return LoginResult(url, path, params, result_cookies, jar, prompts)
        status, rh, body = _open(opener, url, timeout=timeout)
        if status in (301, 302, 303, 307, 308) and rh.get("Location"):
            url = urllib.parse.urljoin(url, rh["Location"])
            continue
        forms = _Forms()
        forms.feed(body)
        form = next((f for f in forms.forms if "prompt" in f["inputs"]), None)
        if status != 200 or form is None:
            raise LoginError("%s answered %s without a login or consent form: %s"
                             % (url, status, body[:2000]))
        fields = dict(form["inputs"])
        prompts.append(fields["prompt"])
        if fields["prompt"] == "login":
            fields["login"] = username
            fields["password"] = password
        data = urllib.parse.urlencode(fields).encode("ascii")
        action = urllib.parse.urljoin(url, form["action"] or url)
        status, rh, body = _open(opener, action, data=data, timeout=timeout,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status not in (301, 302, 303, 307, 308) or not rh.get("Location"):
            raise LoginError("%s form: %s answered %s: %s"
                             % (fields["prompt"], action, status, body[:2000]))
        url = urllib.parse.urljoin(action, rh["Location"])
    raise LoginError("more than %d steps at the provider, last at %s" % (max_steps, url))


# --------------------------------------------------------------------------
# The node processes


class PartyError(Exception):
    pass


_live = []
_serial = [0]


class _Party:
    """One node script serving on 127.0.0.1:port, configured by a JSON file.

    config: the script's configuration (dict); "port" is a free port when
      left out.  tmpdir: where the configuration and logs go (a temporary
      directory of its own, removed at stop(), when None).  name: the
      files' prefix (default: the script's name and a serial number).
    """

    script = None
    kind = None

    def __init__(self, config=None, tmpdir=None, name=None, start_timeout=20):
        self.config = dict(config or {})
        self._own_dir = tmpdir is None
        self.dir = tmpdir
        _serial[0] += 1
        self.name = name or "%s-%d" % (self.kind, _serial[0])
        self.start_timeout = start_timeout
        self.proc = None
        self._fixed_port = "port" in self.config

    # -- files
    def path(self, suffix):
        return os.path.join(self.dir, self.name + suffix)

    @property
    def config_path(self):
        return self.path(".json")

    @property
    def log_path(self):
        return self.path(".log")

    @property
    def err_path(self):
        return self.path(".stderr")

    def _defaults(self):
        pass

    # -- life cycle
    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Starts the script and waits for its "ready"; returns self."""
        if self.proc is not None:
            return self
        why = missing()
        if why:
            raise PartyError(why)
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sgparty-", dir=os.environ.get("TMPDIR") or "/tmp")
        os.makedirs(self.dir, exist_ok=True)
        if self not in _live:
            _live.append(self)
        self._defaults()
        last = None
        for _attempt in range(3):
            if not self._fixed_port:
                self.config["port"] = free_port()
            try:
                self._spawn()
                return self
            except PartyError as e:
                last = e
                if self._fixed_port or "EADDRINUSE" not in str(e):
                    break
        raise last

    def _spawn(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        out = open(self.log_path, "ab")
        err = open(self.err_path, "ab")
        try:
            where = script_dir(self.dir)
            self.proc = subprocess.Popen(
                [node_binary(), os.path.join(where, self.script), self.config_path],
                cwd=where, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, close_fds=True)
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"ready\n" in f.read():
                    return
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise PartyError("%s exited with status %s at start:\n%s"
                                 % (self.script, code, self.stderr()))
            if time.monotonic() > deadline:
                self._terminate()
                raise PartyError("%s not ready in %ss:\n%s"
                                 % (self.script, self.start_timeout, self.stderr()))
            time.sleep(0.03)

    def _terminate(self):
        proc, self.proc = self.proc, None
        if proc is not None:
            sgtest.terminate(proc)

    def restart(self, **changes):
        """Stops the script and starts it again on the same port, with the
        configuration members in changes replaced.  The log goes on in the
        same file.  Returns self."""
        self._terminate()
        self.config.update(changes)
        self._fixed_port = True
        self._spawn()
        return self

    def stop(self):
        """Stops the script (SIGTERM, then SIGKILL of its process group).
        Safe to call more than once."""
        try:
            self._terminate()
        finally:
            if self in _live:
                _live.remove(self)
            if self._own_dir and self.dir and not os.environ.get("SG_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- talking to it
    @property
    def port(self):
        return self.config["port"]

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path="/"):
        return self.base + path

    def request(self, method, path, **kw):
        """sgtest.http_request() against this party."""
        return http_request(self.port, method, path, **kw)

    def discovery(self):
        """The discovery document (dict)."""
        r = self.request("GET", "/.well-known/openid-configuration")
        if r.status != 200:
            raise PartyError("discovery answered %s" % r.status)
        return r.body

    # -- looking at it
    def log(self):
        """stdout of the script, every start of it: "ready" and one
        "METHOD PATH STATUS" line per request."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stderr(self):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def requests(self, method=None, path=None, status=None):
        """The logged requests [(method, path, status)], filtered by those
        given (status an int)."""
        out = []
        for line in self.log().splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].isdigit():
                continue
            m, p, s = parts[0], parts[1], int(parts[2])
            if (method is None or m == method) and (path is None or p == path) \
                    and (status is None or s == status):
                out.append((m, p, s))
        return out


class Provider(_Party):
    """tests/parties/provider.mjs: oidc-provider, issuer http://127.0.0.1:PORT.

    config members (see provider.mjs): clients (required), keys_file
    (default <tmpdir>/<name>-keys.json, made on first start), rotate_refresh,
    auth_methods, accounts.
    """

    script = "provider.mjs"
    kind = "provider"

    def _defaults(self):
        self.config.setdefault("keys_file", self.path("-keys.json"))
        self.config.setdefault("clients", [])

    @property
    def issuer(self):
        return self.base

    @property
    def authorization_endpoint(self):
        return self.url("/auth")

    @property
    def token_endpoint(self):
        return self.url("/token")

    def jwks_fetches(self):
        """How many GET /jwks the log shows, over every start."""
        return len(self.requests("GET", "/jwks"))

    def key_ids(self):
        """The kids of keys_file (read from the file, no request)."""
        with open(self.config["keys_file"]) as f:
            return [k.get("kid") for k in json.load(f)["keys"]]

    def restart(self, keys_file=None, **changes):
        """Restart on the same port; keys_file: a new keys file (made when it
        does not exist), i.e. a key rotation.  Sessions, codes and refresh
        tokens of oidc-provider are in memory and do not survive it."""
        if keys_file is not None:
            changes["keys_file"] = keys_file
        return super().restart(**changes)


class Misbehave(_Party):
    """tests/parties/misbehave.mjs: the provider that answers the ID token of
    the current case.

    config members (see misbehave.mjs): issuer, discovery_issuer,
    discovery_extra, client_id (default "syncgate"), client_secret (default
    "secret"), auth_methods, algs, jwks_alg, jku_url, sub (default "carol"),
    rotate_refresh; cases_dir defaults to $top_srcdir/tests/data/tokens.
    """

    script = "misbehave.mjs"
    kind = "misbehave"

    def _defaults(self):
        self.config.setdefault("cases_dir", cases_dir())
        self.config.setdefault("client_id", "syncgate")
        self.config.setdefault("client_secret", "secret")

    @property
    def issuer(self):
        return self.config.get("issuer") or self.base

    @property
    def client_id(self):
        return self.config["client_id"]

    @property
    def client_secret(self):
        return self.config["client_secret"]

    @property
    def authorization_endpoint(self):
        return self.url("/authorize")

    @property
    def token_endpoint(self):
        return self.url("/token")

    def _json(self, method, path, body=None):
        r = self.request(method, path, body=body)
        if r.status != 200:
            raise PartyError("%s %s answered %s: %r" % (method, path, r.status, r.body))
        return r.body

    def set_case(self, name, sub=None):
        """Makes case name current for /token (a case file's name, or
        "token-error", "token-oversize", "authorize-error"); sub: the subject
        of the tokens from now on (default: the configured one).  Returns
        {"case", "sub"}; PartyError for an unknown case."""
        body = {"case": name}
        if sub is not None:
            body["sub"] = sub
        return self._json("POST", "/_case", body)

    def case(self):
        """The current {"case", "sub"}."""
        return self._json("GET", "/_case")

    def mint(self, case, nonce=None, sub=None):
        """A token of case (str): without nonce the nonce claim is left out;
        sub defaults to the current subject."""
        q = {"case": case}
        if nonce is not None:
            q["nonce"] = nonce
        if sub is not None:
            q["sub"] = sub
        r = self.request("GET", "/mint?" + urllib.parse.urlencode(q))
        if r.status != 200:
            raise PartyError("mint %s answered %s: %r" % (case, r.status, r.body))
        return r.body

    def stats(self):
        """{path: number of requests} since the start or clear_stats(); the
        control paths (/_case, /_stats...) are not counted; requests to the
        jku listener count as "jku:PATH"."""
        return self._json("GET", "/_stats")

    def clear_stats(self):
        self._json("DELETE", "/_stats")

    def jwks_fetches(self):
        return self.stats().get("/jwks", 0)

    def jku_hits(self):
        """Requests that reached the jku listener (must stay 0)."""
        return sum(n for p, n in self.stats().items() if p.startswith("jku:"))

    def last(self):
        """{"authorize": query of the last /authorize (dict) or None,
        "token": {"form": dict with client_secret as "(given)",
        "basic": bool} of the last /token or None}."""
        return self._json("GET", "/_last")

    def rotate(self):
        """Replaces the RSA key by a new one; returns its kid."""
        return self._json("POST", "/_rotate")["kid"]

    def jwks(self):
        """GET /jwks (counted in stats())."""
        return self._json("GET", "/jwks")


@atexit.register
def _stop_all():
    for party in list(_live):
        try:
            party.stop()
        except Exception:  # keep stopping the others
            traceback.print_exc(file=sys.stderr)


# --------------------------------------------------------------------------
# Replication: a CouchDB-protocol server and a PouchDB client

POUCH_PACKAGES = ("express", "express-pouchdb", "pouchdb-node", "pouchdb-adapter-memory")


def missing_pouch():
    """Why the replication parties cannot run (a sentence), or None."""
    if node_binary() is None:
        return "node not found: run scripts/install-deps.sh"
    for pkg in POUCH_PACKAGES:
        if not os.path.isfile(os.path.join(node_modules(), pkg, "package.json")):
            return "%s/%s missing: run scripts/install-deps.sh" % (node_modules(), pkg)
    return None


def require_pouch():
    """Bail out (TAP) unless node and the replication packages are there."""
    why = missing_pouch()
    if why:
        sgtest.bail_out(why)


BackendRequest = collections.namedtuple("BackendRequest", "method path status user auth direct")
BackendRequest.__doc__ = """One request as backend.mjs logged it: user and
auth are the X-Syncgate-User and X-Syncgate-Auth values (None when the
header was absent), direct is True for a request sent by Backend.request()
(the test itself, not through the front)."""


class Backend(_Party):
    """tests/parties/backend.mjs: express-pouchdb over in-memory PouchDB
    databases, at http://127.0.0.1:PORT/<db>.

    config members: dbs (default ["db"]), the databases made at start.
    A restart starts with empty databases.
    """

    script = "backend.mjs"
    kind = "backend"
    DIRECT = {"X-Backend-Direct": "1"}

    def _defaults(self):
        self.config.setdefault("dbs", ["db"])

    def start(self):
        why = missing_pouch()
        if why:
            raise PartyError(why)
        return super().start()

    def db_url(self, db="db"):
        """The database's URL on this server, bypassing any front."""
        return self.url("/" + db)

    # -- its own HTTP API, not through the front
    def request(self, method, path, **kw):
        """sgtest.http_request() against this server, marked as direct in
        its log (header X-Backend-Direct: 1).  It asks for JSON: like
        CouchDB, express-pouchdb labels JSON text/plain for other clients."""
        headers = dict(self.DIRECT, Accept="application/json")
        headers.update(kw.pop("headers", None) or {})
        return http_request(self.port, method, path, headers=headers, **kw)

    def put_doc(self, doc_id, body, db="db"):
        """PUT /db/doc_id with body (dict); returns the new revision.
        Raises PartyError unless the server answered 201."""
        r = self.request("PUT", "/%s/%s" % (db, urllib.parse.quote(doc_id, safe="")), body=body)
        if r.status != 201:
            raise PartyError("PUT %s answered %s: %r" % (doc_id, r.status, r.body))
        return r.body["rev"]

    def get_doc(self, doc_id, db="db"):
        """The document (dict), or None when the server answers 404."""
        r = self.request("GET", "/%s/%s" % (db, urllib.parse.quote(doc_id, safe="")))
        if r.status == 404:
            return None
        if r.status != 200:
            raise PartyError("GET %s answered %s: %r" % (doc_id, r.status, r.body))
        return r.body

    def doc_ids(self, db="db"):
        """The ids of the database's documents, sorted (design documents
        included, _local ones not)."""
        r = self.request("GET", "/%s/_all_docs" % db)
        if r.status != 200:
            raise PartyError("_all_docs answered %s: %r" % (r.status, r.body))
        return sorted(row["id"] for row in r.body["rows"])

    # -- looking at it
    def mark(self):
        """How many requests the log holds now: requests(since=mark())
        later lists only those that came after."""
        return len(self.requests(direct=None))

    def requests(self, method=None, path=None, status=None, direct=False, since=0):
        """The logged requests [BackendRequest], in order, filtered by those
        given: direct False (the default) leaves out the test's own direct
        requests, True keeps only those, None keeps all; since: skip the
        first since requests of the unfiltered log (see mark())."""
        out = []
        for line in self.log().splitlines():
            parts = line.split(" ")
            if len(parts) != 6 or not parts[2].isdigit():
                continue
            fields = {}
            for part in parts[3:]:
                name, _, value = part.partition("=")
                fields[name] = None if value == "-" else urllib.parse.unquote(value)
            out.append(BackendRequest(parts[0], parts[1], int(parts[2]),
                                      fields.get("X-Syncgate-User"),
                                      fields.get("X-Syncgate-Auth"),
                                      fields.get("direct") == "yes"))
        out = out[since:]
        return [r for r in out
                if (method is None or r.method == method) and (path is None or r.path == path)
                and (status is None or r.status == status)
                and (direct is None or r.direct == direct)]

    def identities(self, since=0):
        """The set of X-Syncgate-User values (None for none) of the requests
        that came through the front, from since on."""
        return set(r.user for r in self.requests(since=since))


class Replication:
    """tests/parties/replicate.mjs: one PouchDB replication with an
    in-memory local database, run as a node process.

    spec: the replication (see replicate.mjs): remote, auth ({"basic":
      [user, password]}, {"cookie": "Name=value"} or None), headers, mode
      ("push", "pull", "sync", "continuous"), docs, options, timeout_ms.
    tmpdir: where the spec and the stderr file go (a temporary directory of
      its own, removed at stop(), when None).

    The events the script prints are collected as they come, each a dict
    with "_t", the time.monotonic() at which it was read.
    """

    def __init__(self, spec, tmpdir=None, name=None):
        self.spec = dict(spec)
        self._own_dir = tmpdir is None
        self.dir = tmpdir
        _serial[0] += 1
        self.name = name or "replicate-%d" % _serial[0]
        self.proc = None
        self.returncode = None
        self._events = []
        self._cond = threading.Condition()
        self._reader = None
        self._stderr = ""

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Starts the replication; returns self at once."""
        why = missing_pouch()
        if why:
            raise PartyError(why)
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sgrepl-", dir=os.environ.get("TMPDIR") or "/tmp")
        os.makedirs(self.dir, exist_ok=True)
        if self not in _live:
            _live.append(self)
        # The spec goes in a file, not on the command line, which any local
        # user can read: it may hold a password or a session cookie.
        spec_path = os.path.join(self.dir, self.name + ".json")
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.spec, f)
        where = script_dir(self.dir)
        err = open(os.path.join(self.dir, self.name + ".stderr"), "ab")
        try:
            self.proc = subprocess.Popen(
                [node_binary(), os.path.join(where, "replicate.mjs"), spec_path],
                cwd=where, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, close_fds=True)
        finally:
            err.close()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name=self.name, daemon=True)
        self._reader.start()
        return self

    def _read(self, stream):
        for raw in stream:
            now = time.monotonic()
            try:
                event = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                event = {"event": "output", "text": raw.decode("utf-8", "replace").rstrip()}
            if not isinstance(event, dict):
                event = {"event": "output", "text": str(event)}
            event["_t"] = now
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()
        stream.close()
        with self._cond:
            self._cond.notify_all()

    # -- looking at it
    def events(self, kind=None):
        """The events so far (dicts), those of kind (e.g. "error") only
        when given."""
        with self._cond:
            return [e for e in self._events if kind is None or e.get("event") == kind]

    def requests(self):
        """The client's requests to the remote so far: [(method, path, status)]."""
        return [(e["method"], e["path"], e["status"]) for e in self.events("request")]

    @property
    def final(self):
        """The last line's event {"ok", "status", "docs_read",
        "docs_written", "local_docs"}, or None before it."""
        finals = self.events("final")
        return finals[-1] if finals else None

    @property
    def ok(self):
        return self.final is not None and self.final.get("ok") is True and self.returncode == 0

    @property
    def status(self):
        """The HTTP status of the error that ended it (None without one)."""
        return self.final.get("status") if self.final else None

    def local_ids(self):
        return sorted(d["_id"] for d in (self.final or {}).get("local_docs", []))

    def stderr(self):
        """What the script wrote on stderr (kept after stop())."""
        if self.dir is None:
            return self._stderr
        try:
            with open(os.path.join(self.dir, self.name + ".stderr"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_for(self, status=None, event="error", timeout=30):
        """Waits until an event of kind event (any kind when None) with that
        HTTP status (any when None) arrives; returns it (with "_t"), or None
        when timeout seconds passed or the script ended first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for e in self._events[seen:]:
                    if (event is None or e.get("event") == event) and \
                            (status is None or e.get("status") == status):
                        return e
                seen = len(self._events)
                left = deadline - time.monotonic()
                reader_done = self._reader is None or not self._reader.is_alive()
                if left <= 0 or reader_done:
                    return None
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout=60):
        """Waits for the script to end; returns its exit status, or None
        when it is still running after timeout seconds."""
        if self.proc is None:
            return self.returncode
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stops the replication (SIGTERM: it cancels and prints its final
        line), then its process group if it lingers.  Safe to call more
        than once; returns the exit status."""
        try:
            proc = self.proc
            if proc is not None:
                sgtest.terminate(proc)
                self.returncode = proc.returncode
                if self._reader is not None:
                    self._reader.join(timeout=5)
                self.proc = None
        finally:
            if self in _live:
                _live.remove(self)
            if self._own_dir and self.dir and not os.environ.get("SG_KEEP"):
                self._stderr = self.stderr()
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
        return self.returncode


def replicate(spec, timeout=60, tmpdir=None):
    """Runs one replication (spec as for Replication) to its end and
    returns the stopped Replication: ok, status, final, events(),
    requests(), local_ids(), returncode.  A replication still running after
    timeout seconds is stopped (returncode then tells a signal)."""
    spec = dict(spec)
    spec.setdefault("timeout_ms", int(timeout * 1000))
    rep = Replication(spec, tmpdir=tmpdir)
    rep.start()
    try:
        rep.wait(timeout=timeout + 5)
    finally:
        rep.stop()
    return rep
