"""Secrets are checked at start: one line naming the key, never the value."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from etckit.auth import keys
from etckit.config import load
from etckit.dev import ticket_key_environment
from tests.support.chain import SECRET
from tests.support.procs import env_with, etckit_argv

WEAK = ["", "short-but-secret-value", "a" * 40, "abababababababababababababababababab",
        "CHANGE-ME"]


@pytest.mark.parametrize("value", WEAK)
def test_weak_session_secrets_are_refused_without_echo(value):
    with pytest.raises(keys.SecretError) as info:
        keys.derive(value)
    message = str(info.value)
    assert "auth.session_secret" in message and "\n" not in message
    assert not value or value not in message


def test_derived_keys_differ_by_use_and_follow_the_secret():
    one, again, other = keys.derive(SECRET), keys.derive(SECRET), keys.derive(SECRET + "x")
    assert len({one.csrf, one.session, one.sso_state}) == 3
    assert SECRET.encode() not in (one.csrf, one.session, one.sso_state)
    assert one == again and one.csrf != other.csrf


def write(path, data: bytes, mode: int = 0o600):
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def rsa_pem(public: bool = False) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if public:
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_private_key_file_checks(tmp_path):
    private = Ed25519PrivateKey.generate()
    good = write(tmp_path / "good.key", keys.private_pem(private))
    assert keys.load_private_key(good).public_key() == private.public_key()
    cases = {
        "does not exist": str(tmp_path / "missing.key"),
        "is empty": "",
        "not an unencrypted PEM private key": write(tmp_path / "pub.key",
                                                    keys.public_pem(private.public_key())),
        "not an Ed25519 private key": write(tmp_path / "rsa.key", rsa_pem()),
        "readable by every user": write(tmp_path / "open.key", keys.private_pem(private),
                                        0o644),
        "not a regular file": str(tmp_path),
    }
    for why, path in cases.items():
        with pytest.raises(keys.SecretError, match=why) as info:
            keys.load_private_key(path)
        assert str(info.value).startswith("auth.ticket_private_key")
        assert "PRIVATE" not in str(info.value) and "\n" not in str(info.value)


def test_public_key_file_checks(tmp_path):
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    both = write(tmp_path / "both.pub", keys.public_pem(a.public_key()) +
                 keys.public_pem(b.public_key()), 0o644)
    assert keys.load_public_keys(both) == (a.public_key(), b.public_key())
    cases = {
        "contains a private key": write(tmp_path / "priv.pub", keys.private_pem(a)),
        "no PEM public key": write(tmp_path / "junk.pub", b"hello"),
        "not Ed25519": write(tmp_path / "rsa.pub", rsa_pem(public=True)),
        "does not exist": str(tmp_path / "missing.pub"),
    }
    for why, path in cases.items():
        with pytest.raises(keys.SecretError, match=why) as info:
            keys.load_public_keys(path)
        assert str(info.value).startswith("auth.ticket_public_key")


def test_make_keypair_once_private_0600(tmp_path):
    private, public = tmp_path / "t.key", tmp_path / "t.pub"
    assert keys.make_keypair(private, public)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    first = private.read_bytes()
    public.unlink()
    assert not keys.make_keypair(private, public)  # kept; the public key made again from it
    assert private.read_bytes() == first
    assert keys.load_public_keys(str(public)) == (keys.load_private_key(str(private))
                                                  .public_key(),)


def test_dev_makes_the_ticket_keypair_under_var(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    cfg = load(None, environ={"ETCKIT_DEV__VAR_DIR": str(var)})
    env = ticket_key_environment(cfg, var)
    private, public = env["ETCKIT_AUTH__TICKET_PRIVATE_KEY"], env["ETCKIT_AUTH__TICKET_PUBLIC_KEY"]
    assert private.startswith(str(var)) and public.startswith(str(var))
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    signer = keys.load_private_key(private)
    assert keys.load_public_keys(public) == (signer.public_key(),)
    assert ticket_key_environment(cfg, var) == env  # a second run keeps the same keys
    assert keys.load_private_key(private).public_key() == signer.public_key()


def start_error(program: str, tmp_path, **settings: str) -> str:
    """The program's exit status is 1 and its one error line, which this returns."""
    env = env_with(database__url=f"sqlite:///{tmp_path / 'db.sqlite'}", **settings)
    done = subprocess.run(etckit_argv(program), env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    errors = [json.loads(line) for line in output.splitlines()
              if line.startswith("{") and json.loads(line).get("level") == "error"]
    assert len(errors) == 1, output
    for value in settings.values():
        if "secret" in value:
            assert value not in output
    return errors[0]["event"]


def test_main_server_refuses_a_short_secret_without_printing_it(tmp_path):
    key = write(tmp_path / "t.key", keys.private_pem(Ed25519PrivateKey.generate()))
    line = start_error("main-server", tmp_path, auth__session_secret="my-short-secret",
                       auth__ticket_private_key=key)
    assert "auth.session_secret is too short" in line


def test_main_server_needs_its_private_key(tmp_path):
    line = start_error("main-server", tmp_path, auth__session_secret=SECRET,
                       auth__ticket_private_key=str(tmp_path / "nope.key"))
    assert "auth.ticket_private_key" in line and "does not exist" in line


def test_wssvc_refuses_a_private_key_as_its_public_key(tmp_path):
    key = write(tmp_path / "t.key", keys.private_pem(Ed25519PrivateKey.generate()))
    line = start_error("wssvc", tmp_path, auth__ticket_public_key=key)
    assert "auth.ticket_public_key" in line and "contains a private key" in line


@pytest.mark.parametrize("text, key, value", [
    ("[auth]\nsession_secret = 98765432109876543210\n", "auth.session_secret",
     "98765432109876543210"),
    ('[database]\nurl = "mysql://bob:hunter2-secret@db/etc"\n', "database.url", "hunter2"),
    ("[sso]\nclient_secret = 31415926535\n", "sso.client_secret", "31415926535"),
])
def test_config_errors_never_show_a_secret(tmp_path, text, key, value):
    from etckit.config import ConfigError

    path = tmp_path / "etckit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert key in message and "(value hidden)" in message
    assert value not in message and "\n" not in message


def test_keys_made_by_openssl_are_accepted(tmp_path):
    """The kit may make the keypair with openssl; these are the commands docs/auth.md names."""
    from tests.support.system import require_program

    openssl = require_program("openssl", "openssl")
    private, public = tmp_path / "ticket.key", tmp_path / "ticket.pub"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(private)],
                   check=True, capture_output=True, timeout=60)
    private.chmod(0o600)
    subprocess.run([openssl, "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True, timeout=60)
    signer = keys.load_private_key(str(private))
    assert keys.load_public_keys(str(public)) == (signer.public_key(),)


async def test_sso_state_mismatch_with_any_text_is_a_clear_error():
    """A non-ASCII state in the provider's redirect is a mismatch, not a crash."""
    from etckit.auth.oidc import OidcClient, SsoError

    client = OidcClient(issuer="https://idp.example", client_id="etckit", client_secret="x",
                        scopes=["openid"], redirect_uri="https://etc.example/cb",
                        secret=keys.derive(SECRET).sso_state)
    transaction = client.signer.dumps({"state": "s" * 32, "nonce": "n", "verifier": "v"})
    for state in ("é" * 32, "\ud83d", "wrong"):
        with pytest.raises(SsoError, match="state mismatch"):
            await client.finish({"state": state, "code": "c"}, transaction)
    other = OidcClient(issuer="https://idp.example", client_id="etckit", client_secret="x",
                       scopes=["openid"], redirect_uri="https://etc.example/cb",
                       secret=keys.derive(SECRET).csrf)  # a cookie signed for another use
    with pytest.raises(SsoError, match="tampered"):
        await other.finish({"state": "s" * 32, "code": "c"}, transaction)
