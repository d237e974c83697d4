"""What only the httpx driver (sse_core.adapters.httpx) does, against real servers: HTTP/2 to
hypercorn (h2c) next to HTTP/1.1 to uvicorn, both running FastAPI's ``StreamResponse`` app.
What every driver does (events, resumption through the fault proxy, errors, stalls,
timeouts, closing, the LLM case, gzip either way, the user's proxy through a real
tinyproxy) runs for it in ``test_drivers.py``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from sse_core import InvalidConfigError

httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")

from sse_core.adapters.httpx import EventSource  # noqa: E402

from . import test_response_servers as _servers  # noqa: E402
from .drivers import WORDS, chat  # noqa: E402
from .test_asyncio import run  # noqa: E402
from .test_response_servers import Served  # noqa: E402

#: The real servers' fixture (uvicorn, hypercorn ...), used here for the ones each test names.
served = _servers.served


def test_the_client_must_be_an_httpx_async_client() -> None:
    """A blocking httpx.Client (or anything else) is refused at construction."""
    with httpx.Client() as client, pytest.raises(InvalidConfigError, match="AsyncClient"):
        EventSource(client, "http://127.0.0.1:1/events")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "served", ["uvicorn-fastapi", "hypercorn-h2c-fastapi"], indirect=True
)
def test_post_streams_each_word_over_http1_and_http2(served: Served) -> None:
    """A POST with a JSON body gets one event per word, gzip-compressed by the server
    (decoded by the session); the user's client picks the protocol: HTTP/2 with
    prior knowledge to hypercorn."""
    versions: list[tuple[str, str | None]] = []

    async def seen(response: Any) -> None:
        versions.append((response.http_version, response.headers.get("content-encoding")))

    async def main() -> None:
        kwargs: dict[str, Any] = {"event_hooks": {"response": [seen]}}
        if served.is_http2:
            kwargs.update(http1=False, http2=True)
        async with httpx.AsyncClient(**kwargs) as client:
            words, error = await chat(partial(EventSource, client), served.url + "/chat")
        assert error is None
        assert words == WORDS

    run(main)
    assert versions == [("HTTP/2" if served.is_http2 else "HTTP/1.1", "gzip")]
