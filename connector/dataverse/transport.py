"""A `requests` transport adapter that hands requests to a WSGI app in this process.

The service talks to the embedded Dataverse with the very same `DataverseClient` it uses
for a real environment; mounting this adapter on the client's session for the embedded
base URL skips the loopback socket but keeps every byte of the HTTP exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app

__all__ = ["WsgiAdapter"]


class WsgiAdapter(BaseAdapter):
    """Serve `requests` calls from `app` (any WSGI callable) without a network."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers: Mapping[str, str] = request.headers
        url = urlsplit(request.url or "/")
        # The app sees the client's host and scheme, so the URLs it answers (OData-EntityId,
        # @odata.nextLink) point back at the same origin.
        builder = EnvironBuilder(
            base_url=f"{url.scheme}://{url.netloc}",
            path=url.path,
            query_string=url.query,
            method=request.method or "GET",
            headers=list(headers.items()),
            data=body or b"",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(response_headers.to_wsgi_list())
        response.raw = BytesIO(content)
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""
