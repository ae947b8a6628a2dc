"""The console signs its socket in without putting the service token in a URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_the_console_connects_with_no_token_in_the_socket_url(
    service: Any,
    new_page: Callable[[], Any],
    sign_in: Callable[[Any, str], None],
    open_console: Callable[..., Any],
    set_status: Callable[[Any, str], None],
) -> None:
    page = new_page()
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    sign_in(page, "Sam Sales")
    console = open_console(page, from_nav=True)  # online: the socket was signed in
    set_status(console, "available")  # the signed-in socket answered a status change

    agent_sockets = [url for url in opened if "/ws/agent" in url]
    assert agent_sockets, opened
    assert all("token" not in url and "?" not in url for url in agent_sockets)
