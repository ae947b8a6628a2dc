"""Files holding keys or data, readable by their owner only.

The embedded Dataverse's database holds its token-signing secret, the outbox and the live
state hold transcripts: any local user who can read them can become the administrator or
read every chat. So the data folder is created 0700 and each such file 0600 before SQLite
opens it (SQLite gives its -wal and -shm files the database file's mode).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "make_private_dir", "make_private_file"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only; return it.

    A folder that already exists is left as it is: it may be one the operator chose and
    shares on purpose; the files inside are made private by `make_private_file`.
    """
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            pass  # another process made it in between
    return path


def make_private_file(path: Path) -> Path:
    """Create `path` empty and owner-only if missing, else take away others' access.

    Raises OSError when the folder cannot be written.
    """
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path
