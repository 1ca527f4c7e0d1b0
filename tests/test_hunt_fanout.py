"""One user's edits must not close her collaborators' sockets (issue 12/14: "one user cannot
hurt another").

An edit of a source used by N calculations sends every other socket on the workbook N + 1
messages at once (source.saved, then each calculation.saved pending), and N more as the
follow-ups are computed. A socket whose writer was still sending the last batch (a browser
on an ordinary link, ~300 kB for 200 calculations) found its outbox (wssvc.client_queue,
256) full after a couple of such edits and was closed 4001 "too slow", although it was
reading: one writer's two clicks closed every reader of her workbook. The queued states that
a later state of the same item supersedes are dropped now before the outbox counts as full;
a browser that reads nothing is still closed, and no reply to a request is ever dropped."""

from __future__ import annotations

import json

from etckit.wssvc.hub import CLOSE_TOO_SLOW, Client, Hub, Outbox

QUEUE = 32
CALCS = 20  # each edit: source.saved + CALCS calculation.saved, within the queue's room


def _client(hub: Hub, user: str) -> Client:
    client = Client(id=f"c-{user}", user=user, workbook="W", queue=Outbox(QUEUE))  # no writer
    hub.add(client)
    return client


def _edit(n: int) -> tuple[list[dict], list[bytes]]:
    """A worker's reply to alice's source.edit, as Hub.deliver gets it: her reply (ref), then
    the broadcasts to the workbook's other sockets."""
    texts = [{"type": "source.saved", "workbook": "W", "item": {"id": "s", "n": n}, "ref": n},
             {"type": "source.saved", "workbook": "W", "item": {"id": "s", "n": n}}]
    texts += [{"type": "calculation.saved", "workbook": "W",
               "item": {"id": f"calc{i}", "status": "pending", "n": n}} for i in range(CALCS)]
    to = [{"client": "c-alice"}] + [{"workbook": "W", "except": "c-alice"}] * (len(texts) - 1)
    return to, [json.dumps(t).encode() for t in texts]


async def test_a_collaborators_edits_do_not_close_a_reading_socket():
    hub = Hub()
    _client(hub, "alice")
    bob = _client(hub, "bob")
    for n in range(5):  # five edits while bob's writer is busy with an earlier batch
        hub.deliver(*_edit(n))
    assert bob.close_code is None, bob.close_reason
    queued = [json.loads(t) for t in bob.queue.take()]
    assert len(queued) == CALCS + 1
    assert {m["item"]["n"] for m in queued} == {4}  # each item's latest state
    assert [m["item"]["id"] for m in queued] == ["s"] + [f"calc{i}" for i in range(CALCS)]


async def test_a_socket_that_reads_nothing_is_still_closed():
    hub = Hub()
    bob = _client(hub, "bob")
    texts = [json.dumps({"type": "calculation.saved", "workbook": "W",
                         "item": {"id": f"calc{i}"}}).encode() for i in range(QUEUE + 1)]
    hub.deliver([{"workbook": "W"}] * len(texts), texts)
    assert bob.close_code == CLOSE_TOO_SLOW


async def test_replies_and_other_messages_are_never_dropped():
    hub = Hub()
    alice = _client(hub, "alice")
    same = {"type": "calculation.saved", "workbook": "W", "item": {"id": "calc0"}}
    for n in range(QUEUE):
        alice.send({**same, "ref": n})  # answers to her requests: each one counts
    assert alice.close_code is None
    alice.send({**same, "ref": QUEUE})
    assert alice.close_code == CLOSE_TOO_SLOW
    carol = _client(hub, "carol")
    for n in range(QUEUE + 1):  # not an item's state: nothing supersedes it
        carol.send({"type": "calculation.deleted", "workbook": "W", "item": "calc0", "n": n})
    assert carol.close_code == CLOSE_TOO_SLOW
