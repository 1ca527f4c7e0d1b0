"""A ZeroMQ peer for verify_security.yml: what a stray or hostile peer gets from a broker.

    probe_zmq.py request ENDPOINT BROKER_PUBLIC [SECRET_FILE] USER NAME
        a wssvc's REQUEST workbook.create for USER; prints "reply <json>" or "no reply"
    probe_zmq.py ready ENDPOINT BROKER_PUBLIC [SECRET_FILE]
        a worker's READY; prints "answered <command>" or "no answer"
    probe_zmq.py flood ENDPOINT BROKER_PUBLIC SECRET_FILE MEGABYTES client|worker
        one frame of MEGABYTES to the broker; prints "sent"

SECRET_FILE "-" (or absent for request/ready): a fresh keypair no registry knows. Needs
pyzmq only (the release's, or the wheel unpacked on PYTHONPATH); z85 key files as etckit
makes them. Waits PROBE_WAIT seconds (default 6) for an answer.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

import zmq

CLIENT, WORKER = b"ETC1C", b"ETC1W"
READY, REQUEST = b"\x01", b"\x02"
WAIT_MS = int(float(os.environ.get("PROBE_WAIT", "6")) * 1000)


def dealer(endpoint: str, broker_public: str, secret_file: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    if secret_file == "-":
        public, secret = zmq.curve_keypair()
    else:
        secret = open(secret_file).read().strip().encode()
        public = zmq.curve_public(secret)
    sock.curve_secretkey, sock.curve_publickey = secret, public
    sock.curve_serverkey = open(broker_public).read().strip().encode()
    sock.connect(endpoint)
    return sock


def answer(sock: zmq.Socket) -> list[bytes] | None:
    return sock.recv_multipart() if sock.poll(WAIT_MS) else None


def main(argv: list[str]) -> str:
    what, endpoint, broker_public, *rest = argv
    if what == "request":
        secret, user, name = rest if len(rest) == 3 else ["-", *rest]
        sock = dealer(endpoint, broker_public, secret)
        who = {"client": uuid.uuid4().hex, "user": user, "workbook": None}
        message = {"id": 1, "type": "workbook.create", "name": name}
        sock.send_multipart([CLIENT, REQUEST, b"r1", json.dumps(who).encode(),
                             json.dumps(message).encode()])
        frames = answer(sock)
        return "no reply" if frames is None else "reply " + frames[-1].decode(errors="replace")
    if what == "ready":
        sock = dealer(endpoint, broker_public, rest[0] if rest else "-")
        sock.send_multipart([WORKER, READY, json.dumps({"id": "worker-rogue"}).encode()])
        frames = answer(sock)
        return "no answer" if frames is None else f"answered {frames[1:2]!r}"
    if what == "flood":
        secret, megabytes, side = rest
        sock = dealer(endpoint, broker_public, secret)
        header = CLIENT if side == "client" else WORKER
        sock.send_multipart([header, REQUEST, b"r1", b"{}", b"x" * (int(megabytes) << 20)])
        sock.close(linger=int(WAIT_MS))  # let it go out before the process ends
        return "sent"
    raise SystemExit(f"unknown probe {what!r}")


if __name__ == "__main__":
    print(main(sys.argv[1:]))
