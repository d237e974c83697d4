"""Tests of the configuration module's URL helper, add_query, and of its two users: the
stream's cache-busting parameter and the poll's query."""

from __future__ import annotations

import random

import attrs
import pytest

from sse_core import ClientConfig, ClientSession, Connect, Transport
from sse_core._config import add_query


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.test/s", "https://a.test/s?x=1"),
        ("https://a.test/s?k=v", "https://a.test/s?k=v&x=1"),
        ("https://a.test/s#top", "https://a.test/s?x=1"),
        ("https://a.test/s?k=v#top", "https://a.test/s?k=v&x=1"),
        ("https://a.test/s#frag?not=query", "https://a.test/s?x=1"),
    ],
)
def test_add_query(url: str, expected: str) -> None:
    """The query goes after the URL's own query (``&``) or starts one (``?``); the fragment,
    which a request never carries, is dropped, and a ``?`` inside it is not a query."""
    assert add_query(url, "x=1") == expected


def test_stream_and_poll_urls_drop_the_fragment() -> None:
    """Both requests build their URL through add_query: the cache-busting parameter and the
    poll's parameters land before the (dropped) fragment."""
    config = ClientConfig(
        url="https://a.test/s?k=v#top", long_poll_url="https://a.test/p#frag",
        cache_bust_param="cb", initial_transport=Transport.LONG_POLLING,
    )
    client = ClientSession(config, rng=random.Random(3))
    (connect,) = client.start(0.0)[1:]
    assert isinstance(connect, Connect)
    token = connect.request.url.rsplit("cb=", 1)[1]
    assert connect.request.url == f"https://a.test/p?timeout=25&cb={token}"
    streaming = attrs.evolve(config, initial_transport=Transport.STREAMING)
    stream = ClientSession(streaming, rng=random.Random(3)).request()
    assert stream.url == f"https://a.test/s?k=v&cb={token}"
