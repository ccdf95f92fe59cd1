#!/usr/bin/python3
"""A hostile client of the certificate exchange (/hdbrepl/sign on the secure port), with a
raw TLS WebSocket client made from python's `ssl` and CSRs made with the openssl command:

- the certificate signed carries exactly the name the exchange was authorised for (CN and one
  subjectAltName), whatever names the CSR asks for;
- the node's own name and the name of a current member are refused; a member that presents
  its trusted certificate may run add_node with authorization again (it keeps its certificate);
- a CA sent by the requester is never trusted;
- an operation token authorizes one exchange (also after a restart of the node);
- an unknown user costs what a wrong password costs;
- attempts are limited per source address (429) and the credential queue is bounded (503),
  while the node keeps replicating.
"""
import base64
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import RawWs, check, check_eq, run_tests, wait_connected, wait_rows, wait_until  # noqa: E402
from security_test import A_IP, B_IP, PASSWORD, make_table, openssl, secure_port, start_secure, wait_log  # noqa: E402

ATTACKER = "127.0.0.20"  # source address of the raw client (any loopback address works)


class TlsWs(RawWs):
    """RawWs over TLS: the upgrade to `target` with an Authorization header, optionally
    presenting a client certificate. The server is not verified (first contact)."""

    def __init__(self, src_ip, dst_ip, port, target, authorization=None, cert=None, timeout=10):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(cert[0], cert[1])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(timeout)
        raw.bind((src_ip, 0))
        raw.connect((dst_ip, port))
        self.sock = ctx.wrap_socket(raw)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        req = (f"GET {target} HTTP/1.1\r\nHost: {dst_ip}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{auth}"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = self._read_until(b"\r\n\r\n", timeout)
        self.response = head.decode("latin-1")
        parts = self.response.split("\r\n", 1)[0].split(" ")
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.body = ""
        if self.status != 101:  # the refusal's reason is the text/plain body
            self.body = self._read_until(b"\x00", 2).decode("latin-1")


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sign(node, claimed, request, authorization, src=ATTACKER, cert=None):
    """One exchange: (HTTP status, refusal body, JSON reply or None)."""
    ws = TlsWs(src, node.ip, secure_port(node.cluster), f"/hdbrepl/sign?node={claimed}", authorization, cert)
    try:
        if ws.status != 101:
            return ws.status, ws.response + ws.body, None
        check(ws.send_binary(json.dumps(request).encode()), "sending the request")
        for _ in range(20):
            f = ws.recv_frame(10)
            check(f is not None, "an answer to the certificate request")
            if f[0] == 0x2:
                return 101, "", json.loads(f[1])
        raise AssertionError("no binary answer")
    finally:
        ws.close()


def make_csr(d, cn, sans):
    """A CSR (and its key) asking for CN=cn and the given subjectAltName entries."""
    name = f"csr-{len(os.listdir(d))}"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}", "-addext", "subjectAltName=" + ",".join(sans), cwd=d)
    with open(os.path.join(d, f"{name}.csr")) as f:
        return f.read()


def cert_text(d, pem):
    p = os.path.join(d, "issued.pem")
    with open(p, "w") as f:
        f.write(pem)
    return openssl("x509", "-in", p, "-noout", "-subject", "-ext", "subjectAltName,basicConstraints", cwd=d)


def workdir(c):
    d = os.path.join(c.dir, "hostile")
    os.makedirs(d, exist_ok=True)
    return d


def with_user(c, ip=B_IP, user="joiner", role="cluster_user"):
    b = start_secure(c, ip)
    b.op("add_user", {"username": user, "password": PASSWORD, "role": role})
    return b


def fingerprint(node):
    return node.scalar(f"SELECT json_extract(details, '$.fingerprint_sha256') FROM hdb_certificate WHERE name = '{node.ip}'")


def test_signed_certificate_has_exactly_the_authorised_name(c):
    b = with_user(c)
    d = workdir(c)
    claimed = "127.0.0.21"
    csr = make_csr(d, claimed, [f"IP:{claimed}", f"IP:{B_IP}", f"IP:{A_IP}", "DNS:evil.example", "DNS:localhost"])
    status, why, reply = sign(b, claimed, {"node_name": claimed, "csr": csr}, basic("joiner", PASSWORD))
    check_eq(status, 101, f"an authorised exchange is accepted: {why}")
    check("certificate" in reply, f"a certificate is signed: {reply}")
    text = cert_text(d, reply["certificate"])
    check(f"CN = {claimed}" in text or f"CN={claimed}" in text, f"CN is the authorised name:\n{text}")
    sans = [l.strip() for l in text.split("X509v3 Subject Alternative Name:")[1].strip().splitlines()[0].split(",")]
    check_eq(sans, [f"IP Address:{claimed}"], "exactly one subjectAltName, the authorised name")
    check("CA:FALSE" in text, f"not a CA:\n{text}")
    for other in (B_IP, A_IP, "evil.example", "localhost"):
        check(not re.search(r"(?<![\w.])" + re.escape(other) + r"(?![\w.])", text), f"{other} is not in the certificate:\n{text}")
    wait_log(b, f"certificate exchange with {claimed}: signed a certificate for exactly '{claimed}'")


