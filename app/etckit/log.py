"""Structured logging: one JSON object per line on stdout, fit for journald."""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class JsonLines(logging.Formatter):
    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "program": self.program,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["traceback"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


class ClientLeftTls(logging.Filter):
    """asyncio reports at error level, as "Task exception was never retrieved", a TLS
    connection whose client went away without closing TLS: the server's connection task ends
    with TimeoutError("SSL shutdown timed out") after 30 s. Nothing failed, so it becomes one
    info line without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError) and str(exc) == "SSL shutdown timed out":
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "a client left without closing TLS (SSL shutdown timed out)"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def setup(program: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLines(program))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries are chatty at debug; keep them at warning unless asked.
    for noisy in ("hypercorn.access", "asyncio", "httpx", "httpcore", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not any(isinstance(f, ClientLeftTls) for f in logging.getLogger("asyncio").filters):
        logging.getLogger("asyncio").addFilter(ClientLeftTls())
    logging.Formatter.converter = time.gmtime
