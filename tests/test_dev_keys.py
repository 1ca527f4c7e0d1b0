"""etckit dev's CURVE keys: one keypair per ZeroMQ child under var/keys, made once, 0600."""

from __future__ import annotations

import stat

import zmq

from etckit.config import load
from etckit.dev import Child, dev_environment, make_keys


def children() -> list[Child]:
    return [Child(name, []) for name in ("main-server", "wssvc", "broker", "worker-1",
                                         "worker-2")]


def test_dev_makes_a_keypair_per_child_under_var(tmp_path):
    cfg = load(environ={"ETCKIT_DEV__VAR_DIR": str(tmp_path / "var")})
    env = dev_environment(cfg, None)
    keys = tmp_path / "var" / "keys"
    assert env["ETCKIT_ZMQ__KEY_DIR"] == str(keys)
    child_cfg = load(environ=env)
    kids = children()
    make_keys(child_cfg, kids)
    names = {p.name for p in keys.iterdir()}
    assert names == {f"{n}.{kind}" for n in ("wssvc", "broker", "worker-1", "worker-2")
                     for kind in ("secret", "public")}
    for kid in kids[1:]:
        assert kid.env == {"ETCKIT_ZMQ__KEY_NAME": kid.name}
        secret = (keys / f"{kid.name}.secret")
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        public = (keys / f"{kid.name}.public").read_text().strip().encode()
        assert zmq.curve_public(secret.read_text().strip().encode()) == public
    assert kids[0].env == {}  # main_server speaks no ZeroMQ
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    before = (keys / "broker.secret").read_text()
    make_keys(child_cfg, children())  # the next run keeps them
    assert (keys / "broker.secret").read_text() == before


def test_no_keys_when_curve_is_off(tmp_path):
    base = {"ETCKIT_DEV__VAR_DIR": str(tmp_path / "var"), "ETCKIT_ZMQ__CURVE": "false"}
    env = dev_environment(load(environ=base), None)
    assert "ETCKIT_ZMQ__KEY_DIR" not in env
    kids = children()
    make_keys(load(environ={**base, **env}), kids)
    assert not (tmp_path / "var" / "keys").exists() and all(k.env == {} for k in kids)
