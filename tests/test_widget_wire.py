"""The widget on the wire: compressed by Accept-Encoding, versioned files cached for a year.

A visitor's browser asks for the loader (short-lived), the config (30 s) and the file the
config names at a versioned URL (immutable, a year): a returning visitor asks only for
the config. The Chromium figures are in bench/widget_wire.py.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest
from chat_fakes import SHOP, FakeDirectory, FakeOutbox
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.solution.paths import WEBRESOURCES_DIR

WIDGET_JS = (WEBRESOURCES_DIR / "widget" / "widget.js").read_bytes()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "s" * 40},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _script_url(client: FlaskClient) -> str:
    config = client.get(f"/api/widgets/{SHOP}/config").get_json()
    url = str(config["script_url"])
    assert re.fullmatch(r"/widget/v/[0-9a-f]{12}/widget\.js", url)
    return url


def test_text_is_compressed_as_the_browser_accepts(client: FlaskClient) -> None:
    url = _script_url(client)
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.headers.get("Content-Encoding") is None
    assert plain.data == WIDGET_JS
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == WIDGET_JS
    squeezed = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert squeezed.headers["Content-Encoding"] == "br"
    assert brotli.decompress(squeezed.data) == WIDGET_JS
    assert len(squeezed.data) < len(zipped.data) < len(WIDGET_JS) / 2
    assert "Accept-Encoding" in squeezed.headers["Vary"]
    # JSON too: the config.
    config = client.get(f"/api/widgets/{SHOP}/config", headers={"Accept-Encoding": "gzip"})
    assert config.headers["Content-Encoding"] == "gzip"


def test_the_versioned_file_is_immutable_and_the_loader_short_lived(client: FlaskClient) -> None:
    url = _script_url(client)
    versioned = client.get(url)
    assert versioned.status_code == 200
    assert set(versioned.headers["Cache-Control"].split(", ")) == {
        "public",
        "max-age=31536000",
        "immutable",
    }
    loader = client.get("/widget/loader.js")
    assert loader.status_code == 200
    assert loader.headers["Cache-Control"] == "public, max-age=300"
    assert loader.mimetype == "text/javascript"
    # An old version still gets today's file, but never for a year under that URL.
    stale = client.get("/widget/v/000000000000/widget.js")
    assert stale.status_code == 200 and stale.data == WIDGET_JS
    assert "immutable" not in stale.headers["Cache-Control"]
    # A revalidating browser gets 304 without the body.
    again = client.get("/widget/loader.js", headers={"If-None-Match": loader.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_only_the_widgets_own_files_are_served(client: FlaskClient) -> None:
    assert client.get("/widget/README.md").status_code == 404
    assert client.get("/widget/nothing.js").status_code == 404
    assert client.get("/widget/v/1/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get("/widget/%2e%2e/settings.py").status_code == 404
