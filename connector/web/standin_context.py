"""How the stand-in's pages opened outside the app sign in: the session cookie and
`ClientGlobalContext.js.aspx` (embedded Dataverse only).

In a tenant a web resource named `crmchat_/settings/index.html` lives at
`<org>/WebResources/crmchat_/settings/index.html`, and `ClientGlobalContext.js.aspx` at the
root of that folder, so the page reaches it as `../../ClientGlobalContext.js.aspx`
(Microsoft Learn, "GetGlobalContext function and ClientGlobalContext.js.aspx"). Opened
from the sitemap (or on its own) such a page has no `parent.Xrm`: it calls
`GetGlobalContext()` and the Web API at `getClientUrl()` same-origin, signed in by the
browser's session cookie. The stand-in does the same:

- signing in to the stand-in (`POST /app/api/session`) also sets `SESSION_COOKIE`, an
  HttpOnly, SameSite=Strict cookie carrying the signed Dataverse token;
- `with_session_cookie(dataverse_wsgi)` lets a same-origin Web API request without an
  `Authorization` header run as that cookie's user (the token's signature and lifetime are
  checked by the embedded Dataverse as for any bearer token); a cross-site request gets
  no such help, so another site cannot act through the cookie;
- `client_global_context_script` is the script `GET /WebResources/ClientGlobalContext.js.aspx`
  answers (`connector/web/standin.py`): `GetGlobalContext()` for the cookie's user, whom
  `signed_in_user_id` reads (401 `not_signed_in` without a good cookie).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from flask import Response, request

from connector.dataverse_local.security import TokenError, verify_token
from connector.solution.paths import WEBRESOURCES_DIR
from connector.web.errors import NotSignedIn

__all__ = [
    "CLIENT_GLOBAL_CONTEXT_PATH",
    "SESSION_COOKIE",
    "WEBRESOURCES_PATH",
    "client_global_context_script",
    "set_session_cookie",
    "signed_in_user_id",
    "with_session_cookie",
]

SESSION_COOKIE = "crmchat_standin_session"
# The tenant's folder of web resources, and the page at its root.
WEBRESOURCES_PATH = "/WebResources/"
CLIENT_GLOBAL_CONTEXT_PATH = WEBRESOURCES_PATH + "ClientGlobalContext.js.aspx"

_GLOBAL_CONTEXT_JS = WEBRESOURCES_DIR / "standin" / "globalcontext.js"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def set_session_cookie(response: Response, token: str, *, lifetime_secs: int) -> None:
    """Carry the stand-in session's Dataverse token in the browser's cookie, as a tenant's
    sign-in does; scripts cannot read it and other sites' requests do not send it."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=lifetime_secs,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )


def _cookie_token(environ: dict[str, Any]) -> str | None:
    try:
        cookie = SimpleCookie(str(environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _same_origin(environ: dict[str, Any]) -> bool:
    # SameSite=Strict already keeps the cookie off cross-site requests; these headers are
    # the browser's own word on where a request comes from, for older or odd clients.
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None and site != "same-origin":
        return False
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST", "")
    return bool(origin == f"{scheme}://{host}")


def with_session_cookie(dataverse_wsgi: WSGIApp) -> WSGIApp:
    """The embedded Dataverse, also signed in by the stand-in's session cookie for
    same-origin requests that carry no `Authorization` header."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "HTTP_AUTHORIZATION" not in environ and _same_origin(environ):
            token = _cookie_token(environ)
            if token is not None:
                environ = {**environ, "HTTP_AUTHORIZATION": f"Bearer {token}"}
        return dataverse_wsgi(environ, start_response)

    return app


def signed_in_user_id(secret: bytes) -> str:
    """The systemuserid of the session cookie that came with the request; NotSignedIn
    without a cookie or with one whose token is bad or has expired."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn("Sign in to the app first: open /app/.")
    try:
        return verify_token(secret, token).user_id.lower()
    except TokenError:
        raise NotSignedIn("The app session has ended: sign in again at /app/.") from None


def client_global_context_script(user: dict[str, Any], organization_id: str) -> Response:
    """ClientGlobalContext.js.aspx for `user` ({id, name, roles}): defines
    `GetGlobalContext()`, answering the context Xrm.Utility.getGlobalContext() would."""
    person = {"id": user["id"], "name": user["name"], "roles": user["roles"]}
    # "<" escaped: nothing in a name can end a script element the page inlines it into.
    data = json.dumps([person, organization_id]).replace("<", "\\u003c")
    script = (
        _GLOBAL_CONTEXT_JS.read_text(encoding="utf-8")
        + "\n(function (args) {\n"
        + "  const context = window.CrmChatStandin.createGlobalContext(args[0], args[1]);\n"
        + "  window.GetGlobalContext = function () { return context; };\n"
        + f"}}({data}));\n"
    )
    response = Response(script, mimetype="text/javascript")
    # Per user: never kept by a cache another sign-in would then read.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
