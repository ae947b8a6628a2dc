"""The in-process call (`DataverseApp.respond`) answers exactly what the WSGI entry answers.

The service reaches its embedded Dataverse through `transport.WsgiSession`, which now
hands each request to `respond` without building a WSGI environ. Every request here goes
both ways, through `call_app` (the environ a server would build, as before) and through
`call_direct`, and the two replies must be the same status, the same headers in the same
order and the same body bytes. Writes run twice, so their new ids are the one thing
allowed to differ (replaced by a placeholder before comparing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.dataverse.transport import WsgiSession, call_app, call_direct
from connector.dataverse_local import ADMIN_USER_ID, create_dataverse_app, issue_token
from connector.dataverse_local.app import MAX_BODY_BYTES, DataverseApp
from connector.solution.model import Schema

ORIGIN = "http://embedded-dataverse.invalid"
ROOT = f"{ORIGIN}/api/data/v9.2"
_GUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def app(tmp_path: Path, schema: Schema) -> Iterator[DataverseApp]:
    dataverse = create_dataverse_app(tmp_path / "direct.sqlite", schema=schema)
    yield dataverse
    dataverse.store.close()


@pytest.fixture
def headers(app: DataverseApp) -> dict[str, str]:
    token = issue_token(app.store.signing_secret, user_id=ADMIN_USER_ID, lifetime_secs=3600)
    return {
        "Accept": "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        "Authorization": f"Bearer {token}",
    }


def _both(
    app: DataverseApp, method: str, url: str, headers: dict[str, str], body: bytes = b""
) -> tuple[requests.Response, requests.Response]:
    return (
        call_app(app, method, url, headers, body),
        call_direct(app, method, url, headers, body),
    )


def _wire(response: requests.Response, *, ids: set[bytes]) -> tuple[object, ...]:
    """Status line, header list and body, with the given ids replaced by a placeholder."""

    def plain(data: bytes) -> bytes:
        return _GUID.sub(lambda m: b"<id>" if m.group() in ids else m.group(), data)

    return (
        response.status_code,
        response.reason,
        [(name, plain(value.encode()).decode()) for name, value in response.headers.items()],
        plain(response.content),
    )


def _same(pair: tuple[requests.Response, requests.Response], *, ids: bool = False) -> None:
    wsgi, direct = pair
    new = set(_GUID.findall(wsgi.content + direct.content))
    for response in pair:
        new.update(_GUID.findall(" ".join(response.headers.values()).encode()))
    assert _wire(wsgi, ids=new if ids else set()) == _wire(direct, ids=new if ids else set())


def _contact(app: DataverseApp, headers: dict[str, str], name: str) -> str:
    body = json.dumps({"firstname": name, "lastname": "Direct", "emailaddress1": f"{name}@x.test"})
    reply = call_app(
        app, "POST", f"{ROOT}/contacts", {**headers, "Content-Type": "application/json"}, body
    )
    assert reply.status_code == 204, reply.content
    return reply.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def test_reads_answer_the_same_bytes_both_ways(app: DataverseApp, headers: dict[str, str]) -> None:
    ann = _contact(app, headers, "Ann")
    _contact(app, headers, "Bob")
    annotated = {**headers, "Prefer": 'odata.include-annotations="*",odata.maxpagesize=1'}
    for url, sent in [
        (f"{ROOT}/", headers),
        (f"{ROOT}/contacts({ann})", headers),
        (f"{ROOT}/contacts({ann})?$select=fullname,emailaddress1", headers),
        (f"{ROOT}/contacts({ann})", {**headers, "If-None-Match": "null"}),
        (f"{ROOT}/contacts?$select=fullname&$filter=emailaddress1%20eq%20'Ann%40x.test'", headers),
        (f"{ROOT}/contacts?$select=fullname&$orderby=fullname%20desc", annotated),
        (f"{ROOT}/contacts?$filter=contains(fullname,'a')&$count=true&$top=1", headers),
        (f"{ROOT}/contacts/$count", headers),
        (f"{ROOT}/WhoAmI", headers),
        (f"{ROOT}/EntityDefinitions(LogicalName='contact')?$select=LogicalName", headers),
        # What a server sees of a port, a percent-encoded path and a default port.
        (f"http://embedded-dataverse.invalid:8080/api/data/v9.2/contacts({ann})", headers),
        (f"http://embedded-dataverse.invalid:80/api/data/v9.2/contacts({ann})", headers),
        (f"{ROOT}/contacts%28{ann}%29/fullname", headers),
    ]:
        _same(_both(app, "GET", url, sent))


def test_a_conditional_read_answers_304_both_ways(
    app: DataverseApp, headers: dict[str, str]
) -> None:
    ann = _contact(app, headers, "Ann")
    etag = call_app(app, "GET", f"{ROOT}/contacts({ann})", headers, b"").headers["ETag"]
    pair = _both(app, "GET", f"{ROOT}/contacts({ann})", {**headers, "If-None-Match": etag})
    assert pair[0].status_code == 304
    _same(pair)


def test_refusals_answer_the_same_bytes_both_ways(
    app: DataverseApp, headers: dict[str, str]
) -> None:
    ann = _contact(app, headers, "Ann")
    unsigned = {name: value for name, value in headers.items() if name != "Authorization"}
    forged = {**headers, "Authorization": "Bearer abc.def.ghi"}
    sent_json = {**headers, "Content-Type": "application/json"}
    cases = [
        ("GET", f"{ROOT}/contacts({ann})", unsigned, b""),
        ("GET", f"{ROOT}/contacts({ann})", forged, b""),
        ("GET", f"{ROOT}/nosuchset", headers, b""),
        ("GET", f"{ROOT}/contacts?$filter=nosuchcolumn%20eq%201", headers, b""),
        ("GET", f"{ROOT}/contacts?$skip=1", headers, b""),
        ("PUT", f"{ROOT}/contacts", headers, b""),
        ("PATCH", f"{ROOT}/contacts({ann})", {**sent_json, "If-Match": 'W/"1"'}, b"{}"),
        ("POST", f"{ROOT}/contacts", sent_json, b"{not json"),
        ("POST", f"{ROOT}/contacts", sent_json, b'{"nosuchcolumn": 1}'),
        ("DELETE", f"{ROOT}/contacts(00000000-0000-0000-0000-000000000001)", headers, b""),
        ("POST", f"{ROOT}/contacts", sent_json, b" " * (MAX_BODY_BYTES + 1)),
    ]
    for method, url, sent, body in cases:
        pair = _both(app, method, url, sent, body)
        assert pair[0].status_code >= 400, (method, url)
        _same(pair)


def test_writes_answer_the_same_bytes_both_ways(app: DataverseApp, headers: dict[str, str]) -> None:
    sent_json = {**headers, "Content-Type": "application/json"}
    body = b'{"firstname": "Cy", "lastname": "Write"}'
    _same(_both(app, "POST", f"{ROOT}/contacts", sent_json, body), ids=True)
    # A created record's representation carries its own timestamps and version: compare
    # the status and headers, then each body with those left out.
    represented = {**sent_json, "Prefer": "return=representation"}
    wsgi, direct = _both(app, "POST", f"{ROOT}/contacts?$select=fullname", represented, body)
    assert (wsgi.status_code, wsgi.headers.keys()) == (direct.status_code, direct.headers.keys())
    assert wsgi.json()["fullname"] == direct.json()["fullname"] == "Cy Write"
    ann = _contact(app, headers, "Ann")
    patched = {**sent_json, "If-Match": "*"}
    _same(_both(app, "PATCH", f"{ROOT}/contacts({ann})", patched, b'{"lastname": "Again"}'))


def test_a_batch_answers_the_same_bytes_both_ways(
    app: DataverseApp, headers: dict[str, str]
) -> None:
    def batch(boundary: str) -> bytes:
        parts = [
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n\r\n"
            f"GET {ROOT}/contacts?$select=fullname&$top=1 HTTP/1.1\r\n"
            "Accept: application/json\r\n\r\n",
            f"--{boundary}\r\nContent-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n\r\n"
            f"GET {ROOT}/nosuchset HTTP/1.1\r\n\r\n",
            f"--{boundary}--\r\n",
        ]
        return "".join(parts).encode()

    _contact(app, headers, "Ann")
    sent = {**headers, "Content-Type": "multipart/mixed; boundary=batch_x"}
    pair = _both(app, "POST", f"{ROOT}/$batch", sent, batch("batch_x"))
    # Both parts answered (the failed one makes the batch a 400, as the client expects).
    assert b"Ann Direct" in pair[0].content and b"nosuchset" in pair[0].content
    _same(pair, ids=True)


def test_the_session_takes_the_direct_call(
    app: DataverseApp, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = _contact(app, headers, "Ann")
    environs: list[object] = []
    wsgi = DataverseApp.__call__

    def counting(self: DataverseApp, environ: dict[str, object], start_response: object) -> object:
        environs.append(environ)
        return wsgi(self, environ, start_response)

    monkeypatch.setattr(DataverseApp, "__call__", counting)
    reply = WsgiSession(app).request("GET", f"{ROOT}/contacts({ann})", headers=headers)
    assert reply.status_code == 200
    assert reply.json()["fullname"] == "Ann Direct"
    assert environs == []


def test_the_quick_url_readers_read_as_urllib_does() -> None:
    """The in-process call splits URLs, encodes and decodes query strings without urllib's
    per-character loops; on any text they must give urllib's own answers."""
    import random
    import string
    from urllib.parse import parse_qsl, quote, unquote, urlsplit

    from connector.dataverse.query import _QUERY_SAFE, encode_query
    from connector.dataverse_local.app import _query_args, _split_url, _unquote

    def split(read: object, url: str) -> object:
        try:
            parts = read(url)  # type: ignore[operator]
        except ValueError:
            return "refused"
        return (parts.scheme, parts.netloc, parts.path, parts.query)

    rng = random.Random(14)
    text = list(string.printable + "éü€😀\u00a0ß") + ["%C3", "%A9", "%E2%82", "%AC", "%ZZ", "%4"]
    for _ in range(5000):
        value = "".join(rng.choice(text) for _ in range(rng.randint(0, 30)))
        assert encode_query([("k", value)]) == "k=" + quote(value, safe=_QUERY_SAFE)
        assert _unquote(value) == unquote(value)
        assert _query_args(value) == dict(parse_qsl(value, keep_blank_values=True))
        url = (
            rng.choice(["http://", "https://", "HTTP://", "http:/", "", " http://"])
            + rng.choice(["host", "host:80", "h:8080", "", "[::1]", "a@b", "h\t"])
            + rng.choice(["", "/", "/api/data/v9.2/contacts", "?x", "/p?q=1#f"])
            + value[:12]
        )
        assert split(_split_url, url) == split(urlsplit, url), url
