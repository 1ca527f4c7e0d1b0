"""The ZeroMQ protocol shared by wssvc, broker and worker (see docs/protocol.md)."""