def test_own_and_member_names_refused_rejoin_works(c):
    a, b = start_secure(c, A_IP), with_user(c)
    make_table(a, b)
    body = {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
            "authorization": {"username": "joiner", "password": PASSWORD}}
    check_eq(a.op("add_node", body), {"message": f"Successfully added '{B_IP}' to cluster"}, "A joins B")
    wait_connected(a, b)
    wait_until(lambda: b.sql(f"SELECT count(*) FROM hdb_nodes WHERE name = '{A_IP}'") == [[1]], 10, "A is a member on B")
    d = workdir(c)
    for name, want in ((A_IP, "is a member of this cluster"), (B_IP, "is this node's own name")):
        status, why, reply = sign(b, name, {"node_name": name, "csr": make_csr(d, name, [f"IP:{name}"])}, basic("joiner", PASSWORD))
        check_eq(status, 403, f"an exchange for {name} is refused: {why} {reply}")
        check(want in why, f"the refusal says why: {why}")
        wait_log(b, f"refused /hdbrepl/sign from {ATTACKER} ({name}): '{name}' {want}")
    # The legitimate member runs add_node with authorization again (e.g. after a restart): it
    # presents the certificate B signed, so it is admitted and keeps that certificate.
    before = fingerprint(a)
    a.restart(a.last_config)
    check_eq(a.op("add_node", body), {"message": f"Successfully added '{B_IP}' to cluster"}, "A runs add_node again")
    check_eq(fingerprint(a), before, "A keeps its certificate")
    wait_log(b, f"certificate exchange with {A_IP}: no certificate signed: '{A_IP}' is a member of this cluster and keeps its certificate")
    wait_connected(a, b)
    a.sql("INSERT INTO dog VALUES (1, 'still a member')")
    wait_rows(b, "SELECT name FROM dog", [["still a member"]])
    # A removed node may have a new certificate signed (it is no longer a member).
    b.op("remove_node", {"hostname": A_IP})
    wait_until(lambda: b.sql(f"SELECT count(*) FROM hdb_nodes WHERE name = '{A_IP}'") == [[0]], 10, "A removed on B")
    status, why, reply = sign(b, A_IP, {"node_name": A_IP, "csr": make_csr(d, A_IP, [f"IP:{A_IP}"])}, basic("joiner", PASSWORD))
    check(status == 101 and "certificate" in (reply or {}), f"a removed node can be signed again: {status} {why} {reply}")


def test_requester_ca_is_never_trusted(c):
    b = with_user(c)
    d = workdir(c)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "evil-ca.key",
            "-out", "evil-ca.pem", "-subj", "/CN=evil CA", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "evil-ca.pem")) as f:
        evil = f.read()
    trusted_before = b.sql("SELECT name FROM hdb_certificate WHERE is_authority ORDER BY name")
    claimed = "127.0.0.22"
    status, why, reply = sign(b, claimed, {"node_name": claimed, "certificate_authority": evil}, basic("joiner", PASSWORD))
    check_eq(status, 101, f"accepted up to the request: {why}")
    check("error" in reply and "needs a CSR" in reply["error"], f"a request with only a CA is refused: {reply}")
    # With a CSR as well, the CSR is signed and the CA still ignored.
    reply = sign(b, claimed, {"node_name": claimed, "certificate_authority": evil, "csr": make_csr(d, claimed, [f"IP:{claimed}"])},
                 basic("joiner", PASSWORD))[2]
    check("certificate" in reply, f"the CSR is signed: {reply}")
    check_eq(b.sql("SELECT name FROM hdb_certificate WHERE is_authority ORDER BY name"), trusted_before, "B's authorities unchanged")
    check_eq(b.sql("SELECT count(*) FROM hdb_certificate WHERE details LIKE '%evil CA%'"), [[0]], "the evil CA is not stored")


def test_operation_token_single_use(c):
    b = with_user(c)
    d = workdir(c)
    tokens = b.op("create_authentication_tokens", {"username": "joiner", "password": PASSWORD})
    bearer = f"Bearer {tokens['operation_token']}"
    claimed = "127.0.0.23"
    req = {"node_name": claimed, "csr": make_csr(d, claimed, [f"IP:{claimed}"])}
    status, why, reply = sign(b, claimed, req, bearer)
    check(status == 101 and "certificate" in reply, f"the first use is accepted: {status} {why} {reply}")
    status, why, _ = sign(b, "127.0.0.24", dict(req, node_name="127.0.0.24"), bearer)
    check_eq(status, 401, f"a second use is refused: {why}")
    check("token already used" in why, f"the refusal says so: {why}")
    wait_log(b, "token already used")
    check_eq(b.sql("SELECT count(*) FROM hdbrepl_used_tokens"), [[1]], "the token's id is remembered, locally")
    b.restart(b.last_config)
    status, why, _ = sign(b, "127.0.0.25", dict(req, node_name="127.0.0.25"), bearer)
    check(status == 401 and "token already used" in why, f"still refused after a restart: {status} {why}")
    status, why, _ = sign(b, "127.0.0.25", dict(req, node_name="127.0.0.25"), f"Bearer {tokens['refresh_token']}")
    check(status == 401 and "refresh token" in why, f"a refresh token never authorizes: {status} {why}")
    fresh = b.op("create_authentication_tokens", {"username": "joiner", "password": PASSWORD})["operation_token"]
    status, why, reply = sign(b, "127.0.0.26", dict(req, node_name="127.0.0.26", csr=make_csr(d, "127.0.0.26", ["IP:127.0.0.26"])),
                              f"Bearer {fresh}")
    check(status == 101 and "certificate" in reply, f"a new token works: {status} {why}")


