"""The secrets of main_server and wssvc: checked at start, and the keys made from them.

Each program holds only what it needs:

| program     | holds                                    | config key                |
|-------------|------------------------------------------|---------------------------|
| main_server | the shared secret (CSRF, SSO state, ...) | `auth.session_secret`     |
| main_server | the ticket signing key (Ed25519, PEM)    | `auth.ticket_private_key` |
| wssvc       | the ticket verifying key(s) (PEM)        | `auth.ticket_public_key`  |

From `auth.session_secret` three keys are derived with HKDF-SHA256, one per use, so that a
value signed for one purpose (a CSRF token) is never valid for another (the SSO cookie).

Every check fails with a SecretError: one line naming the key and what is wrong, never the
secret itself.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT = 8
PLACEHOLDERS = ("change-me", "changeme", "secret", "password")
MAX_KEY_FILE_BYTES = 64 * 1024
PUBLIC_PEM = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL)

# HKDF "info" labels: one key per use; changing a label invalidates what it signed
LABELS = {"csrf": b"etckit/v1/csrf", "session": b"etckit/v1/session",
          "sso_state": b"etckit/v1/sso-state"}


class SecretError(Exception):
    """A secret is missing or too weak; str(self) is one line and never contains the value."""


@dataclass(frozen=True)
class SiteKeys:
    """main_server's symmetric keys, each derived from auth.session_secret for one use."""

    csrf: bytes  # signs the CSRF form token (double submit)
    session: bytes  # Quart's own signed-cookie key (app.secret_key)
    sso_state: bytes  # signs the SSO login transaction cookie


def check_session_secret(value: str, key: str = "auth.session_secret") -> None:
    if not value:
        raise SecretError(f"{key} is empty: set it to at least {MIN_SECRET_CHARS} random "
                          "characters (e.g. python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))')")
    if len(value) < MIN_SECRET_CHARS:
        raise SecretError(f"{key} is too short ({len(value)} characters, at least "
                          f"{MIN_SECRET_CHARS} needed)")
    if len(set(value)) < MIN_SECRET_DISTINCT or value.strip().lower() in PLACEHOLDERS:
        raise SecretError(f"{key} is not random enough (fewer than {MIN_SECRET_DISTINCT} "
                          "different characters, or a placeholder): make a new one")


def derive(secret: str) -> SiteKeys:
    """The per-use keys (checks the secret first)."""
    check_session_secret(secret)

    def one(label: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
            secret.encode())

    return SiteKeys(**{name: one(label) for name, label in LABELS.items()})


def _read_key_file(path: str, key: str, *, private: bool) -> bytes:
    if not path:
        raise SecretError(f"{key} is empty: name the PEM file of the ticket "
                          f"{'signing' if private else 'verifying'} key")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{key}: {path} is not a regular file")
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise SecretError(f"{key}: {path} is too large to be a key file")
        if private and info.st_mode & stat.S_IROTH:
            raise SecretError(f"{key}: {path} is readable by every user; "
                              "make it 0600 or 0640 (chmod o-r)")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SecretError(f"{key}: {path} does not exist") from None
    except PermissionError:
        raise SecretError(f"{key}: {path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise SecretError(f"{key}: {path} cannot be read ({exc.strerror})") from None


def load_private_key(path: str, key: str = "auth.ticket_private_key") -> Ed25519PrivateKey:
    """The Ed25519 signing key from a PKCS#8 PEM file (unencrypted)."""
    data = _read_key_file(path, key, private=True)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SecretError(f"{key}: {path} is not an unencrypted PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SecretError(f"{key}: {path} holds a {type(loaded).__name__.lstrip('_')}, "
                          "not an Ed25519 private key")
    return loaded


def load_public_keys(path: str, key: str = "auth.ticket_public_key",
                     ) -> tuple[Ed25519PublicKey, ...]:
    """Every Ed25519 public key in a PEM file (several while a key is being rotated)."""
    data = _read_key_file(path, key, private=False)
    if b"PRIVATE KEY" in data:
        raise SecretError(f"{key}: {path} contains a private key; "
                          "wssvc must hold only the public key")
    blocks = PUBLIC_PEM.findall(data)
    if not blocks:
        raise SecretError(f"{key}: {path} holds no PEM public key")
    found = []
    for block in blocks:
        try:
            loaded = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm):
            raise SecretError(f"{key}: {path} holds a PEM block that is not a public key"
                              ) from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise SecretError(f"{key}: {path} holds a key that is not Ed25519")
        found.append(loaded)
    return tuple(found)


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class MainServerSecrets:
    site: SiteKeys
    ticket_key: Ed25519PrivateKey


def main_server_secrets(session_secret: str, ticket_private_key: str) -> MainServerSecrets:
    """Everything main_server signs with, checked (reads a file: call it at start)."""
    return MainServerSecrets(derive(session_secret), load_private_key(ticket_private_key))


def make_keypair(private_path: Path, public_path: Path) -> bool:
    """Write a new ticket keypair unless the private key exists (then only the public key is
    written again if missing). The private key is created 0600. True if a key was made."""
    made = False
    if not private_path.exists():
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem(Ed25519PrivateKey.generate()))
        made = True
    if made or not public_path.exists():
        private = load_private_key(str(private_path))
        public_path.write_bytes(public_pem(private.public_key()))
        public_path.chmod(0o644)
    return made
