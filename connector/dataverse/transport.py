"""Handing `DataverseClient` requests to a WSGI app in this process, without a network.

The service talks to the embedded Dataverse with the very same `DataverseClient` it uses
for a real environment. `WsgiSession` stands in for the client's `requests.Session`: it
builds the WSGI environ itself and answers a `requests.Response`, so every byte of the
HTTP exchange (method, path, query, headers, body; status, headers, body) is kept.

Why not `requests` with a transport adapter: a `requests.Session` prepares each request
and scans the process environment for proxy settings on every call, and werkzeug's
`EnvironBuilder` parses what it was just given; profiling put those at more than half of
an in-process retrieve (bench/dataverse_vs_sqlite.py). `WsgiAdapter` remains for code that
wants a real `requests.Session` (mounted on an origin); both go through `call_app`.
"""

from __future__ import annotations

import datetime
import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from io import BytesIO
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

__all__ = ["DirectApp", "WsgiAdapter", "WsgiSession", "call_app", "call_direct"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _environ(method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The WSGI environ of one request (PEP 3333), as a server would build it."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or "localhost"
    port = str(parts.port) if parts.port else _DEFAULT_PORTS.get(scheme, "80")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.upper(),
        "SCRIPT_NAME": "",
        # A server hands the app the decoded path as latin-1 text (PEP 3333).
        "PATH_INFO": unquote(parts.path or "/", encoding="latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": host,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "HTTP_HOST": parts.netloc,
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key != "CONTENT_LENGTH":
            environ["HTTP_" + key] = value
    return environ


class DirectApp(Protocol):
    """A WSGI app that also answers a request without an environ (the embedded
    Dataverse's `DataverseApp.respond`): the same status line, headers and body."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]: ...

    def respond(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, list[tuple[str, str]], bytes]: ...


def call_app(
    app: Any, method: str, url: str, headers: Mapping[str, str], body: bytes | str | None
) -> requests.Response:
    """Run one request through the WSGI callable `app`; its reply as a `requests.Response`."""
    data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
        started[:] = [status, response_headers]
        return lambda chunk: None

    app_iter: Iterable[bytes] = app(_environ(method, url, headers, data), start_response)
    try:
        content = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    status, response_headers = started
    return _response(url, status, response_headers, content)


def call_direct(
    app: DirectApp, method: str, url: str, headers: Mapping[str, str], body: bytes | str | None
) -> requests.Response:
    """`call_app` without the environ: the app's `respond` gives the same reply."""
    data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    status, response_headers, content = app.respond(method, url, headers, data)
    return _response(url, status, response_headers, content)


def _response(
    url: str, status: str, response_headers: list[tuple[str, str]], content: bytes
) -> requests.Response:
    code, _, reason = status.partition(" ")
    headers = CaseInsensitiveDict(response_headers)
    return _InProcessResponse(url, int(code), reason, headers, content)


class _InProcessResponse(requests.Response):
    """A `requests.Response` for a reply that never crossed a network.

    The very attributes `requests` gives a received reply, set at once: its own
    `__init__` builds an empty header dict and a cookie jar first, which cost a tenth of
    an in-process filter (bench/dataverse_vs_sqlite.py). An app in process sets no
    cookies, so the jar is made only if something asks for it.
    """

    def __init__(
        self,
        url: str,
        status_code: int,
        reason: str,
        headers: CaseInsensitiveDict[str],
        content: bytes,
    ) -> None:
        self._content = content
        self._content_consumed = True
        self._next = None
        self.status_code = status_code
        self.headers = headers
        self.raw = None
        self.url = url
        self.encoding = _encoding(headers.get("Content-Type"))
        self.history = []
        self.reason = reason
        self._cookies: RequestsCookieJar | None = None
        self.elapsed = datetime.timedelta(0)
        self.request = None  # type: ignore[assignment]

    @property
    def cookies(self) -> RequestsCookieJar:
        if self._cookies is None:
            self._cookies = RequestsCookieJar()
        return self._cookies

    @cookies.setter
    def cookies(self, jar: RequestsCookieJar) -> None:
        self._cookies = jar


@functools.lru_cache(maxsize=64)
def _encoding(content_type: str | None) -> str | None:
    """What `requests` reads as a reply's text encoding from its Content-Type (each reply
    has one of a few, and parsing it again was a twentieth of an in-process retrieve)."""
    headers = CaseInsensitiveDict({} if content_type is None else {"Content-Type": content_type})
    return requests.utils.get_encoding_from_headers(headers)


class WsgiSession:
    """What `DataverseClient` needs of a `requests.Session`, answered by a WSGI app."""

    def __init__(
        self, app: Any, *, on_response: Callable[[requests.Response], object] | None = None
    ) -> None:
        self.app = app
        # What a `requests` response hook would see (e.g. counting answers by status).
        self.on_response = on_response

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """One request; `timeout` is accepted for the client's sake (no network here)."""
        if hasattr(self.app, "respond"):
            response = call_direct(self.app, method, url, headers or {}, data)
        else:
            response = call_app(self.app, method, url, headers or {}, data)
        if self.on_response is not None:
            self.on_response(response)
        return response

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""


class WsgiAdapter(BaseAdapter):
    """A `requests` transport adapter serving calls from `app` (mount it on an origin)."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        response = call_app(
            self.app, request.method or "GET", request.url or "/", request.headers, request.body
        )
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""
