"""What wssvc answers to a browser's permessage-deflate offer (wssvc.compression)."""

import pytest
from hypercorn.protocol.ws_stream import Handshake

from etckit.http import COMPRESSION, use_ws_compression

OFFER = b"permessage-deflate; client_max_window_bits"


def answer(kind: str) -> str | None:
    use_ws_compression(kind)
    try:
        headers = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
                   (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                   (b"sec-websocket-version", b"13"), (b"sec-websocket-extensions", OFFER)]
        _, reply, _ = Handshake(headers, "1.1").accept(None, [])
    finally:
        use_ws_compression("stream")
    values = [v.decode() for k, v in reply if k == b"sec-websocket-extensions"]
    return values[0] if values else None


def test_message_keeps_no_context_either_way():
    got = answer("message")
    assert got.startswith("permessage-deflate")
    assert "client_no_context_takeover" in got and "server_no_context_takeover" in got


def test_stream_is_wsprotos_default():
    got = answer("stream")
    assert got.startswith("permessage-deflate") and "no_context_takeover" not in got


def test_off_declines():
    assert answer("off") is None


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="one of message, stream, off"):
        use_ws_compression("gzip")
    assert set(COMPRESSION) == {"message", "stream", "off"}
