"""Real-browser tests: the whole service on a port, driven by headless Chromium.

- `service`: `create_app` on a fresh data folder (embedded Dataverse, demo records) served
  by a threaded werkzeug server on a free port in a thread; yields a `Service` with the
  base URL and the app.
- `browser`: Debian's Chromium (`/usr/bin/chromium`) through Playwright, one per session.
- `new_page`: `new_page()` opens a page in a fresh browser context (own cookies and
  storage, so each call is another person); contexts close after the test.
- `sign_in`: `sign_in(page, name)` signs in to the app stand-in as that user.
- `open_console`: `open_console(page)` opens the agent console in a signed-in page (as
  `Xrm.Navigation.navigateTo` would, or `from_nav=True` from the app's navigation) and
  waits until it is online; returns its frame.
- `set_status`: `set_status(console, "available")` picks a status in the console.
- `agent_console`: `agent_console("Sam Sales")` is another person signed in as that
  agent with the console open and Available (`status=None` leaves the status alone).
- `chat_activity`: `chat_activity(columns)` waits for the one rated chat activity the
  outbox writes to the service's Dataverse and returns those columns of it.

These tests need Chromium. When it is missing they fail loudly (`make test` installs it);
set `CRMCHAT_SKIP_BROWSER_TESTS=1` to skip them on purpose.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from connector.services import services_of

CHROMIUM = os.environ.get("CRMCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SKIP_ENV = "CRMCHAT_SKIP_BROWSER_TESTS"
# Generous for a 2-core machine running server and browser at once.
TIMEOUT_MS = 10_000
CONSOLE_URL = "/WebResources/crmchat_/console/index.html"
# Writes of finished chats go through the outbox (in the background): allow for a retry.
ACTIVITY_WAIT_SECS = 15.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SKIP_ENV, "").strip() == "1":
        skip = pytest.mark.skip(reason=f"{SKIP_ENV} is set")
        for item in items:
            if "tests/browser" in str(item.path).replace(os.sep, "/"):
                item.add_marker(skip)


@dataclass(frozen=True)
class Service:
    url: str  # e.g. http://127.0.0.1:50123
    app: Flask
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """The service with the demo records, on 127.0.0.1 and a free port."""
    from werkzeug.serving import make_server

    from connector.app import create_app, stop_app

    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    port = _free_port()
    app = create_app({"data_dir": tmp_path / "data", "port": port, "log_level": "WARNING"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Service(url=f"http://127.0.0.1:{port}", app=app, data_dir=tmp_path / "data")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        stop_app(app)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium; fails (never skips) when it or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `make setup` (pip install -e '.[test]').")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run `make test` (installs it as root) or "
            f"`apt-get install chromium`; set {SKIP_ENV}=1 to skip the browser tests."
        )
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """`new_page()`: a page in a fresh context (another person); all closed afterwards."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def sign_in(service: Service) -> Callable[[Any, str], None]:
    """`sign_in(page, "Sam Sales")`: sign in to the app stand-in and wait for the shell."""

    def run(page: Any, name: str) -> None:
        page.goto(f"{service.url}/app/")
        page.locator("button.user", has_text=name).click()
        page.wait_for_url(f"{service.url}/app/main*")
        page.get_by_test_id("user-name").filter(has_text=name).wait_for()

    return run


def _open_console(page: Any, *, from_nav: bool = False) -> Any:
    from playwright.sync_api import expect

    link = page.locator(f'nav a[data-url="{CONSOLE_URL}"]')
    if from_nav and link.count():
        link.click()
    else:  # as a form script or the sitemap's navigateTo would open it
        page.evaluate(
            "() => Xrm.Navigation.navigateTo("
            "{pageType: 'webresource', webresourceName: 'crmchat_/console/index.html'})"
        )
    console = page.frame_locator(f'iframe[src="{CONSOLE_URL}"]')
    expect(console.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    return console


def _set_status(console: Any, status: str) -> None:
    from playwright.sync_api import expect

    menu = console.get_by_test_id("status-menu")
    expect(menu).to_be_enabled()
    menu.select_option(status)
    expect(menu).to_have_value(status)


@pytest.fixture
def open_console() -> Callable[..., Any]:
    """`open_console(page, *, from_nav=False)`: the online agent console's frame."""
    return _open_console


@pytest.fixture
def set_status() -> Callable[[Any, str], None]:
    """`set_status(console, status)`: pick a status and wait until the console shows it."""
    return _set_status


@pytest.fixture
def agent_console(
    new_page: Callable[[], Any], sign_in: Callable[[Any, str], None]
) -> Callable[..., Any]:
    """`agent_console(name, *, status="available")`: a new agent's online console frame."""

    def run(name: str, *, status: str | None = "available") -> Any:
        page = new_page()
        sign_in(page, name)
        console = _open_console(page)
        if status is not None:
            _set_status(console, status)
        return console

    return run


@pytest.fixture
def chat_activity(service: Service) -> Callable[[list[str]], dict[str, Any]]:
    """`chat_activity(columns)`: the one rated chat activity, once the outbox wrote it."""
    from connector.demo import admin_client

    def wait(columns: list[str]) -> dict[str, Any]:
        client = admin_client(services_of(service.app).standin)
        deadline = time.monotonic() + ACTIVITY_WAIT_SECS
        while True:
            chats = list(client.list("crmchat_chats", select=columns))
            if chats and chats[0].get("crmchat_rating") is not None:
                assert len(chats) == 1
                found: dict[str, Any] = chats[0]
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished chat activity in Dataverse: {chats!r}")
            time.sleep(0.25)

    return wait


@pytest.fixture
def activity_notes(service: Service) -> Callable[[str, list[str]], list[dict[str, Any]]]:
    """`activity_notes(activity_id, columns)`: the notes on a chat activity, once the
    service closed it (it writes the notes before the close)."""
    from connector.demo import admin_client

    def wait(activity_id: str, columns: list[str]) -> list[dict[str, Any]]:
        client = admin_client(services_of(service.app).standin)
        deadline = time.monotonic() + ACTIVITY_WAIT_SECS
        while client.retrieve("crmchat_chats", activity_id, select=["statecode"])["statecode"] != 1:
            if time.monotonic() > deadline:
                raise AssertionError(f"chat activity {activity_id} was never closed")
            time.sleep(0.1)
        return list(
            client.list("annotations", select=columns, filter=f"_objectid_value eq {activity_id}")
        )

    return wait
