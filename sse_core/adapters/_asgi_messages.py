"""The ASGI messages every ASGI application of the adapters sends and receives (floor 4):
the callables' types, an action as its ASGI message, and the watch for the client's going.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from .._actions import Action, Disconnect, Send, SendHead
from .._errors import LocalProtocolError

__all__ = ["ASGISend", "Message", "Receive", "Scope", "message_of", "watch_disconnect"]

#: An ASGI connection scope.
Scope = MutableMapping[str, Any]
#: An ASGI event (message) received or sent.
Message = MutableMapping[str, Any]
#: The ASGI ``receive`` callable.
Receive = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable.
ASGISend = Callable[[Message], Awaitable[None]]


async def watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel the connection's work when the client goes away (``http.disconnect``); the
    rest of a request body nobody read is skipped on the way."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def message_of(action: Action) -> Message:
    """A server session's action as the ASGI message that carries it out."""
    if isinstance(action, SendHead):
        return response_start(action)
    if isinstance(action, Send):
        return {"type": "http.response.body", "body": action.data, "more_body": True}
    if isinstance(action, Disconnect):
        return {"type": "http.response.body", "body": b"", "more_body": False}
    raise LocalProtocolError(f"a server session asked for {action!r}")  # pragma: no cover


def response_start(head: SendHead) -> Message:
    """The ``http.response.start`` message of a response head."""
    return {
        "type": "http.response.start",
        "status": head.status,
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in head.headers
        ],
    }
