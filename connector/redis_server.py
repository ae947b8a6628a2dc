"""A private `redis-server` in a folder of its own, for tests, benches and local demos.

Production points `CRMCHAT_REDIS_URL` at a managed Redis; this starts Debian's
``redis-server`` binary on a free loopback port, with nothing saved unless asked
(``appendonly``: every write fsynced before the reply, so a restart loses nothing that was
acknowledged). `restart()` stops the server and starts it again on the same port and
folder, which is what a Redis restart looks like to its clients.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

__all__ = ["RedisServer", "RedisServerMissing", "free_port"]

# A cold start of redis-server (loading an append-only file) takes well under a second.
START_TIMEOUT_SECS = 10.0


class RedisServerMissing(RuntimeError):
    """The `redis-server` binary is not installed."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process in `folder` on 127.0.0.1."""

    def __init__(self, folder: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissing(
                "redis-server is missing: run 'sudo apt-get install redis-server'"
            )
        self._binary = binary
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        args = [
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            # Acknowledged means on disk: the persistence the scale-out doc asks for.
            "--appendfsync",
            "always",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return self.url
                except redis.ConnectionError:
                    pass
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: see {self.folder}/redis.log")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file first)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """Kill the server without warning (SIGKILL), like a crash or a power cut."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None

    def restart(self, *, crash: bool = False) -> str:
        """Stop (or kill, with `crash`) and start again on the same port and folder."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()
