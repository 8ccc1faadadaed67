"""python-socketio against an echo server (examples/echo): each case's arguments are sent as
`echo` with an ack; what comes back as the `echo` event and as the ack is reported, binary as
{"$bin": [bytes]}, object keys in the order they came. Prints one JSON line.

usage: python echo_client.py <url> <websocket|polling>
"""

import json
import queue
import sys

import socketio

url, transport = sys.argv[1], sys.argv[2]
events = queue.Queue()
sio = socketio.Client(reconnection=False)


@sio.on("echo")
def echo(*args):
    events.put(list(args))


def show(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bin": list(v)}
    if isinstance(v, (list, tuple)):
        return [show(x) for x in v]
    if isinstance(v, dict):
        return {k: show(x) for k, x in v.items()}
    return v


cases = {
    "none": [],
    "one": [{"a": 1}],
    "three": [1, "two", [3]],
    "null": [None],
    "binary": [{"name": "f", "data": b"\x01\x02\x03", "list": [b"\x04", {"deep": b"\x05\x06"}]}],
    "binaryArgs": [b"\x07", "between", b"\x08\x09"],
    "keyOrder": [{"z": 1, "a": 2, "m": {"y": 1, "b": 2}}],
}

result = {"cases": {}}
sio.connect(url, transports=[transport])
for name, args in cases.items():
    answered = queue.Queue()
    # python-socketio sends a tuple as its elements, one argument each (none for `()`).
    sio.emit("echo", tuple(args), callback=lambda *got: answered.put(list(got)))
    event = events.get(timeout=10)
    ack = answered.get(timeout=10)
    result["cases"][name] = {
        "sent": json.dumps(show(args), separators=(",", ":")),
        "event": json.dumps(show(event), separators=(",", ":")),
        "ack": json.dumps(show(ack), separators=(",", ":")),
    }
sio.disconnect()
print(json.dumps(result))
