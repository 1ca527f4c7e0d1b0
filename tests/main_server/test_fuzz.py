"""Property test: no request to main_server, however malformed, gets a 5xx.

Every route and method is sent generated bodies (bytes that are not UTF-8, JSON of every shape,
forms, surrogates), content types, cookies (garbage, non-ASCII, forged), query strings and
headers, logged in and not. Each answer is below 500 and names the problem in JSON under
/api/; afterwards the app still answers /healthz. The in-process app is driven through Quart's
test client; `test_fuzz_real_process` sends the same kind of traffic over a real socket to
`python -m etckit main-server`.
"""

from __future__ import annotations

import json
import socket
import string
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.chain import Chain
from tests.support.procs import wait_http
from tests.support.system import free_port

from .raw import asgi

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ROUTES = ["/", "/welcome", "/workbooks", "/workbooks/w1", "/workbooks/%ED%A0%BD",
          "/login/fake", "/login/anonymous", "/login/sso", "/login/sso/callback", "/logout",
          "/api/login-options", "/api/me", "/api/assign", "/api/nothing", "/healthz",
          "/static/etckit.css", "/static/../pyproject.toml"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
SERVED = [("GET", "/"), ("GET", "/welcome"), ("GET", "/workbooks"), ("GET", "/workbooks/w1"),
          ("POST", "/login/fake"), ("POST", "/login/anonymous"), ("POST", "/login/sso"),
          ("GET", "/login/sso/callback"), ("POST", "/logout"), ("GET", "/api/login-options"),
          ("GET", "/api/me"), ("POST", "/api/assign"), ("GET", "/healthz")]

SURROGATE = st.sampled_from(["\ud83d", "\udfff", "a\ud800b"])
TEXT = st.one_of(st.text(max_size=40), SURROGATE,
                 st.text(alphabet=st.characters(codec="latin-1"), max_size=20))
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**400),
                                                            max_value=10**400),
                      st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
ASSIGN_BODY = st.fixed_dictionaries(
    {}, optional={"purpose": st.one_of(st.sampled_from(["list", "workbook"]), JSON_VALUE),
                  "workbook": st.one_of(st.sampled_from(["w1", "nope", "x" * 65]),
                                        JSON_VALUE)})


def dumps(value: object) -> bytes:
    """JSON as a hostile client writes it: surrogates raw, NaN and huge integers as is."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8",
                                                                        "surrogatepass")


BODY = st.one_of(
    st.binary(max_size=200),
    st.just(b"\xff\xfe{\"purpose\": \"list\"}"),
    st.just(b"{\"purpose\": \"\xed\xa0\xbd\"}"),
    st.just(b"[" * 5000 + b"]" * 5000),
    JSON_VALUE.map(dumps),
    ASSIGN_BODY.map(dumps),
    st.dictionaries(TEXT, TEXT, max_size=4).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")),
    st.tuples(st.sampled_from(["csrf", "name"]), TEXT).map(
        lambda kv: f"{kv[0]}={quote(kv[1], errors='surrogatepass')}".encode()),
)
CONTENT_TYPE = st.sampled_from([
    None, "application/json", "application/json; charset=latin-1",
    "application/json; charset=nope", "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-16", "multipart/form-data",
    "multipart/form-data; boundary=x", "text/plain", "text/html", "application/json\u00e9"])
HEADER_SAFE = string.printable.strip("\r\n\x0b\x0c") + "\t"
COOKIE_VALUE = st.one_of(
    st.text(alphabet=HEADER_SAFE, max_size=60),
    st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n\x00"),
            max_size=30),
    st.sampled_from(["", "\"", "\\", "\u00e9\u00e8", "=;=", "a" * 5000]))
COOKIE_HEADER = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["etckit_session", "etckit_csrf", "etckit_sso", "other"]), COOKIE_VALUE,
    max_size=3).map(lambda d: "; ".join(f"{k}={v}" for k, v in d.items())))
QUERY = st.one_of(
    st.just(b""),
    st.binary(max_size=60),
    st.text(alphabet=string.printable, max_size=40).map(str.encode),
    st.sampled_from([b"%", b"%zz", b"%ff%fe", b"code=%ED%A0%BD&state=x", b"a=1&a=2&&&=",
                     b"state=" + b"s" * 3000, b"error=access_denied&state=\xff",
                     b"code=c&state=" + b"%00" * 10]),
    st.dictionaries(TEXT, TEXT, max_size=3).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")),
)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["Origin", "Accept", "X-Forwarded-For", "X-Forwarded-Proto", "Host",
                     "Content-Length"]),
    st.one_of(st.text(alphabet=HEADER_SAFE, max_size=40),
              st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n\x00"),
                      max_size=20),
              st.sampled_from(["null", "http://evil.example", "application/json",
                               "text/html", "1.2.3.4, ::1", "https", "-1", "9" * 30])),
    max_size=3)

TARGET = st.one_of(st.sampled_from(SERVED), st.sampled_from(SERVED),
                   st.tuples(st.sampled_from(METHODS), st.sampled_from(ROUTES)))
REQUEST = st.fixed_dictionaries({
    "target": TARGET, "body": BODY,
    "content_type": CONTENT_TYPE, "cookie": COOKIE_HEADER, "query": QUERY,
    "headers": EXTRA_HEADERS, "logged_in": st.booleans(), "with_csrf": st.booleans()})


def cookie_value(response, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return header.split(";")[0].split("=", 1)[1]
    return ""


async def send(app, r: dict, token: str, seed: str, session: str) -> tuple[int, bytes]:
    headers = [(k, v) for k, v in r["headers"].items() if k != "Content-Length"]
    headers.append(("Host", "localhost"))
    if r["content_type"] is not None:
        headers.append(("Content-Type", r["content_type"]))
    cookie = r["cookie"]
    if r["logged_in"]:
        cookie = f"etckit_session={session}; etckit_csrf={seed}"
    elif cookie is None:
        cookie = f"etckit_csrf={seed}"
    headers.append(("Cookie", cookie))
    body = r["body"]
    if r["with_csrf"] and r["method"] == "POST":
        body = b"csrf=" + token.encode() + b"&" + body
        if r["content_type"] is None:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    headers.append(("Content-Length", str(len(body))))
    return await asgi(app, r["method"], r["path"], r["query"], headers, body)


@pytest.fixture
async def fuzz_app(make_app):
    """One app, one fake user's session and one CSRF token for all the examples."""
    app = make_app(main_server__anonymous_logins_per_minute="0",
                   main_server__trusted_proxies="127.0.0.1,::1", sso__enabled="false")
    client = app.test_client()
    options = await client.get("/api/login-options")
    token = (await options.get_json())["csrf"]
    seed = cookie_value(options, "etckit_csrf")
    login = await client.post("/login/fake", form={"name": "fuzz", "csrf": token})
    return app, client, token, seed, cookie_value(login, "etckit_session")