def answer_ms(node, authorization, src):
    t0 = time.monotonic()
    status, why, _ = sign(node, "127.0.0.30", {}, authorization, src=src)
    return (time.monotonic() - t0) * 1000, status, why


def test_unknown_user_costs_a_wrong_password(c):
    b = with_user(c)
    wrong, unknown = [], []
    for i in range(6):  # alternate, each from its own address (the attempt limit is per address)
        ms, status, why = answer_ms(b, basic("joiner", "not-the-password"), "127.0.0.31")
        check(status == 401 and "wrong password" in why, why)
        wrong.append(ms)
        ms, status, why = answer_ms(b, basic("nobody", "not-the-password"), "127.0.0.32")
        check(status == 401 and "unknown user 'nobody'" in why, why)
        unknown.append(ms)
    w, u = sorted(wrong)[3], sorted(unknown)[3]
    print(f"    median answer: wrong password {w:.1f} ms, unknown user {u:.1f} ms")
    check(u >= 0.5 * w, f"an unknown user is not answered faster ({u:.1f} ms against {w:.1f} ms)")
    # Every refusal is also a cluster_status entry, not only a log line.
    wait_until(lambda: b.status()["refusals"]["total"] >= 12, 5, "the 12 refused exchanges counted in cluster_status")
    check(any("unknown user 'nobody'" in r["reason"] and r["from"] == "127.0.0.32" for r in b.status()["refusals"]["recent"]),
          "the refusal is listed with its address and reason")


def test_attempt_limit_and_bounded_queue_while_replicating(c):
    a, b = start_secure(c, A_IP), with_user(c)
    make_table(a, b)
    a.op("add_node", {"hostname": B_IP, "port": secure_port(c), "verify_tls": False,
                      "authorization": {"username": "joiner", "password": PASSWORD}})
    wait_connected(a, b)
    # Attempts from one address: 10 at once, then one a second; beyond that 429 at once.
    results, t0 = [], time.monotonic()
    for _ in range(24):
        ms, status, why = answer_ms(b, basic("joiner", "guess"), "127.0.0.40")
        results.append(status)
    elapsed = time.monotonic() - t0
    computed = results.count(401)
    check(results.count(429) >= 3, f"attempts over the limit are refused with 429: {results}")
    check(computed <= 10 + elapsed + 1, f"at most 10 + 1/s attempts were checked: {results} in {elapsed:.1f}s")
    check(set(results) <= {401, 429}, f"answers {results}")
    wait_log(b, "refused /hdbrepl/sign from 127.0.0.40 (127.0.0.30): too many certificate requests")
    # A user whose replicated hash costs the most accepted (1,000,000 iterations, ~0.3 s a
    # check): many requests at once fill the credential queue, the rest get 503 at once, and
    # replication goes on meanwhile (the checks run on their own thread, not the io thread).
    salt = os.urandom(16)
    slow = "pbkdf2-sha256$1000000${}${}".format(base64.b64encode(salt).decode(),
                                                base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"x", salt, 1000000)).decode())
    b.sql("INSERT INTO hdbrepl_users(username, role, password_hash) VALUES ('slow', 'cluster_user', ?)", slow)
    # The node notices a change of its users within a data_version check (250 ms).
    wait_until(lambda: "wrong password" in answer_ms(b, basic("slow", "guess"), "127.0.0.41")[2], 5, "B knows the slow user",
               interval=0.3)
    answers = []
    lock = threading.Lock()

    def one(i):
        try:
            _, status, _ = answer_ms(b, basic("slow", "guess"), f"127.0.1.{i + 1}")
        except Exception as e:  # a refused or dropped connection is an answer too
            status = f"error {e}"
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    t_write = time.monotonic()
    a.sql("INSERT INTO dog VALUES (1, 'while the checks run')")
    wait_rows(b, "SELECT name FROM dog", [["while the checks run"]], timeout=10)
    replicated_s = time.monotonic() - t_write
    for t in threads:
        t.join(60)
    check(not any(t.is_alive() for t in threads), "every request was answered")
    print(f"    answers {sorted(map(str, answers))}; a row replicated in {replicated_s:.2f}s meanwhile")
    check(answers.count(503) >= 5, f"a full credential queue refuses with 503: {answers}")
    check(set(answers) <= {401, 503}, f"answers {answers}")
    check(replicated_s < 2.0, f"replication went on while the checks ran ({replicated_s:.2f}s)")
    wait_log(b, "busy checking other certificate requests")


if __name__ == "__main__":
    run_tests(globals())
