"""Drives the official python-socketio client against a Belfry test server and prints one JSON
line with what it saw. The Rust test that spawns it makes the assertions.

usage: python sio_client.py <base-url> <websocket|polling> [default|msgpack]
"""

import json
import queue
import sys

import socketio

url, transport = sys.argv[1], sys.argv[2]
serializer = sys.argv[3] if len(sys.argv) > 3 else "default"
result = {}
events = queue.Queue()

sio = socketio.Client(reconnection=False, serializer=serializer)


@sio.on("welcome")
def welcome(sid, auth):
    events.put(("welcome", [sid, auth]))


@sio.on("echo")
def echo(value):
    events.put(("echo", value))


@sio.on("bin")
def binary(*buffers):
    events.put(("bin", [list(b) for b in buffers]))


@sio.on("question")
def question(text):
    return 42


@sio.on("answer")
def answer(value):
    events.put(("answer", value))


@sio.event
def disconnect(reason=None):
    events.put(("disconnect", reason))


def wait(name):
    kind, value = events.get(timeout=10)
    assert kind == name, (kind, name, value)
    return value


try:
    sio.connect(url, auth={"token": "py"}, transports=[transport])
    result["transport"] = sio.transport()
    welcome_sid, welcome_auth = wait("welcome")
    result["welcome"] = {"idMatches": welcome_sid == sio.get_sid(), "auth": welcome_auth}
    sio.emit("echo", {"a": [1, "two"]})
    result["echo"] = wait("echo")
    result["sum"] = sio.call("sum", (2, 40), timeout=10)
    sio.emit("bin", (b"\x01\x02\x03", b"\xff"))
    result["bin"] = wait("bin")
    sio.emit("ask")
    result["answer"] = wait("answer")
    sio.emit("kick")
    result["disconnectReason"] = wait("disconnect")
except Exception as error:  # reported to the Rust test, which fails with it
    result["error"] = repr(error)
finally:
    print(json.dumps(result), flush=True)
    sio.disconnect()
