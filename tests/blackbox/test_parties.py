#!/usr/bin/env python3
"""test_parties: the OpenID Connect providers of tests/parties/, without syncgate.

Python plays the relying party against both: the code flow with PKCE
through oidc-provider's login and consent forms, the token endpoint's client
authentication, refresh token rotation and key rotation by restart; and for
misbehave.mjs its discovery, a token for every case file (signatures checked
here with the published keys), each misbehaviour of its endpoints and its
request counts.  What the syncgate tests rely on is checked here, so that a
failure there is syncgate's.
"""
import atexit
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.timeout(90)
parties.require_parties()

TMP = tempfile.mkdtemp(prefix="sgparties-", dir=os.environ.get("TMPDIR") or "/tmp")


@atexit.register
def _remove_tmp():
    if os.environ.get("SG_KEEP"):
        sys.stderr.write("test_parties: kept %s\n" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)


# --------------------------------------------------------------------------
# A relying party stand-in: /db/_oidc redirects to the provider with a
# state cookie, as syncgate does; /db/_oidc_callback counts its visitors.

class RelyingParty(http.server.BaseHTTPRequestHandler):
    auth_url = None
    hits = []

    def do_GET(self):
        RelyingParty.hits.append(self.path.split("?", 1)[0])
        if self.path.startswith("/db/_oidc?") or self.path == "/db/_oidc":
            self.send_response(302)
            self.send_header("Location", RelyingParty.auth_url)
            self.send_header("Set-Cookie", "sg-oidc-state=st4te; Path=/db; HttpOnly; Max-Age=300")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


rp = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RelyingParty)
threading.Thread(target=rp.serve_forever, daemon=True).start()
RP_PORT = rp.server_address[1]
CALLBACK = "http://127.0.0.1:%d/db/_oidc_callback" % RP_PORT
CLIENT = {"client_id": "syncgate", "client_secret": "s3cret-1", "redirect_uris": [CALLBACK]}
ACCOUNTS = {"alice": {"roles": ["editor"], "channels": ["news", "sport"]}}


# --------------------------------------------------------------------------
# Signature checks with the published keys (RSA PKCS#1 v1.5, ECDSA P-256)

DIGEST_INFO = {
    "RS256": ("sha256", "3031300d060960864801650304020105000420"),
    "RS384": ("sha384", "3041300d060960864801650304020205000430"),
    "RS512": ("sha512", "3051300d060960864801650304020305000440"),
}


def b64int(s):
    return int.from_bytes(parties.b64url_decode(s), "big")


def rsa_verify(jwk, alg, data, sig):
    n, e = b64int(jwk["n"]), b64int(jwk["e"])
    k = (n.bit_length() + 7) // 8
    if len(sig) != k or alg not in DIGEST_INFO:
        return False
    name, prefix = DIGEST_INFO[alg]
    info = bytes.fromhex(prefix) + hashlib.new(name, data).digest()
    want = b"\x00\x01" + b"\xff" * (k - 3 - len(info)) + b"\x00" + info
    return pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big") == want


P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff
P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
P256_G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
          0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)


def ec_add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    p = P256_P
    if a[0] == b[0]:
        if (a[1] + b[1]) % p == 0:
            return None
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, p) % p
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, p) % p
    x = (lam * lam - a[0] - b[0]) % p
    return x, (lam * (a[0] - x) - a[1]) % p


def ec_mul(k, pt):
    out = None
    while k:
        if k & 1:
            out = ec_add(out, pt)
        pt = ec_add(pt, pt)
        k >>= 1
    return out


def es256_verify(jwk, data, sig):
    if len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < P256_N and 0 < s < P256_N):
        return False
    z = int.from_bytes(hashlib.sha256(data).digest(), "big")
    w = pow(s, -1, P256_N)
    pt = ec_add(ec_mul(z * w % P256_N, P256_G), ec_mul(r * w % P256_N, (b64int(jwk["x"]),
                                                                        b64int(jwk["y"]))))
    return pt is not None and pt[0] % P256_N == r


