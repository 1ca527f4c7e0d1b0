"""Frames between wssvc, broker and worker, in the spirit of Majordomo (docs/protocol.md).

wssvc (DEALER) ⇄ broker frontend (ROUTER):   [CLIENT, command, *body]
worker (DEALER) ⇄ broker backend (ROUTER):   [WORKER, command, *body]

The ROUTER side sees the peer's routing id as an extra first frame.
"""

from __future__ import annotations

import json
from typing import Any

CLIENT = b"ETC1C"  # wssvc <-> broker
WORKER = b"ETC1W"  # worker <-> broker

READY = b"\x01"  # worker -> broker: I can take requests          [json hello]
REQUEST = b"\x02"  # wssvc -> broker [rid, body]; broker -> worker [client, rid, body]
REPLY = b"\x03"  # worker -> broker [client, rid, body]; broker -> wssvc [rid, body]
HEARTBEAT = b"\x04"  # both ways, no body
DISCONNECT = b"\x05"  # both ways: I am going away

COMMAND_NAMES = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY", HEARTBEAT: "HEARTBEAT",
                 DISCONNECT: "DISCONNECT"}


class ProtocolError(Exception):
    """A peer sent frames that do not follow the protocol."""


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"body is not JSON: {exc}") from None


def error_message(code: str, message: str, ref: Any = None) -> dict[str, Any]:
    """The browser-facing error object: {"type": "error", "code", "message", "ref"}."""
    return {"type": "error", "code": code, "message": message, "ref": ref}


def reply_body(deliveries: list[dict[str, Any]]) -> bytes:
    """A REPLY body: the messages to deliver and to whom (see docs/protocol.md)."""
    return dumps({"deliveries": deliveries})


def to_client(client: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"to": {"client": client}, "message": message}
