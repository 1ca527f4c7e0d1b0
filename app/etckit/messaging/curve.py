"""CURVE keys, socket limits and the broker's ZAP gatekeeper (docs/protocol.md, docs/security.md).

Every program instance has a keypair in two z85 text files, ``KEY_DIR/NAME.secret`` (0600) and
``KEY_DIR/NAME.public``, made on first start on the host that uses them (the secret key never
leaves it). Each wssvc and worker publishes its public key in its registry row (``extra.curve``),
and so does each broker; a client learns its broker's key from the registry. A broker admits a
CURVE handshake only from a key that its registry read says is a live wssvc of its pool (the
frontend) or a live worker (the backend): the gatekeeper below answers ZeroMQ's ZAP requests.

A key the gatekeeper has not seen yet is not refused at once: its ZAP request is held until the
next registry read that started after it arrived (which the request triggers), so a program that
registered before connecting is admitted on its first attempt. libzmq does not retry a refused
handshake, so a refusal ends that connection for good; the client's liveness window then starts
it over with a new socket.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.utils.z85

from ..config import Config
from ..lifecycle import Fatal

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
FRONTEND = "frontend"  # ZAP domains: which of the broker's sockets a peer knocks at
BACKEND = "backend"
PARKED_MAX = 1000  # ZAP requests held for a registry read; beyond this, unknown keys are refused
LOGGED_MAX = 10000  # refused keys remembered so that each is logged once


class CurveKeyError(Fatal):
    """A key file cannot be made or read, or is malformed (one line naming the file)."""


@dataclass(frozen=True)
class Keypair:
    public: bytes  # z85, 40 characters
    secret: bytes


def valid_key(text: Any) -> bool:
    """A z85-encoded 32-byte key (40 characters)."""
    if not isinstance(text, str) or len(text) != 40:
        return False
    try:
        zmq.utils.z85.decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError):
        return False
    return True


def keypair(key_dir: str | os.PathLike[str], name: str) -> Keypair:
    """NAME's keypair from KEY_DIR, made (secret 0600, directory 0700) if it does not exist."""
    directory = Path(key_dir)
    secret_path, public_path = directory / f"{name}.secret", directory / f"{name}.public"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not secret_path.exists():
            _make(secret_path, public_path)
        secret = secret_path.read_text().strip().encode()
    except OSError as exc:
        raise CurveKeyError(f"CURVE key {secret_path}: {exc.strerror or exc}") from None
    if not valid_key(secret.decode(errors="replace")):
        raise CurveKeyError(f"CURVE key {secret_path} is not a z85 key of 40 characters")
    public = zmq.curve_public(secret)
    if not public_path.exists() or public_path.read_text().strip().encode() != public:
        public_path.write_text(public.decode() + "\n")
    return Keypair(public=public, secret=secret)


def _make(secret_path: Path, public_path: Path) -> None:
    public, secret = zmq.curve_keypair()
    tmp = secret_path.with_name(f".{secret_path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.decode() + "\n")
    try:  # two instances starting together: the first one's key wins, the other reads it
        os.link(tmp, secret_path)
        public_path.write_text(public.decode() + "\n")
        log.info("CURVE keypair made", extra={"key": str(secret_path)})
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def max_message_bytes(cfg: Config) -> int:
    """zmq.max_message_bytes, or 16 x the browser message limit (room for replies, plots)."""
    return cfg.zmq.max_message_bytes or 16 * cfg.wssvc.max_message_bytes


@dataclass(frozen=True)
class LinkSecurity:
    """How one program secures its ZeroMQ sockets: its keypair (None: CURVE off) and the
    largest frame it accepts."""

    keys: Keypair | None
    max_bytes: int

    @classmethod
    def from_config(cls, cfg: Config, program: str) -> LinkSecurity:
        keys = None
        if cfg.zmq.curve:
            keys = keypair(cfg.zmq.key_dir, cfg.zmq.key_name or program)
        return cls(keys=keys, max_bytes=max_message_bytes(cfg))

    @property
    def published(self) -> dict[str, str]:
        """What the registry row publishes: the public key, when CURVE is on."""
        return {"curve": self.keys.public.decode()} if self.keys else {}

    def limit(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_bytes)

    def server(self, sock: zmq.Socket, domain: str) -> None:
        """A broker's ROUTER: CURVE server whose peers the gatekeeper admits by domain."""
        self.limit(sock)
        if self.keys:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())

    def client(self, sock: zmq.Socket, peer: Mapping[str, Any]) -> bool:
        """Prepare a DEALER for a broker (its registry row); False when CURVE is on and the
        broker publishes no valid key (it runs without CURVE, or is not one of ours)."""
        self.limit(sock)
        if not self.keys:
            return True
        server_key = (peer.get("extra") or {}).get("curve")
        if not valid_key(server_key):
            return False
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        return True


