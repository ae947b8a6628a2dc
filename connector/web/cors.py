"""Cross-origin access to the service's API.

The web resources run inside Dataverse (https://<org>.crm.dynamics.com) and the widget on
customers' sites, while the API lives at the region's service address. Every API call is
authorised by a bearer token or is public (widget configuration), never by a cookie, so
any origin may call it: there are no ambient credentials a foreign page could ride on.
"""

from __future__ import annotations

from flask import Flask, Response, request

__all__ = ["init_app"]

# Browsers may cache a preflight this long, so a chatting console does not repeat it.
PREFLIGHT_MAX_AGE_SECS = 600


def init_app(app: Flask) -> None:
    """Answer preflights and add CORS headers to everything under /api/."""

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and request.path.startswith("/api/"):
            return Response(status=204)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        if request.path.startswith("/api/"):
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECS)
            response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After"
        return response
