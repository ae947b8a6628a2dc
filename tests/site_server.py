"""A customer's site in tests: a real HTTP server of its own on loopback.

A page the browser fetched from it has another origin than the service (as a customer's
site has), and the service can fetch from it (a site's published keys).

```python
with serve(lambda path: (200, b"<h1>A shop</h1>")) as port:
    ...  # http://127.0.0.1:<port>/
```
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# GET <path> → (status, body), the body sent as text/html.
Answer = Callable[[str], tuple[int, bytes]]


@contextmanager
def serve(answer: Answer, headers: dict[str, str] | None = None) -> Iterator[int]:
    """Serve `answer` on 127.0.0.1 until the block ends, with `headers` (such as a
    Content-Security-Policy) on every answer; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
