"""Serving the embedded Dataverse on a port, over HTTP or HTTPS (werkzeug, threaded).

`serve` blocks and prints the Web API root; `start_in_thread` is for tests and for
running the emulator inside another process: it returns the root URL and a stop function.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from connector.dataverse_local.app import API_ROOT, DataverseApp, create_dataverse_app
from connector.dataverse_local.throttle import ServiceProtection
from connector.http_server import JsonErrorRequestHandler
from connector.solution.model import Schema

__all__ = ["DEFAULT_PORT", "serve", "start_in_thread"]

DEFAULT_PORT = 8443


def _ssl_context(tls_cert: Path | None, tls_key: Path | None) -> ssl.SSLContext | None:
    if tls_cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
    return context


def _server(
    app: DataverseApp,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> tuple[BaseWSGIServer, str]:
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=JsonErrorRequestHandler,
        ssl_context=_ssl_context(tls_cert, tls_key),
    )
    scheme = "https" if tls_cert is not None else "http"
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") and tls_cert else host
    return server, f"{scheme}://{shown}:{server.server_port}{API_ROOT}"


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    db_path: Path,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    schema: Schema | None = None,
    limits: ServiceProtection | None = None,
) -> None:
    """Serve the embedded Dataverse over `db_path` until interrupted; prints the root URL."""
    app = create_dataverse_app(db_path, schema=schema, limits=limits)
    server, url = _server(app, host, port, tls_cert, tls_key)
    print(f"Embedded Dataverse at {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start_in_thread(
    *,
    db_path: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    schema: Schema | None = None,
    limits: ServiceProtection | None = None,
    app: DataverseApp | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve in a daemon thread; returns (Web API root URL, stop). Port 0 picks a free one."""
    app = app or create_dataverse_app(db_path, schema=schema, limits=limits)
    server, url = _server(app, host, port, tls_cert, tls_key)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="dataverse-local",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return url, stop
