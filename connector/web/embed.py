"""The widget's files for any site: /widget/<file> and, versioned, /widget/v/<version>/<file>.

A site's pages load the loader from its fixed URL (`/widget/loader.js`), so it is cached
only briefly (WIDGET_MAX_AGE_SECS): a release reaches visitors the same hour. Everything
the loader fetches after it comes from a versioned URL named in the widget's config
(`script_url`, e.g. `/widget/v/3f2a9c01d4e5/widget.js`): the version is the file's content
hash, so the URL changes whenever the file does and browsers may keep it for a year
without asking again (`immutable`). A returning visitor then downloads only the config.
A version that is no longer current is answered with today's file and the short lifetime,
so a page holding an old config still gets a widget, and no cache keeps the wrong bytes
under that URL for a year.

Responses are whole bytes, not file streams, so the service's compression (gzip or
brotli, `connector/app.py`) applies to them.

`/widget/window/<widget id>` is the chat in a window of its own (`startChat({inNewWindow:
true})`, webresources/widget/README.md): an empty page of the service with the loader,
told by `data-window` to fill the window, under as strict a Content-Security-Policy as
the README asks of sites (scripts and styles by a fresh nonce).
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import re
import secrets
from dataclasses import dataclass
from html import escape

from flask import Blueprint, Response, request

from connector.chat.frames import GUID_PATTERN
from connector.solution.paths import WEBRESOURCES_DIR
from connector.web.addresses import socket_base_url
from connector.web.errors import NotFound

__all__ = ["IMMUTABLE_MAX_AGE_SECS", "WIDGET_MAX_AGE_SECS", "bp", "versioned_path"]

bp = Blueprint("embed", __name__)

WIDGET_DIR = WEBRESOURCES_DIR / "widget"
# Every page view of a customer's site loads the loader: let browsers and CDNs keep it for
# five minutes, short enough that a release reaches visitors the same hour.
WIDGET_MAX_AGE_SECS = 300
# A versioned URL never changes its bytes: a year, the longest RFC 9111 caches honour.
IMMUTABLE_MAX_AGE_SECS = 31_536_000
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}\.(?:js|css)")
_VERSION_CHARS = 12
_WINDOW_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Chat</title></head>
<body><script src="/widget/loader.js" data-widget-id="{widget_id}" data-window="true"
 nonce="{nonce}"></script></body></html>
"""


@dataclass(frozen=True)
class _Asset:
    body: bytes
    version: str  # the first hex digits of the content's SHA-256
    mimetype: str


@functools.lru_cache(maxsize=32)
def _read(name: str, mtime_ns: int) -> _Asset:
    """The file `name` as it was at `mtime_ns` (a new mtime is a new cache entry)."""
    body = (WIDGET_DIR / name).read_bytes()
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if mimetype == "application/javascript":
        mimetype = "text/javascript"  # RFC 9239
    return _Asset(body, hashlib.sha256(body).hexdigest()[:_VERSION_CHARS], mimetype)


def _asset(name: str) -> _Asset:
    """The widget file `name`; NotFound for anything else (no path ever leaves the folder)."""
    if not _NAME.fullmatch(name):
        raise NotFound("There is no such file.")
    path = WIDGET_DIR / name
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        raise NotFound("There is no such file.") from None
    return _read(name, mtime_ns)


def versioned_path(name: str) -> str:
    """The versioned URL path of the widget file `name`, e.g. `/widget/v/<hash>/widget.js`."""
    return f"/widget/v/{_asset(name).version}/{name}"


def _answer(asset: _Asset, *, immutable: bool) -> Response:
    response = Response(asset.body, mimetype=asset.mimetype)
    response.set_etag(asset.version)
    response.cache_control.public = True
    if immutable:
        response.cache_control.max_age = IMMUTABLE_MAX_AGE_SECS
        response.cache_control.immutable = True
    else:
        response.cache_control.max_age = WIDGET_MAX_AGE_SECS
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.make_conditional(request)
    return response


@bp.get("/widget/<name>")
def widget_file(name: str) -> Response:
    return _answer(_asset(name), immutable=False)


@bp.get("/widget/window/<widget_id>")
def widget_window(widget_id: str) -> Response:
    if not GUID_PATTERN.fullmatch(widget_id):
        raise NotFound("There is no such widget.")
    nonce = secrets.token_urlsafe(16)
    page = _WINDOW_PAGE.format(widget_id=escape(widget_id.lower()), nonce=nonce)
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        f"connect-src 'self' {socket_base_url()}; img-src 'self' blob: data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/widget/v/<version>/<name>")
def versioned_widget_file(version: str, name: str) -> Response:
    asset = _asset(name)
    return _answer(asset, immutable=version == asset.version)