def der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + body


def der_int(v):
    raw = v.to_bytes(v.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return der(0x02, raw)


def rsa_pem(jwk):
    """The SPKI PEM text of an RSA public JWK, as openssl writes it."""
    rsa = der(0x30, der_int(b64int(jwk["n"])) + der_int(b64int(jwk["e"])))
    algid = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    spki = der(0x30, algid + der(0x03, b"\x00" + rsa))
    b64 = base64.b64encode(spki).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"




def code_flow(prov, username, scope="openid email", extra=None, method="client_secret_basic",
              client=CLIENT):
    """Authorization request, login, token request: (AuthRequest,
    LoginResult, token Response)."""
    req = parties.authorization_request(prov.authorization_endpoint, client["client_id"], CALLBACK,
                                        scope=scope, extra=extra)
    res = parties.login(req.url, username)
    tok = parties.token_request(prov.token_endpoint, {
        "grant_type": "authorization_code", "code": res.params.get("code", ""),
        "redirect_uri": CALLBACK, "code_verifier": req.code_verifier},
        client["client_id"], client["client_secret"], method=method)
    return req, res, tok


def refresh(prov, token, method="client_secret_basic", client=CLIENT):
    return parties.token_request(prov.token_endpoint, {
        "grant_type": "refresh_token", "refresh_token": token},
        client["client_id"], client["client_secret"], method=method)


# --------------------------------------------------------------------------
# provider.mjs

with parties.Provider({"clients": [CLIENT], "accounts": ACCOUNTS, "rotate_refresh": True},
                      TMP, name="op") as op:
    disc = op.discovery()
    is_((disc["issuer"], disc["authorization_endpoint"], disc["token_endpoint"],
         disc["jwks_uri"]),
        (op.base, op.url("/auth"), op.url("/token"), op.url("/jwks")),
        "provider: discovery names the issuer http://127.0.0.1:PORT and its endpoints")
    is_((disc["token_endpoint_auth_methods_supported"], disc["code_challenge_methods_supported"]),
        (["client_secret_basic", "client_secret_post"], ["S256"]),
        "provider: client_secret_basic and _post, PKCE S256")

    # The login from a relying party's redirect: the state cookie is kept,
    # the callback itself is not visited.
    req = parties.authorization_request(op.authorization_endpoint, "syncgate", CALLBACK)
    RelyingParty.auth_url = req.url
    res = parties.login("http://127.0.0.1:%d/db/_oidc" % RP_PORT, "alice",
                        cookies={"other": "1"})
    is_(res.prompts, ["login", "consent"], "login: the login form, then the consent form")
    is_((res.url.split("?")[0], res.path.split("?")[0], res.params.get("state")),
        (CALLBACK, "/db/_oidc_callback", req.state),
        "login: ends at the redirect_uri with the state")
    like(res.params.get("code"), r"^[A-Za-z0-9_-]{20,}$", "login: a code in the callback URL")
    is_(res.cookies, {"other": "1", "sg-oidc-state": "st4te"},
        "login: the relying party's cookies are returned for the callback")
    is_(RelyingParty.hits, ["/db/_oidc"], "login: the callback is left to the test")
    tok = parties.token_request(op.token_endpoint, {
        "grant_type": "authorization_code", "code": res.params["code"], "redirect_uri": CALLBACK,
        "code_verifier": req.code_verifier}, "syncgate", "s3cret-1")
    is_(tok.status, 200, "token: the code exchanged with client_secret_basic and PKCE")
    header, claims = parties.decode_jwt(tok.body["id_token"])
    is_({k: claims.get(k) for k in ("iss", "aud", "nonce", "sub", "email", "roles", "channels")},
        {"iss": op.issuer, "aud": "syncgate", "nonce": req.nonce, "sub": "alice",
         "email": "alice@example.com", "roles": ["editor"], "channels": ["news", "sport"]},
        "token: the ID token's iss, aud, nonce, sub, email, roles and channels")
    jwks = op.request("GET", "/jwks").body
    is_([k["kid"] for k in jwks["keys"]], [header.get("kid")],
        "token: signed with the one published key")
    signing_input, _, sig = tok.body["id_token"].rpartition(".")
    ok(rsa_verify(jwks["keys"][0], header["alg"], signing_input.encode(),
                  parties.b64url_decode(sig)), "token: the RS256 signature verifies")
    rt1 = tok.body.get("refresh_token")
    ok(rt1, "token: a refresh token without offline_access (refresh_token grant allowed)")

    r1 = refresh(op, rt1)
    is_(r1.status, 200, "refresh: 200")
    rt2 = r1.body.get("refresh_token")
    ok(rt2 and rt2 != rt1, "refresh: rotate_refresh answers a different refresh token")
    _, rclaims = parties.decode_jwt(r1.body["id_token"])
    is_((rclaims.get("sub"), rclaims.get("email"), rclaims.get("nonce")),
        ("alice", "alice@example.com", req.nonce),
        "refresh: a new ID token for alice (oidc-provider keeps the first nonce)")
    is_(refresh(op, rt1).status, 400, "refresh: the rotated-away token is refused")

    # A second login reuses the provider session: only consent is asked.
    req2 = parties.authorization_request(op.authorization_endpoint, "syncgate", CALLBACK,
                                         scope="openid email offline_access",
                                         extra={"prompt": "consent"})
    res2 = parties.login(req2.url, "alice", jar=res.jar)
    is_(res2.prompts, ["consent"], "login: with the provider's cookie jar, consent only")
    tok2 = parties.token_request(op.token_endpoint, {
        "grant_type": "authorization_code", "code": res2.params.get("code", ""),
        "redirect_uri": CALLBACK, "code_verifier": req2.code_verifier}, "syncgate", "s3cret-1")
    is_((tok2.status, sorted(tok2.body.get("scope", "").split()), bool(tok2.body.get(
        "refresh_token"))), (200, ["email", "offline_access", "openid"], True),
        "offline_access with prompt=consent: granted, with a refresh token")

    req3, res3, tok3 = code_flow(op, "bob")
    _, claims3 = parties.decode_jwt(tok3.body["id_token"])
    is_({k: claims3.get(k) for k in ("sub", "email", "roles", "channels")},
        {"sub": "bob", "email": "bob@example.com", "roles": None, "channels": None},
        "any login name is an account; no roles or channels unless configured")
    rt3 = tok3.body["refresh_token"]
    reused = parties.token_request(op.token_endpoint, {
        "grant_type": "authorization_code", "code": res3.params["code"], "redirect_uri": CALLBACK,
        "code_verifier": req3.code_verifier}, "syncgate", "s3cret-1")
    is_((reused.status, reused.body.get("error")), (400, "invalid_grant"),
        "token: a code is used once")
    is_(refresh(op, rt3).status, 400, "token: a code used twice revokes its refresh token")

    bad = parties.authorization_request(op.authorization_endpoint, "syncgate", CALLBACK)
    bad_url = bad.url.replace("code_challenge=", "x_challenge=")
    resb = parties.login(bad_url, "alice", jar=res.jar)
    is_(resb.params.get("error"), "invalid_request", "PKCE is required")
    req4 = parties.authorization_request(op.authorization_endpoint, "syncgate", CALLBACK)
    res4 = parties.login(req4.url, "alice")
    tok4 = parties.token_request(op.token_endpoint, {
        "grant_type": "authorization_code", "code": res4.params["code"], "redirect_uri": CALLBACK,
        "code_verifier": parties.pkce_pair()[0]}, "syncgate", "s3cret-1")
    is_((tok4.status, tok4.body.get("error")), (400, "invalid_grant"),
        "a wrong code_verifier: invalid_grant")
    wrong = parties.token_request(op.token_endpoint, {"grant_type": "refresh_token",
                                                      "refresh_token": rt2},
                                  "syncgate", "wrong")
    is_((wrong.status, wrong.body.get("error")), (401, "invalid_client"),
        "a wrong client secret: 401 invalid_client")

    # Key rotation by restart with a new keys file.
    old_kids = op.key_ids()
    fetched = op.jwks_fetches()
    op.restart(keys_file=os.path.join(TMP, "op-keys-2.json"))
    new_kids = [k["kid"] for k in op.request("GET", "/jwks").body["keys"]]
    ok(len(new_kids) == 1 and new_kids != old_kids and new_kids == op.key_ids(),
       "restart with a new keys file: a new kid in the JWKS")
    is_(op.jwks_fetches(), fetched + 1, "jwks_fetches() counts GET /jwks over restarts")
    _, _, tok5 = code_flow(op, "alice")
    is_(parties.decode_jwt(tok5.body["id_token"])[0].get("kid"), new_kids[0],
        "after the restart tokens carry the new kid")
    pid = op.proc.pid

ok(not sgtest.alive(pid), "provider: no process left after the with block")

post_client = dict(CLIENT, client_id="post-client")
with parties.Provider({"clients": [post_client], "auth_methods": ["client_secret_post"]},
                      TMP) as op2:
    is_(op2.discovery()["token_endpoint_auth_methods_supported"], ["client_secret_post"],
        "auth_methods [client_secret_post]: discovery says so")
    _, _, tb = code_flow(op2, "dave", method="client_secret_basic", client=post_client)
    is_((tb.status, tb.body.get("error")), (401, "invalid_client"),
        "auth_methods [client_secret_post]: Basic is refused")
    _, _, tp = code_flow(op2, "dave", method="client_secret_post", client=post_client)
    is_((tp.status, parties.decode_jwt(tp.body["id_token"])[1].get("sub")), (200, "dave"),
        "auth_methods [client_secret_post]: client_secret_post works")
    is_(len(op2.requests("POST", "/token")), 2, "requests() counts the logged requests")
    op2.restart(auth_methods=["client_secret_basic"])
    _, _, tp = code_flow(op2, "dave", method="client_secret_post", client=post_client)
    is_((tp.status, tp.body.get("error")), (401, "invalid_client"),
        "auth_methods [client_secret_basic]: client_secret_post is refused")
    _, _, tb = code_flow(op2, "dave", method="client_secret_basic", client=post_client)
    is_(tb.status, 200, "auth_methods [client_secret_basic]: Basic works")

# --------------------------------------------------------------------------
# misbehave.mjs

SEGMENTS = {"two-segments": 2, "four-segments": 4, "five-segments": 5}

with parties.Misbehave({"client_id": "syncgate", "client_secret": "s3cret-2",
                        "algs": ["RS256", "ES256", "RS384"]}, TMP, name="bad") as mb:
    d = mb.discovery()
    is_((d["issuer"], d["authorization_endpoint"], d["token_endpoint"], d["jwks_uri"],
         d["id_token_signing_alg_values_supported"], d["token_endpoint_auth_methods_supported"]),
        (mb.base, mb.url("/authorize"), mb.url("/token"), mb.url("/jwks"),
         ["RS256", "ES256", "RS384"], ["client_secret_basic", "client_secret_post"]),
        "misbehave: discovery matches the configuration")
    keys = {k["kid"]: k for k in mb.jwks()["keys"]}
    is_(sorted((kid, k["kty"], k.get("alg")) for kid, k in keys.items()),
        [("e1", "EC", "ES256"), ("k1", "RSA", "RS256")],
        "misbehave: JWKS with k1 (RSA) and e1 (EC)")

    # One token per case file, checked against the case.
    names = parties.case_names()
    ok(len(names) >= 30, "%d case files" % len(names))
    for name in names:
        case = parties.load_case(name)
        token = mb.mint(name, nonce="n-%s" % name)
        shape = case.get("shape")
        segs = token.split(".")
        if shape in SEGMENTS:
            ok(len(segs) == SEGMENTS[shape] and len(set(segs[2:])) <= 1,
               "mint %s: %d segments" % (name, SEGMENTS[shape]))
            continue
        if shape == "padded":
            ok(len(segs) == 3 and segs[1].endswith("=") and "=" not in segs[0] + segs[2],
               "mint %s: the payload segment is padded" % name)
            continue
        if shape == "oversize":
            ok(len(token) > 16384 and len(segs) == 3, "mint %s: %d bytes" % (name, len(token)))
            continue
        header, claims = parties.decode_jwt(token)
        want_h = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
        want_h.update(case.get("header", {}))
        subst = {"@kid": "k1", "@ec_kid": "e1", "@client_id": "syncgate", "@sub": "carol",
                 "@issuer": mb.issuer, "@nonce": "n-%s" % name}
        want_h = {k: subst.get(v, v) if isinstance(v, str) else v
                  for k, v in want_h.items() if v is not None}
        if "jku" in want_h:
            like(header.get("jku"), r"^http://127\.0\.0\.1:\d+/jwks$",
                 "mint %s: @jku is the loopback listener" % name)
            want_h["jku"] = header.get("jku")
        ok_h = header == want_h
        want_c = {"iss": mb.issuer, "aud": "syncgate", "sub": "carol", "nonce": "n-%s" % name}
        for k, v in case.get("claims", {}).items():
            if v is None:
                want_c.pop(k, None)
            elif isinstance(v, list):
                want_c[k] = [subst.get(x, x) for x in v]
            elif isinstance(v, str) and not v.startswith("@now"):
                want_c[k] = subst.get(v, v)
        dup = case.get("duplicate")
        want_c.update(dup or {})  # json.loads keeps the last of a name
        plain = {k: claims.get(k) for k in want_c}
        raw = parties.b64url_decode(segs[1]).decode()
        ok_dup = not dup or all(raw.count(json.dumps(k)) == 2 for k in dup)
        ok_times = all(isinstance(claims.get(k), int) or k not in claims
                       for k in ("iat", "exp", "nbf") if k not in want_c)
        if not ok(ok_h and plain == want_c and ok_dup and ok_times,
                  "mint %s: header and claims as the case says" % name):
            diag("header %r want %r" % (header, want_h))
            diag("claims %r want %r" % (plain, want_c))
        data, sig = (segs[0] + "." + segs[1]).encode(), parties.b64url_decode(segs[2])
        mode = case.get("sign", "rs256")
        if mode == "rs256":
            ok(rsa_verify(keys["k1"], header["alg"], data, sig),
               "mint %s: %s signature by k1 verifies" % (name, header["alg"]))
        elif mode == "es256":
            ok(es256_verify(keys["e1"], data, sig),
               "mint %s: ES256 signature by e1 verifies" % name)
        elif mode == "bad-signature":
            ok(not rsa_verify(keys["k1"], "RS256", data, sig) and len(sig) == 256,
               "mint %s: a 256-byte signature that does not verify" % name)
        elif mode == "none":
            is_(segs[2], "", "mint %s: empty signature" % name)
        elif mode == "hs256-public-pem":
            mac = hmac.new(rsa_pem(keys["k1"]).encode(), data, hashlib.sha256).digest()
            ok(hmac.compare_digest(mac, sig), "mint %s: HMAC keyed with the PEM public key" % name)

    valid = mb.mint("valid-rs256")
    _, vc = parties.decode_jwt(valid)
    ok("nonce" not in vc and vc["exp"] - vc["iat"] == 300,
       "mint without nonce: no nonce claim; exp = iat + 300")
    _, past = parties.decode_jwt(mb.mint("exp-past"))
    ok(past["exp"] < past["iat"] + 600 and past["exp"] <= vc["iat"] - 120,
       "mint exp-past: @now-N is in the past")
    is_(parties.decode_jwt(mb.mint("valid-rs256", sub="zoe"))[1]["sub"], "zoe",
        "mint sub=: the subject")
    r = mb.request("GET", "/mint?case=no-such-case")
    is_(r.status, 400, "mint of an unknown case: 400")

    # The code flow against misbehave.mjs.
    mb.clear_stats()
    sent = {"/authorize": 0, "/token": 0}

    def authorize(req):
        sent["/authorize"] += 1
        r = sgtest.http_request(mb.port, "GET", req.url[len(mb.base):])
        loc = r.headers.get("location", "")
        return r.status, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query)), loc

    def exchange(req, code, method="client_secret_basic", secret="s3cret-2", verifier=None):
        sent["/token"] += 1
        return parties.token_request(mb.token_endpoint, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier or req.code_verifier}, "syncgate", secret, method=method)

    req = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    st, q, loc = authorize(req)
    is_((st, loc.split("?")[0], q.get("state"), bool(q.get("code"))), (302, CALLBACK, req.state,
                                                                       True),
        "misbehave /authorize: 302 to the redirect_uri with code and state")
    t = exchange(req, q["code"])
    is_((t.status, sorted(t.body)), (200, ["access_token", "expires_in", "id_token",
                                           "refresh_token", "token_type"]),
        "misbehave /token: code exchanged (Basic, PKCE)")
    _, tc = parties.decode_jwt(t.body["id_token"])
    is_((tc["nonce"], tc["sub"], tc["iss"], tc["aud"]), (req.nonce, "carol", mb.issuer, "syncgate"),
        "misbehave /token: the nonce of /authorize in the ID token of the current case")
    is_(exchange(req, q["code"]).body.get("error"), "invalid_grant",
        "misbehave: a code is used once")
    last = mb.last()
    is_((last["authorize"]["code_challenge_method"], last["token"]["basic"],
         last["token"]["form"].get("client_secret")), ("S256", True, None),
        "misbehave /_last: what the relying party sent")

    req = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    _, q, _ = authorize(req)
    is_(exchange(req, q["code"], verifier=parties.pkce_pair()[0]).body.get("error"),
        "invalid_grant", "misbehave: a verifier not matching the challenge is refused")
    req = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    _, q, _ = authorize(req)
    is_(exchange(req, q["code"], secret="wrong").status, 401, "misbehave: a wrong secret: 401")
    _, q, _ = authorize(req)
    tp = exchange(req, q["code"], method="client_secret_post")
    is_((tp.status, mb.last()["token"]["form"].get("client_secret")), (200, "(given)"),
        "misbehave: client_secret_post works; the secret is not echoed")
    nopkce = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    _, q, _ = authorize(nopkce._replace(url=nopkce.url.replace("code_challenge_method=S256",
                                                               "code_challenge_method=plain")))
    is_(q.get("error"), "invalid_request", "misbehave /authorize: PKCE S256 required")

    # The current case applies to /token, the refresh grant included.
    mb.set_case("exp-past", sub="mallory")
    is_(mb.case(), {"case": "exp-past", "sub": "mallory"}, "set_case: case and subject")
    rt = t.body["refresh_token"]
    tr = refresh(mb, rt, client=dict(CLIENT, client_secret="s3cret-2"))
    sent["/token"] += 1
    _, rc = parties.decode_jwt(tr.body["id_token"])
    if not ok(tr.status == 200 and rc["sub"] == "mallory" and rc["exp"] < time.time()
              and "nonce" not in rc and tr.body["refresh_token"] == rt,
              "refresh: the current case and subject, no nonce, the same refresh token"):
        diag("%r %r" % (tr, rc))
    mb.set_case("token-error")
    req = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    _, q, _ = authorize(req)
    te = exchange(req, q["code"])
    is_((te.status, te.body), (400, {"error": "invalid_grant"}),
        "case token-error: 400 invalid_grant")
    mb.set_case("token-oversize")
    _, q, _ = authorize(req)
    to = exchange(req, q["code"])
    is_((to.status, to.headers.get("content-length"), len(to.body.get("access_token", ""))),
        (200, str(1024 * 1024 + 1),
         1024 * 1024 + 1 - len('{"access_token":"","token_type":"Bearer"}')),
        "case token-oversize: a 1 MiB + 1 byte JSON body")
    mb.set_case("authorize-error")
    st, q, _ = authorize(req)
    is_((st, q.get("error"), q.get("state")), (302, "access_denied", req.state),
        "case authorize-error: redirect with error and state")
    like(q.get("error_description"), r'<no> & "left"',
         "case authorize-error: a description with markup")
    mb.set_case("valid-es256")
    is_(mb.case()["sub"], "carol", "set_case without sub: the configured subject again")
    _, q, _ = authorize(req)
    is_(parties.decode_jwt(exchange(req, q["code"]).body["id_token"])[0]["alg"], "ES256",
        "case valid-es256 at /token: an ES256 token")
    try:
        mb.set_case("no-such-case")
        ok(False, "set_case of an unknown case raises")
    except parties.PartyError:
        ok(True, "set_case of an unknown case raises")

    stats = mb.stats()
    is_((stats.get("/authorize"), stats.get("/token"), stats.get("/jwks")),
        (sent["/authorize"], sent["/token"], None),
        "stats: requests per path since clear_stats()")
    is_(mb.jku_hits(), 0, "the jku listener saw nothing")
    jku = parties.decode_jwt(mb.mint("jku-header"))[0]["jku"]
    u = urllib.parse.urlsplit(jku)
    sgtest.http_request(u.port, "GET", u.path)
    is_((mb.jku_hits(), mb.stats().get("jku:/jwks")), (1, 1),
        "a request to the jku listener counts")
    is_(mb.jwks_fetches(), 0, "jwks_fetches() from stats")
    mb.jwks()
    is_(mb.jwks_fetches(), 1, "jwks_fetches() counts GET /jwks")

    # Key rotation.
    kid = mb.rotate()
    is_(kid, "k2", "rotate: the new RSA kid")
    is_(sorted(k["kid"] for k in mb.jwks()["keys"]), ["e1", "k2"], "rotate: k1 replaced by k2")
    vh = parties.decode_jwt(mb.mint("valid-rs256"))[0]
    is_(vh.get("kid"), "k2", "rotate: tokens now signed by k2")

    mb.restart(auth_methods=["client_secret_post"], discovery_issuer="http://127.0.0.1:1",
               jwks_alg=False)
    d = mb.discovery()
    is_((d["issuer"], d["token_endpoint_auth_methods_supported"], mb.issuer),
        ("http://127.0.0.1:1", ["client_secret_post"], mb.base),
        "discovery_issuer and auth_methods after a restart")
    ok(all("alg" not in k for k in mb.jwks()["keys"]), "jwks_alg false: keys without alg")
    req = parties.authorization_request(mb.authorization_endpoint, "syncgate", CALLBACK)
    _, q, _ = authorize(req)
    is_(exchange(req, q["code"]).status, 401, "auth_methods [client_secret_post]: Basic refused")
    _, q, _ = authorize(req)
    is_(exchange(req, q["code"], method="client_secret_post").status, 200,
        "auth_methods [client_secret_post]: post accepted")
    mpid = mb.proc.pid

ok(not sgtest.alive(mpid), "misbehave: no process left after the with block")
rp.shutdown()
rp.server_close()
done()
