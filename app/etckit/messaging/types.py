"""The browser message types wssvc accepts (docs/protocol.md).

LOCAL types are answered by wssvc itself; REQUEST_TYPES go to a worker, which has a handler
for each (a test checks that the two lists agree).
"""

LOCAL_TYPES = frozenset({"ping", "pong"})

REQUEST_TYPES = frozenset({
    "echo",
    "test.sleep",
    "workbook.list",
    "workbook.create",
    "workbook.rename",
    "workbook.delete",
})

ID_MAX = 64
