"""The server side writes wire bytes only through the serializer (issue 10, section 4).

The padding, the ``retry:`` hints, the position and gap blocks and the heartbeats of
``ServerSession``, ``Broadcaster`` and ``LongPollSession`` all come from ``_serializer``; their
modules hold no bytes literal but the empty one (used to join what the serializer made).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sse_core
from sse_core import Comment, Parser, Retry, Send, ServerConfig, ServerSession
from sse_core._serializer import serialize_block, serialize_padding

PACKAGE = Path(sse_core.__file__).resolve().parent
SERVER_SIDE = ["_server.py", "_broadcast.py", "_longpoll.py"]


@pytest.mark.parametrize("name", SERVER_SIDE)
def test_no_hand_made_wire_bytes(name: str) -> None:
    """No bytes literal other than b"" in the server-side session modules."""
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    literals = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and node.value
    ]
    assert literals == []


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 100, 2048])
def test_padding_is_one_comment_block_of_the_size(size: int) -> None:
    """serialize_padding(size) is ":", spaces, LF and a blank line: exactly size bytes (3 at
    least), parsed as one comment that dispatches nothing."""
    data = serialize_padding(size)
    assert len(data) == max(size, 3)
    assert data == b":" + b" " * (len(data) - 3) + b"\n\n"
    assert Parser().feed(data) == [Comment(text=" " * (len(data) - 3))]


@pytest.mark.parametrize(
    "item", [Retry(milliseconds=0), Retry(milliseconds=1500), Comment(text="x")]
)
def test_block_is_the_item_and_a_blank_line(item: Retry | Comment) -> None:
    """serialize_block(item) parses back to the item alone, and ends the block."""
    data = serialize_block(item)
    assert data.endswith(b"\n\n")
    assert Parser().feed(data + b"data: after\n\n")[0] == item


def test_server_preamble_is_the_serializers_bytes() -> None:
    """The body of a new stream starts with the serializer's padding block, then its retry
    block, byte for byte."""
    session = ServerSession(ServerConfig(padding=64, retry=1500, heartbeat_interval=None))
    sends = [a.data for a in session.on_request("/", [], 0.0) if isinstance(a, Send)]
    body = b"".join(sends)
    assert body.startswith(serialize_padding(64) + serialize_block(Retry(milliseconds=1500)))
