"""Finding system packages: skip with the reason locally, fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str, install: str) -> None:
    """Skip (or fail under CI=true) because a system package is missing."""
    reason = f"{what} is not available (apt-get install {install})"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name, package)
    return path  # type: ignore[return-value]


def postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return candidates[0].parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir_or_skip() -> Path:
    """PostgreSQL's bin directory; skips (fails under CI=true) when the server or, as root,
    the postgres user it must run as is missing."""
    import os
    import pwd

    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL server", "postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("the postgres system user", "postgresql")
    return bindir
