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
RETURN = b"\x06"  # broker -> wssvc [rid, body]: not served, no worker came; send it elsewhere
FOLLOWUP = b"\x07"  # worker -> broker [client, rid, body]: more work of this user's, queued in
#                      the user's turn; its REPLY goes to that wssvc like any other

COMMAND_NAMES = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY", HEARTBEAT: "HEARTBEAT",
                 DISCONNECT: "DISCONNECT", RETURN: "RETURN", FOLLOWUP: "FOLLOWUP"}


class ProtocolError(Exception):
    """A peer sent frames that do not follow the protocol."""


# json.dumps with arguments builds an encoder per call; these are built once
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; text that UTF-8 cannot hold (lone surrogates) is escaped instead
    of failing."""
    text = _COMPACT.encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _COMPACT_ASCII.encode(obj).encode()


def loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"body is not JSON: {exc}") from None


def error_message(code: str, message: str, ref: Any = None) -> dict[str, Any]:
    """The browser-facing error object: {"type": "error", "code", "message", "ref"}."""
    return {"type": "error", "code": code, "message": message, "ref": ref}


def error_body(code: str, message: str, **fields: Any) -> list[bytes]:
    """A REPLY body made by the broker or wssvc itself instead of a worker; fields such as
    retry_after go to the browser with the error."""
    return [dumps({"error": {"code": code, "message": message, **fields}})]


ERROR_FIELDS = ("field", "retry_after", "limit", "value")  # what a broker's error may add


def broker_error(error: Any, ref: Any) -> dict[str, Any]:
    """The browser's error message for an error REPLY body made by a broker."""
    if not isinstance(error, dict):
        error = {}
    message = error_message(str(error.get("code", "internal")),
                            str(error.get("message", "the broker failed")), ref)
    message.update({k: error[k] for k in ERROR_FIELDS if k in error})
    return message


def request_body(client: str, user: str, workbook: str | None, text: bytes) -> list[bytes]:
    """A REQUEST body: who asks (JSON), then the browser's message as it came (JSON text),
    so wssvc never re-encodes what it forwards."""
    return [dumps({"client": client, "user": user, "workbook": workbook}), text]


def reply_body(deliveries: list[dict[str, Any]]) -> list[bytes]:
    """A REPLY body: the recipients (JSON), then one JSON message frame per recipient, which
    wssvc passes to the browsers without decoding them."""
    return [dumps({"to": [d["to"] for d in deliveries]}),
            *(dumps(d["message"]) for d in deliveries)]
