"""The service behind Debian's real nginx, configured with the repository's own snippets
(config/nginx/), TLS at nginx: the widget's config names the proxy's wss:// socket, and a
visitor and an agent chat through it. `make test` installs nginx when it is missing."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from service_process import ServiceProcess, chat_through, free_port

from connector.dataverse_local.tls import ensure_self_signed_cert
from connector.demo import SALES_WIDGET_ID

REPO = Path(__file__).resolve().parent.parent
SNIPPETS = REPO / "config" / "nginx"


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if os.environ.get("CRMCHAT_SKIP_NGINX_TESTS") == "1":
            pytest.skip("nginx is missing and CRMCHAT_SKIP_NGINX_TESTS=1")
        pytest.fail("nginx is missing: `make test` installs it (apt-get install nginx)")
    return found


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(https URL of nginx, its CA file) in front of `crmchat serve` behind a proxy."""
    service = ServiceProcess(tmp_path, env={"CRMCHAT_BEHIND_PROXY": "true"}).start()
    cert, key = ensure_self_signed_cert(tmp_path / "tls")
    port = free_port()
    root = tmp_path / "nginx"
    root.mkdir()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {SNIPPETS}/crmchat-http.conf;
    upstream crmchat {{ server 127.0.0.1:{service.port}; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        include {SNIPPETS}/crmchat-proxy.conf;
    }}
}}
"""
    )
    nginx = subprocess.Popen(
        [_nginx(), "-p", str(root), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert nginx.poll() is None, nginx.stderr.read().decode() if nginx.stderr else ""
            try:
                requests.get(url + "/livez", verify=str(cert), timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url, cert
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        if nginx.stderr:
            nginx.stderr.close()
        service.stop()


def test_a_chat_goes_through_nginx_with_tls(proxied: tuple[str, Path]) -> None:
    url, cert = proxied
    config = requests.get(
        f"{url}/api/widgets/{SALES_WIDGET_ID}/config", verify=str(cert), timeout=5
    )
    assert config.status_code == 200
    # Built from the proxy's X-Forwarded-Proto and Host: the widget connects back through it.
    assert config.json()["socket_url"] == url.replace("https", "wss") + "/ws/visitor"

    context = ssl.create_default_context(cafile=str(cert))
    chat = chat_through(url, ssl_context=context)
    try:
        assert chat["agent_saw"] == "Hello through" and chat["visitor_saw"] == "Hi back"
    finally:
        chat["agent"].close()
        chat["visitor"].close()


def test_metrics_are_not_served_through_the_proxy(proxied: tuple[str, Path]) -> None:
    url, cert = proxied
    assert requests.get(url + "/metrics", verify=str(cert), timeout=5).status_code == 404
