"""Tests of the configuration module's URL helper, add_query, and of its two users (the
stream's cache-busting parameter and the poll's query), and of the request fields as users
write them: headers as a mapping, a body as str or bytes, and ``json=``."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from sse_core import (
    ClientConfig,
    ClientSession,
    Connect,
    InvalidConfigError,
    LongPollConfig,
    ServerConfig,
    Transport,
)
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


# --- the request as users write it: headers as a mapping, body as str or bytes, json= ------

URL = "https://api.example.test/v1/chat/completions"


def _request_of(config: ClientConfig) -> Any:
    return ClientSession(config, rng=random.Random(0)).request()


def _header(request: Any, name: str) -> list[str]:
    return [value for field, value in request.headers if field.lower() == name.lower()]


def test_headers_as_a_mapping_become_pairs() -> None:
    """``headers={...}`` is taken in its order and stored as the pairs it means; pairs (with a
    repeated name) still work, and both reach the request."""
    config = ClientConfig(url=URL, headers={"Authorization": "Bearer x", "X-Trace": "1"})
    assert config.headers == (("Authorization", "Bearer x"), ("X-Trace", "1"))
    assert config == ClientConfig(url=URL, headers=[("Authorization", "Bearer x"),
                                                    ("X-Trace", "1")])
    assert _header(_request_of(config), "Authorization") == ["Bearer x"]
    assert ServerConfig(headers={"X-A": "1"}).headers == (("X-A", "1"),)
    assert LongPollConfig(headers={"X-A": "1"}).headers == (("X-A", "1"),)


@pytest.mark.parametrize(
    ("body", "sent"),
    [("héllo", "héllo".encode()), (b"\x00raw", b"\x00raw"), (None, None), ("", b"")],
)
def test_a_body_may_be_str_or_bytes(body: str | bytes | None, sent: bytes | None) -> None:
    """A ``str`` body is sent as UTF-8, ``bytes`` as they are; no Content-Type is made up."""
    config = ClientConfig(url=URL, method="POST", body=body)
    assert config.body == sent
    request = _request_of(config)
    assert request.body == sent
    assert _header(request, "Content-Type") == []


def test_json_is_serialized_once_compactly_with_its_content_type() -> None:
    """``json=`` is sent as compact UTF-8 JSON with ``Content-Type: application/json``, the
    same bytes on every request (serialized on construction: changing the value later
    changes nothing)."""
    value: dict[str, Any] = {"model": "m", "messages": [{"content": "wörld"}], "stream": True}
    config = ClientConfig(url=URL, method="POST", json=value)
    expected = '{"model":"m","messages":[{"content":"wörld"}],"stream":true}'.encode()
    assert config.request_body == expected
    value["stream"] = False
    session = ClientSession(config, rng=random.Random(0))
    first = session.request()
    assert first.body == expected
    assert session.request().body is first.body  # the bytes made once, not serialized again
    assert _header(first, "Content-Type") == ["application/json"]
    assert attrs.evolve(config, json=[1, None]).request_body == b"[1,null]"


def test_a_users_content_type_wins_over_json() -> None:
    """A Content-Type the user set (any case) is kept, and sent once."""
    config = ClientConfig(url=URL, method="POST", json={"a": 1},
                          headers={"content-type": "application/vnd.api+json"})
    assert _header(_request_of(config), "Content-Type") == ["application/vnd.api+json"]


def test_json_and_body_together_are_refused() -> None:
    """``json`` with ``body`` is refused, saying so; a value JSON cannot carry is refused
    when the config is made, not when the request goes."""
    with pytest.raises(InvalidConfigError, match="body or json, not both"):
        ClientConfig(url=URL, method="POST", body="{}", json={})
    with pytest.raises(InvalidConfigError, match="JSON-serializable"):
        ClientConfig(url=URL, method="POST", json={"when": float("inf")})
