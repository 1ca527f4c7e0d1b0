"""CURVE key files and link settings (etckit.messaging.curve), and a peer with CURVE off."""

from __future__ import annotations

import stat

import pytest
import zmq

from etckit.config import ConfigError, load
from etckit.messaging.curve import CurveKeyError, LinkSecurity, keypair, valid_key
from tests.support.chain import Chain
from tests.support.procs import wait_for


def test_a_keypair_is_made_once_and_read_back(tmp_path):
    made = keypair(tmp_path / "keys", "worker-1")
    assert stat.S_IMODE((tmp_path / "keys" / "worker-1.secret").stat().st_mode) == 0o600
    assert zmq.curve_public(made.secret) == made.public
    assert keypair(tmp_path / "keys", "worker-1") == made
    assert keypair(tmp_path / "keys", "worker-2") != made
    (tmp_path / "keys" / "worker-1.public").unlink()  # the public half is derived again
    assert keypair(tmp_path / "keys", "worker-1") == made


def test_a_malformed_secret_key_is_one_clear_error(tmp_path):
    (tmp_path / "broker.secret").write_text("not a key")
    with pytest.raises(CurveKeyError) as info:
        keypair(tmp_path, "broker")
    assert str(info.value) == (f"CURVE key {tmp_path / 'broker.secret'} is not a z85 key of 40 "
                               "characters")
    assert "not a key" not in str(info.value)  # the secret is never echoed


def test_an_unusable_key_dir_is_one_clear_error(tmp_path):
    (tmp_path / "keys").write_text("a file, not a directory")
    with pytest.raises(CurveKeyError, match=r"^CURVE key .*keys/wssvc.secret: File exists$"):
        keypair(tmp_path / "keys", "wssvc")


def test_valid_key():
    public, _ = zmq.curve_keypair()
    assert valid_key(public.decode())
    for bad in (None, 7, "", "x" * 39, "~" * 40, public.decode() + "x"):
        assert not valid_key(bad)


def test_link_security_from_config(tmp_path):
    cfg = load(environ={"ETCKIT_ZMQ__KEY_DIR": str(tmp_path), "ETCKIT_ZMQ__KEY_NAME": "w7"})
    sec = LinkSecurity.from_config(cfg, "worker")
    assert sec.published == {"curve": (tmp_path / "w7.public").read_text().strip()}
    assert sec.max_bytes == 16 * cfg.wssvc.max_message_bytes
    off = LinkSecurity.from_config(load(environ={"ETCKIT_ZMQ__CURVE": "no",
                                                 "ETCKIT_ZMQ__MAX_MESSAGE_BYTES": "70000"}),
                                   "worker")
    assert off.published == {} and off.keys is None and off.max_bytes == 70000
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        assert not sec.client(sock, {"extra": {}})  # CURVE on, the broker has no key
        assert sec.client(sock, {"extra": {"curve": sec.published["curve"]}})
        assert sock.getsockopt(zmq.MAXMSGSIZE) == sec.max_bytes
        sock.close(0)
    finally:
        ctx.term()


def test_max_message_bytes_is_checked():
    with pytest.raises(ConfigError, match="zmq.max_message_bytes = 100 .*must be 0"):
        load(environ={"ETCKIT_ZMQ__MAX_MESSAGE_BYTES": "100"})


async def test_a_wssvc_with_curve_does_not_talk_to_a_broker_without(tmp_path):
    chain = Chain(tmp_path)
    wssvc = chain.start("wssvc")
    chain.start("broker", zmq__curve="false")
    try:
        wait_for(lambda: "broker publishes no CURVE key" in wssvc.output(), timeout=30,
                 what="the wssvc's warning")
        assert wssvc.popen.poll() is None
        assert "broker link established" not in wssvc.output()
    finally:
        chain.stop()
