#!/usr/bin/python3
"""The secure port with real node processes: mutual TLS, generated and
cross-generated certificates, users and tokens, and every refusal.

- cross-signed: B holds a user; A (fresh, its own generated CA) runs add_node with
  verify_tls:false and the credentials; B signs A's CSR; both replicate over verified mutual
  TLS, keep doing so after restarts, and the password appears in none of their files;
- tokens: a JWT from create_authentication_tokens works as `Bearer`; forged, expired and
  refresh tokens are refused;
- refusals: wrong password, unknown user, insufficient role, unknown CA, name mismatch,
  expired certificate, each a SQL error on the asking side and a log line on the refusing one;
- own certificates: add_certificate of a CA and node certificates (made with the openssl
  command line), and the tls: section, give verified links without any exchange;
- interop: `openssl s_client` completes TLS 1.3 with the node and verifies its certificate.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SqlError, check, check_eq, pick_port, run_tests, wait_connected,  # noqa: E402
                     wait_rows, wait_until)

A_IP, B_IP, C_IP, D_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
PASSWORD = "s3cret-Pa55word-4-test"


def secure_port(c):
    if not hasattr(c, "sport"):
        c.sport = pick_port(c.test_name + "-tls", c.ips + ["127.0.0.9"])
    return c.sport


def secure_config(c, n, extra=()):
    """A node that serves only the secure port (no plain port)."""
    lines = ["replication:", f"  hostname: {n.ip}", f"  bind: {n.ip}", f"  securePort: {secure_port(c)}",
             "  reconnectMaxDelay: 500ms"]
    return "\n".join(lines + list(extra)) + "\n"


def start_secure(c, ip, extra=()):
    n = c.node(ip)
    n.start(config=secure_config(c, n, extra))
    return n


def sql_error(node, q, *params):
    try:
        node.scalar(q, *params)
    except SqlError as e:
        return str(e)
    raise AssertionError(f"{node.ip}: expected an error from {q}")


def add_node_error(node, body):
    return sql_error(node, "SELECT repl_add_node(?)", json.dumps(body))


def files_containing(root, needle):
    """Every file under root whose bytes contain needle (database, WAL, keys, logs...)."""
    hits = []
    for d, _, names in os.walk(root):
        for name in names:
            p = os.path.join(d, name)
            try:
                with open(p, "rb") as f:
                    if needle.encode() in f.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def wait_log(node, text, timeout=10):
    wait_until(lambda: any(text in l for l in node.log_text().splitlines()), timeout, f"{node.ip} logs {text!r}")


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"openssl {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-subj", f"/CN={name}", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def make_cert(d, ca, ip, days=30, name=None):
    name = name or f"node-{ip}"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={ip}", "-addext", f"subjectAltName=IP:{ip}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", str(days),
            "-copy_extensions", "copyall", "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def read(path):
    with open(path) as f:
        return f.read()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, payload):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def make_table(*nodes):
    for n in nodes:
        n.sql("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)")


def test_generated_identity_kept_across_restart(c):
    a = start_secure(c, A_IP)
    certs = a.sql("SELECT name, is_authority, has_private_key, json_extract(details, '$.subject_alt_name') FROM hdb_certificate ORDER BY is_authority")
    check_eq(len(certs), 2, f"a generated CA and node certificate: {certs}")
    check_eq(certs[0][0], A_IP, "the node certificate is named after the node")
    check("127.0.0.2" in certs[0][3], f"IP subjectAltName: {certs[0][3]}")
    check_eq([certs[1][1], certs[1][2]], [1, 1], "the CA is an authority whose key this node holds")
    key_dir = a.db_path + "-keys"
    check_eq(oct(os.stat(key_dir).st_mode & 0o777), "0o700", "key directory permissions")
    for f in os.listdir(key_dir):
        check_eq(oct(os.stat(os.path.join(key_dir, f)).st_mode & 0o777), "0o600", f"key file {f} permissions")
    check(not a.sql("SELECT 1 FROM hdb_certificate WHERE certificate LIKE '%PRIVATE KEY%'"), "no private key in hdb_certificate")
    check(not files_containing(a.db_path, "PRIVATE KEY"), "no private key in the database file")
    before = a.sql("SELECT name, certificate FROM hdb_certificate ORDER BY name")
    a.restart(a.last_config)
    check_eq(a.sql("SELECT name, certificate FROM hdb_certificate ORDER BY name"), before, "certificates after a restart")


def test_cross_signed_certificates(c):
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    make_table(a, b)
    check_eq(b.op("add_user", {"username": "admin", "password": PASSWORD, "role": "super_user"}),
             {"message": "admin successfully added"}, "add_user")
    check_eq(b.sql("SELECT username, role FROM hdb_user"), [["admin", "super_user"]], "hdb_user shows no password")
    reply = a.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                              "authorization": {"username": "admin", "password": PASSWORD}})
    check_eq(reply, {"message": f"Successfully added '{B_IP}' to cluster"}, "add_node with credentials")
    wait_connected(a, b)
    issuer = a.scalar(f"SELECT json_extract(details, '$.issuer') FROM hdb_certificate WHERE name = '{A_IP}'")
    check(f"hdbrepl CA {B_IP}" in issuer, f"A's certificate is now signed by B's CA: {issuer}")
    check(a.scalar(f"SELECT count(*) FROM hdb_certificate WHERE is_authority AND name LIKE 'hdbrepl CA {B_IP}%'") == 1, "A trusts B's CA")
    wait_log(b, f"certificate exchange with {A_IP}: signed a certificate")
    a.sql("INSERT INTO dog VALUES (1, 'from a')")
    b.sql("INSERT INTO dog VALUES (2, 'from b')")
    wait_rows(b, "SELECT id, name FROM dog ORDER BY id", [[1, "from a"], [2, "from b"]], what="A's row on B")
    wait_rows(a, "SELECT id, name FROM dog ORDER BY id", [[1, "from a"], [2, "from b"]], what="B's row on A")
    # Restarts keep the trust: no credentials are needed again.
    a.restart(a.last_config)
    b.restart(b.last_config)
    wait_connected(a, b, timeout=20)
    a.sql("INSERT INTO dog VALUES (3, 'after restart')")
    wait_rows(b, "SELECT name FROM dog WHERE id = 3", [["after restart"]], what="a write after both restarted")
    # The password was used once and written nowhere.
    b64 = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    for needle in (PASSWORD, b64):
        check_eq(files_containing(c.dir, needle), [], f"files holding {needle[:6]}...")


def test_users_replicate_with_system(c):
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    b.op("add_user", {"username": "admin", "password": PASSWORD, "role": "super_user"})
    a.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                      "authorization": {"username": "admin", "password": PASSWORD}})
    wait_connected(a, b)
    wait_rows(a, "SELECT username, role FROM hdb_user", [["admin", "super_user"]], what="B's user on A")
    a.op("add_user", {"username": "ops", "password": PASSWORD + "2", "role": "cluster_user"})
    wait_rows(b, "SELECT username FROM hdb_user ORDER BY 1", [["admin"], ["ops"]], what="A's new user on B")
    # A user added on A authorizes a certificate exchange on B.
    cnode = start_secure(c, C_IP)
    reply = cnode.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                                  "authorization": {"username": "ops", "password": PASSWORD + "2"}})
    check_eq(reply, {"message": f"Successfully added '{B_IP}' to cluster"}, "a replicated user authorizes on another node")
    wait_connected(cnode, b)
    # drop_user on A reaches B: the user no longer authorizes there.
    a.op("drop_user", {"username": "ops"})
    wait_rows(b, "SELECT username FROM hdb_user ORDER BY 1", [["admin"]], what="the drop on B")
    d = start_secure(c, D_IP)
    err = add_node_error(d, {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                             "authorization": {"username": "ops", "password": PASSWORD + "2"}})
    check("unknown user 'ops'" in err, f"a dropped user is refused on B: {err}")
    # A node that does not replicate `system` keeps its users to itself.
    e = c.node("127.0.0.6")
    e.start(config=secure_config(c, e, ["  databases: [main]"]))
    e.op("add_user", {"username": "local-only", "password": PASSWORD, "role": "cluster_user"})
    b.op("add_user", {"username": "joiner", "password": PASSWORD, "role": "cluster_user"})
    e.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                      "authorization": {"username": "joiner", "password": PASSWORD}})
    wait_connected(e, b)
    make_table(e)
    e.sql("INSERT INTO dog VALUES (1, 'main still replicates')")
    wait_rows(b, "SELECT name FROM dog", [["main still replicates"]], what="E's data on B")
    check_eq(b.sql("SELECT count(*) FROM hdb_user WHERE username = 'local-only'"), [[0]], "E's user stays on E")
    check_eq(e.sql("SELECT count(*) FROM hdb_user WHERE username = 'admin'"), [[0]], "B's users do not reach E")


def test_bearer_token(c):
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    b.op("add_user", {"username": "joiner", "password": PASSWORD, "role": "cluster_user"})
    tokens = b.op("create_authentication_tokens", {"username": "joiner", "password": PASSWORD})
    check(set(tokens) == {"operation_token", "refresh_token"}, f"token reply {tokens}")
    refresh = tokens["refresh_token"]
    err = add_node_error(a, {"hostname": B_IP, "port": secure_port(c), "verify_tls": False, "authorization": f"Bearer {refresh}"})
    check("refresh token" in err, f"a refresh token does not authorize: {err}")
    token = tokens["operation_token"]
    reply = a.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False, "authorization": f"Bearer {token}"})
    check_eq(reply, {"message": f"Successfully added '{B_IP}' to cluster"}, "add_node with a bearer token")
    wait_connected(a, b)
    check_eq(files_containing(c.dir, token), [], "files holding the token (databases, WALs, keys, logs)")


def test_credential_refusals(c):
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    b.op("add_user", {"username": "admin", "password": PASSWORD, "role": "super_user"})
    b.op("add_user", {"username": "reader", "password": PASSWORD, "role": "read_only"})
    base = {"hostname": B_IP, "port": secure_port(c), "verify_tls": False}
    cases = [
        ({"username": "admin", "password": "wrong"}, "wrong password for user 'admin'"),
        ({"username": "nobody", "password": PASSWORD}, "unknown user 'nobody'"),
        ({"username": "reader", "password": PASSWORD}, "has role 'read_only', which may not join nodes"),
        ("Bearer not.a.jwt", "invalid token"),
        ("Digest abc", "bad authorization"),
    ]
    for auth, want in cases:
        err = add_node_error(a, dict(base, authorization=auth))
        check(want in err, f"authorization {auth!r}: error {err!r} should say {want!r}")
        check("certificate exchange with '127.0.0.3' failed" in err, f"the error names the exchange: {err}")
    wait_log(b, "refused /hdbrepl/sign from 127.0.0.2 (127.0.0.2): wrong password")
    wait_log(b, "has role 'read_only'")
    # Tokens: one signed with another secret, one expired (signed with B's real secret).
    tokens = b.op("create_authentication_tokens", {"username": "admin", "password": PASSWORD})
    head, body, sig = tokens["operation_token"].split(".")
    forged_body = b64url(json.dumps(dict(json.loads(base64.urlsafe_b64decode(body + "==")), sub="admin", role="super_user",
                                         exp=int(time.time()) + 10 ** 6)).encode())
    err = add_node_error(a, dict(base, authorization=f"Bearer {head}.{forged_body}.{sig}"))
    check("bad token signature" in err, f"forged token: {err}")
    secret = base64.b64decode(b.scalar("SELECT value FROM hdbrepl_meta WHERE key = 'token_secret'"))
    now = int(time.time())
    expired = hs256(secret, {"sub": "admin", "typ": "operation", "iat": now - 100, "exp": now - 10})
    err = add_node_error(a, dict(base, authorization=f"Bearer {expired}"))
    check("token expired" in err, f"expired token: {err}")
    none_alg = b64url(b'{"alg":"none","typ":"JWT"}') + "." + body + "."
    err = add_node_error(a, dict(base, authorization=f"Bearer {none_alg}"))
    check("invalid token" in err, f"alg none: {err}")
    # Nothing of any of this reached A's node list or trust.
    check_eq(a.sql(f"SELECT count(*) FROM hdb_nodes WHERE name = '{B_IP}'"), [[0]], "refused node not added")
    check_eq(a.sql(f"SELECT count(*) FROM hdb_certificate WHERE name LIKE 'hdbrepl CA {B_IP}%'"), [[0]], "B's CA not trusted")
    # The drop of a user is immediate.
    b.op("drop_user", {"username": "admin"})
    err = add_node_error(a, dict(base, authorization={"username": "admin", "password": PASSWORD}))
    check("unknown user 'admin'" in err, f"dropped user: {err}")


def test_certificate_refusals(c):
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    # Unknown CA, both ways: A does not trust B's generated CA, B does not trust A's.
    err = add_node_error(a, {"hostname": B_IP, "port": secure_port(c)})
    check("server certificate not trusted (unknown CA)" in err, f"unknown CA: {err}")
    err = add_node_error(a, {"hostname": B_IP, "port": secure_port(c), "verify_tls": False})
    check("client certificate refused: unknown CA" in err, f"B refuses A's certificate: {err}")
    wait_log(b, "client certificate refused: unknown CA")
    check_eq(a.sql(f"SELECT count(*) FROM hdb_nodes WHERE name = '{B_IP}'"), [[0]], "a refused node is not kept")
    # Name mismatch: D answers on 127.0.0.5 with a certificate for 127.0.0.4 (its hostname).
    d = c.node(D_IP)
    d.start(config="\n".join(["replication:", f"  hostname: {C_IP}", f"  bind: {D_IP}", f"  securePort: {secure_port(c)}"]) + "\n")
    d_ca = d.scalar("SELECT certificate FROM hdb_certificate WHERE is_authority")
    a.op("add_certificate", {"name": "D's CA", "certificate": d_ca, "is_authority": True})
    err = add_node_error(a, {"hostname": D_IP, "port": secure_port(c)})
    check(f"does not match name '{D_IP}'" in err, f"name mismatch: {err}")
    wait_log(a, "does not match name")
    # Expired: E presents a configured certificate that expired yesterday.
    tmp = os.path.join(c.dir, "pki")
    os.makedirs(tmp)
    ca = make_ca(tmp, "expiry-ca")
    cert = make_cert(tmp, ca, C_IP, days=-1)
    e = c.node(C_IP)
    e.start(config="\n".join(["replication:", f"  hostname: {C_IP}", f"  bind: {C_IP}", f"  securePort: {secure_port(c)}",
                              "tls:", f"  certificate: {cert[0]}", f"  privateKey: {cert[1]}", f"  certificateAuthority: {ca[0]}"]) + "\n")
    a.op("add_certificate", {"name": "expiry CA", "certificate": read(ca[0]), "is_authority": True})
    err = add_node_error(a, {"hostname": C_IP, "port": secure_port(c)})
    check("server certificate has expired" in err, f"expired server certificate: {err}")
    # ...and the other way: E dials A, A refuses E's expired client certificate.
    e.op("add_certificate", {"name": "A's CA", "certificate": a.scalar(
        f"SELECT certificate FROM hdb_certificate WHERE name LIKE 'hdbrepl CA {A_IP}%'"), "is_authority": True})
    err = add_node_error(e, {"hostname": A_IP, "port": secure_port(c)})
    check("certificate has expired" in err, f"A refuses an expired client certificate: {err}")
    wait_log(a, "client certificate refused: certificate has expired")


def test_own_certificates_and_replacement(c):
    tmp = os.path.join(c.dir, "pki")
    os.makedirs(tmp)
    ca = make_ca(tmp, "corp-ca")
    a, b = start_secure(c, A_IP), start_secure(c, B_IP)
    make_table(a, b)
    for n in (a, b):
        cert = make_cert(tmp, ca, n.ip)
        check_eq(n.op("add_certificate", {"name": "corp-ca", "certificate": read(ca[0]), "is_authority": True}),
                 {"message": "Successfully added certificate: corp-ca"}, "add_certificate of a CA")
        n.op("add_certificate", {"name": f"corp-{n.ip}", "certificate": read(cert[0]), "is_authority": False,
                                 "private_key": read(cert[1])})
        check_eq(n.sql(f"SELECT has_private_key, uses FROM hdb_certificate WHERE name = 'corp-{n.ip}'"), [[1, '["replication"]']],
                 "the node certificate is held with its key")
        check(not files_containing(n.db_path, "PRIVATE KEY"), "the private key is not in the database")
    # No exchange: both trust corp-ca and present corp certificates now.
    check_eq(a.op("add_node", {"hostname": B_IP, "port": secure_port(c)}), {"message": f"Successfully added '{B_IP}' to cluster"},
             "add_node with verification")
    wait_connected(a, b)
    a.sql("INSERT INTO dog VALUES (1, 'over corp certificates')")
    wait_rows(b, "SELECT name FROM dog", [["over corp certificates"]])
    # Bad input is refused with clear errors and changes nothing.
    other = make_cert(tmp, ca, A_IP, name="other")
    err = sql_error(a, "SELECT repl_add_certificate(?)", json.dumps({"name": "x", "certificate": read(other[0]),
                                                                  "is_authority": False, "private_key": read(cert[1])}))
    check("does not belong to the certificate" in err, err)
    err = sql_error(a, "SELECT repl_add_certificate(?)", json.dumps({"name": "x", "certificate": "garbage", "is_authority": False}))
    check("not a PEM certificate" in err, err)
    err = sql_error(a, "SELECT repl_add_certificate(?)", json.dumps({"name": "x", "certificate": read(other[0]), "is_authority": True}))
    check("not a CA" in err, err)
    err = sql_error(a, "SELECT repl_add_certificate(?)", json.dumps({"name": "x", "certificate": read(other[1]), "is_authority": False}))
    check("holds a private key" in err, err)
    check_eq(a.sql("SELECT count(*) FROM hdb_certificate WHERE name = 'x'"), [[0]], "nothing added by bad input")
    # Removing the corp CA on B: A's next connection is refused.
    b.op("remove_certificate", {"name": "corp-ca"})
    a.restart(a.last_config)
    wait_until(lambda: "unknown CA" in str((b.log_text())), 20, "B refuses A once it no longer trusts corp-ca")


def test_tls_config_section(c):
    tmp = os.path.join(c.dir, "pki")
    os.makedirs(tmp)
    ca = make_ca(tmp, "config-ca")
    nodes = []
    for ip, peer in ((A_IP, B_IP), (B_IP, A_IP)):
        cert = make_cert(tmp, ca, ip)
        n = c.node(ip)
        n.start(config="\n".join(["replication:", f"  hostname: {ip}", f"  bind: {ip}", f"  securePort: {secure_port(c)}",
                                  "  routes:", f"    - wss://{peer}:{secure_port(c)}", "  reconnectMaxDelay: 500ms",
                                  "tls:", f"  certificate: {cert[0]}", f"  privateKey: {cert[1]}", f"  certificateAuthority: {ca[0]}"]) + "\n")
        nodes.append(n)
    a, b = nodes
    wait_connected(a, b)
    wait_connected(b, a)
    make_table(a)
    a.sql("INSERT INTO dog VALUES (7, 'via tls: files')")
    wait_rows(b, "SELECT name FROM dog", [["via tls: files"]])
    # A private key that does not belong to the certificate stops repl_start with a clear error.
    bad = c.node(C_IP)
    cert = make_cert(tmp, ca, C_IP)
    other = make_cert(tmp, ca, C_IP, name="other")
    err = sql_error(bad, "SELECT repl_start(?)", "\n".join(["replication:", f"  hostname: {C_IP}", f"  securePort: {secure_port(c)}",
                                                         "tls:", f"  certificate: {cert[0]}", f"  privateKey: {other[1]}"]) + "\n")
    check("tls.privateKey does not belong to tls.certificate" in err, err)
    check_eq(json.loads(bad.scalar("SELECT repl_cluster_status()"))["is_enabled"], False, "no node half-started")


def test_openssl_s_client_interop(c):
    a = start_secure(c, A_IP)
    d = os.path.join(c.dir, "sclient")
    os.makedirs(d)
    ca = os.path.join(d, "ca.pem")
    with open(ca, "w") as f:
        f.write(a.scalar("SELECT certificate FROM hdb_certificate WHERE is_authority"))
    req = f"GET /hdbrepl?node=client HTTP/1.1\r\nHost: {A_IP}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    r = subprocess.run(["openssl", "s_client", "-connect", f"{A_IP}:{secure_port(c)}", "-CAfile", ca, "-verify_return_error",
                        "-verify_ip", A_IP, "-ign_eof"], input=req, capture_output=True, text=True, timeout=30)
    out = r.stdout
    check("Verify return code: 0 (ok)" in out, f"s_client verified the node's certificate:\n{out[-2000:]}\n{r.stderr[-500:]}")
    check("TLSv1.3" in out, f"TLS 1.3 negotiated:\n{out[-1500:]}")
    check("403 Forbidden" in out and "no client certificate" in out, f"no client certificate is refused at the HTTP level:\n{out[-1500:]}")
    wait_log(a, "no client certificate")


def test_plain_port_refusal_is_reported(c):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start()
    b.start()  # B knows nothing of A: its plain port refuses A's address
    reply = a.op("add_node", {"hostname": B_IP})
    check_eq(reply, {"message": f"Successfully added '{B_IP}' to cluster"}, "plain add_node is accepted (B may add A later)")
    wait_until(lambda: "HTTP 403" in str((a.connection(B_IP) or {}).get("lastError")), 15, "A's status shows B's refusal")
    wait_log(b, f"refused connection from {A_IP}")
    check_eq(a.connection(B_IP)["state"], "refused", "state of a refused target")


if __name__ == "__main__":
    run_tests(globals())
