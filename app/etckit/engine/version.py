"""Which engine and which data a result came from (recorded with every stored result).

The engine version is the etckit release: any release may change the science, so a result
stored by another release is marked outdated rather than trusted (over-marking costs one
click; silent mixing would cost a wrong table). The data version is a digest of the engine's
data files (instrument and telescope parameters, and any other file under ``data/``), so a
data fix marks results outdated even within one release.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

from .. import __version__

ENGINE_VERSION = __version__
DATA_DIGEST_LENGTH = 12


@lru_cache(maxsize=1)
def data_version() -> str:
    """The first 12 hex digits of a SHA-256 over the data files' names and contents."""
    digest = hashlib.sha256()
    root = resources.files("etckit.engine").joinpath("data")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_file():
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
    return digest.hexdigest()[:DATA_DIGEST_LENGTH]


def versions() -> tuple[str, str]:
    """(engine version, data version) of this process's engine."""
    return ENGINE_VERSION, data_version()