def check(status: int, body: bytes, r: dict) -> None:
    assert 200 <= status < 500, (status, r, body[:400])
    assert b"Traceback" not in body
    if r["path"].startswith("/api/") and status >= 400 and r["method"] != "HEAD":
        answer = json.loads(body)
        assert answer["error"] and answer["message"], answer


@SQLITE
@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(r=REQUEST)
async def test_no_request_gets_a_5xx(fuzz_app, r):
    app, client, token, seed, session = fuzz_app
    r = {**r, "method": r["target"][0], "path": r["target"][1]}
    status, body = await send(app, r, token, seed, session)
    check(status, body, r)
    health = await client.get("/healthz")
    assert health.status_code == 200


def raw_http(port: int, r: dict, token: str, seed: str, session: str) -> int:
    """One request over a real socket, bytes as generated; the status the server answers."""
    headers = [(k, v) for k, v in r["headers"].items() if k not in ("Content-Length", "Host")]
    headers.append(("Host", f"127.0.0.1:{port}"))
    if r["content_type"] is not None:
        headers.append(("Content-Type", r["content_type"]))
    cookie = f"etckit_session={session}; etckit_csrf={seed}" if r["logged_in"] else r["cookie"]
    if cookie is not None:
        headers.append(("Cookie", cookie))
    body = r["body"]
    if r["with_csrf"] and r["method"] == "POST":
        body = b"csrf=" + token.encode() + b"&" + body
    query = b"?" + r["query"] if r["query"] else b""
    head = r["method"].encode() + b" " + r["path"].encode() + query + b" HTTP/1.1\r\n"
    head += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 "), (answer[:200], r)
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def real_main_server(tmp_path):
    port = free_port()
    chain = Chain(tmp_path, auth__fake_login="true", main_server__port=str(port),
                  main_server__public_url=f"http://127.0.0.1:{port}",
                  main_server__anonymous_logins_per_minute="0")
    proc = chain.start("main-server")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc=proc)
        with httpx.Client(base_url=base) as http:
            options = http.get("/api/login-options")
            token, seed = options.json()["csrf"], options.cookies["etckit_csrf"]
            login = http.post("/login/fake", data={"name": "fuzz", "csrf": token})
            session = login.cookies["etckit_session"]
        yield proc, port, token, seed, session
    finally:
        chain.stop()


@pytest.mark.slow
def test_fuzz_real_process(real_main_server):
    proc, port, token, seed, session = real_main_server

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(r=REQUEST)
    def one(r):
        r = {**r, "method": r["target"][0], "path": r["target"][1]}
        status = raw_http(port, r, token, seed, session)
        assert status < 500, (status, r)

    one()
    assert proc.popen.poll() is None, proc.output()
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert '"internal"' not in proc.output() and "request failed" not in proc.output()