def connect_client(sock: zmq.Socket, cfg: Config, program: str, broker: Mapping[str, Any],
                   endpoint: str) -> bool:
    """Secure and connect a DEALER to a broker; refuses (logged, not connected, False) a
    broker that publishes no CURVE key while zmq.curve is on."""
    if not LinkSecurity.from_config(cfg, program).client(sock, broker):
        log.warning("broker publishes no CURVE key: not connecting (is zmq.curve off there?)",
                    extra={"broker": broker.get("id"), "endpoint": endpoint})
        return False
    sock.connect(endpoint)
    return True


def public_keys(rows: Iterable[Mapping[str, Any]]) -> frozenset[bytes]:
    """The binary public keys published by registry rows (rows without one are skipped)."""
    keys = set()
    for row in rows:
        text = (row.get("extra") or {}).get("curve")
        if valid_key(text):
            keys.add(zmq.utils.z85.decode(text.encode()))
    return frozenset(keys)


class Gatekeeper:
    """The ZAP handler of one broker's ZeroMQ context, driven by the broker's loop thread.

    The asyncio side calls ``admit`` after each registry read; everything else runs in the loop
    thread (``sock`` is polled there; ``on_request`` and ``settle`` answer)."""

    def __init__(self, ctx: zmq.Context, wake: Callable[[], None] | None = None) -> None:
        self.sock = ctx.socket(zmq.ROUTER)  # ROUTER, not REP: answers can wait for a read
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(ZAP_ENDPOINT)
        self.wake = wake  # asks the asyncio side for a registry read now
        self.admitted: dict[str, frozenset[bytes]] = {}
        self.seq = 0  # ZAP requests parked so far
        self.read_upto = 0  # parked requests covered by the last registry read
        self.parked: list[tuple[int, list[bytes]]] = []
        self.logged: set[bytes] = set()
        self.lock = threading.Lock()

    def admit(self, keys: Mapping[str, frozenset[bytes]], upto: int) -> None:
        """The keys a registry read found (per domain); upto: self.seq when that read began."""
        with self.lock:
            self.admitted = dict(keys)
            self.read_upto = upto

    def on_request(self, frames: list[bytes]) -> list[bytes] | None:
        """A ZAP request: the reply to send, or None when it waits for a registry read."""
        # [routing id, "", version, request id, domain, address, identity, mechanism, key]
        if len(frames) < 8 or frames[1] != b"" or frames[2] != b"1.0":
            log.warning("malformed ZAP request, ignored", extra={"frames": len(frames)})
            return None
        if frames[7] != b"CURVE" or len(frames) != 9 or len(frames[8]) != 32:
            return self._answer(frames, False)
        with self.lock:
            known = frames[8] in self.admitted.get(frames[4].decode(errors="replace"), ())
        if known:
            return self._answer(frames, True)
        if len(self.parked) >= PARKED_MAX:
            return self._answer(frames, False)
        self.seq += 1
        self.parked.append((self.seq, frames))
        if self.wake is not None:
            self.wake()
        return None

    def settle(self) -> list[list[bytes]]:
        """Answers for the parked requests that a registry read has covered since."""
        if not self.parked:
            return []
        with self.lock:
            upto, admitted = self.read_upto, self.admitted
        answers, waiting = [], []
        for seq, frames in self.parked:
            if seq > upto:
                waiting.append((seq, frames))
                continue
            answers.append(self._answer(frames, frames[8] in admitted.get(
                frames[4].decode(errors="replace"), ())))
        self.parked = waiting
        return answers

    def _answer(self, frames: list[bytes], ok: bool) -> list[bytes]:
        if not ok:
            self._log_refusal(frames)
        status = (b"200", b"OK") if ok else (b"400", b"key not admitted")
        return [frames[0], b"", b"1.0", frames[3], *status, b"", b""]

    def _log_refusal(self, frames: list[bytes]) -> None:
        key = frames[8] if len(frames) > 8 else b""
        if key in self.logged:
            return
        if len(self.logged) >= LOGGED_MAX:
            self.logged.clear()
        self.logged.add(key)
        shown = zmq.utils.z85.encode(key).decode() if len(key) == 32 else "(none)"
        log.warning("refused a ZeroMQ peer: its key is not a live %s of this cluster",
                    "wssvc" if frames[4] == FRONTEND.encode() else "worker",
                    extra={"address": frames[5].decode(errors="replace"), "key": shown,
                           "mechanism": frames[7].decode(errors="replace")})

    def close(self) -> None:
        self.sock.close(0)
