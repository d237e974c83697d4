"""An OpenAI-compatible streaming endpoint built with the ASGI ``StreamResponse``, under a real
uvicorn, read by the official ``openai`` client and by sse_core's asyncio client -- also
through a :class:`~sse_core.testing.FaultProxy` that cuts the answer in the middle.

The endpoint is ``openai_app.py`` (FastAPI, bearer auth, ``chat.completion.chunk`` events and
``[DONE]``; a ``/resumable`` variant with event ids). uvicorn gets a listening socket that
this module bound (``--fd``), so it is reachable the moment it starts accepting.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sse_core import ClientConfig, EndCause, HTTPStatusError, StreamError
from sse_core.adapters.asyncio import EventSource
from sse_core.testing import CutAfter, FaultProxy
from tests._processes import stop

openai = pytest.importorskip("openai", reason="openai is in the peers extra")
pytest.importorskip("fastapi", reason="fastapi is in the peers extra")
pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")

from .openai_app import API_KEY, tokens_of  # noqa: E402  (after the skips: it imports fastapi)

HERE = Path(__file__).resolve().parent
#: Seconds any one wait may take; only a failure ever waits this long.
TIMEOUT = 30.0
#: A prompt whose answer (its words written back) is 60 tokens, non-ASCII among them.
PROMPT = " ".join(f"wörd{n}," for n in range(59)) + " Hello!"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of uvicorn serving ``openai_app``, stopped by PID after."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "openai_app:app", "--fd", str(listener.fileno()),
             "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(HERE)}, stdout=out, stderr=out,
            pass_fds=[listener.fileno()],
        )
    listener.close()  # uvicorn holds its own copy
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, TIMEOUT)


def request(url: str, *, key: str = API_KEY, is_gzip_accepted: bool = True) -> ClientConfig:
    """sse_core's request for ``PROMPT``: a POST with the bearer token and a JSON body."""
    return ClientConfig(
        url=url, method="POST", headers={"Authorization": f"Bearer {key}"},
        json={"model": "sse-core-echo", "stream": True,
              "messages": [{"role": "user", "content": PROMPT}]},
        stall_timeout=TIMEOUT, is_gzip_accepted=is_gzip_accepted,
    )


async def read_tokens(source: EventSource, got: list[str]) -> None:
    """Append each chunk's content to ``got`` until ``[DONE]``; the chunks must have the
    OpenAI shape."""
    async with source:
        async for event in source:
            if event.data == "[DONE]":
                return
            chunk = json.loads(event.data)
            assert chunk["object"] == "chat.completion.chunk"
            assert chunk["id"].startswith("chatcmpl-")
            delta = chunk["choices"][0]["delta"]
            if delta.get("content"):
                got.append(delta["content"])


def run(coroutine: Any) -> Any:
    """Run one test's coroutine with a time limit."""

    async def limited() -> Any:
        return await asyncio.wait_for(coroutine, TIMEOUT)

    return asyncio.run(limited())


@pytest.mark.parametrize("path", ["/v1", "/resumable/v1"])
def test_the_openai_client_streams_every_token_in_order(base_url: str, path: str) -> None:
    """The official client (``stream=True``) gets each token once, in order, and the text
    is exactly the answer, from both endpoints (it ignores the ids)."""
    client = openai.OpenAI(base_url=base_url + path, api_key=API_KEY, max_retries=0,
                           timeout=TIMEOUT)
    with client:
        stream = client.chat.completions.create(
            model="sse-core-echo", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        pieces = [chunk.choices[0].delta.content for chunk in stream]
    tokens = [piece for piece in pieces if piece]
    assert tokens == tokens_of(PROMPT)
    assert "".join(tokens) == PROMPT
    assert len(tokens) == 60


def test_the_openai_client_raises_authentication_error_for_a_wrong_key(base_url: str) -> None:
    """A wrong API key: 401 with OpenAI's JSON error body, which the client raises as its
    AuthenticationError carrying that body."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-wrong", max_retries=0,
                           timeout=TIMEOUT)
    with client, pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(
            model="sse-core-echo", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


@pytest.mark.parametrize("path", ["/v1", "/resumable/v1"])
def test_sse_cores_client_reads_the_exact_text(base_url: str, path: str) -> None:
    """sse_core's asyncio client, POSTing with the bearer token, reads every token once, in
    order: the text is exact."""
    got: list[str] = []
    run(read_tokens(EventSource(request(base_url + path + "/chat/completions")), got))
    assert got == tokens_of(PROMPT)
    assert "".join(got) == PROMPT


def test_sse_cores_client_raises_http_status_error_for_a_wrong_key(base_url: str) -> None:
    """A wrong key: the iteration raises HTTPStatusError with status 401 and the JSON body,
    and yields nothing before."""
    got: list[str] = []
    config = request(base_url + "/v1/chat/completions", key="sk-wrong")
    with pytest.raises(HTTPStatusError) as raised:
        run(read_tokens(EventSource(config), got))
    assert got == []
    assert raised.value.status == 401
    body = json.loads(raised.value.report.body)
    assert body["error"]["code"] == "invalid_api_key"
    assert "Incorrect API key" in str(raised.value)


#: Bytes the proxy relays before it cuts: past the head and a few chunks, well before the end
#: of the 60-token answer (about 240 bytes a chunk; the cut tests ask for no gzip, so that
#: the count is in these plain bytes).
CUT_AT = 3000


def test_a_cut_answer_raises_stream_error_and_no_token_twice(base_url: str) -> None:
    """The endpoint without ids, cut mid-answer by the fault proxy: the POST is not sent
    again (one connection), the tokens before the cut arrive once each, in order, and the
    iteration raises StreamError saying the stream could not resume."""
    got: list[str] = []

    async def scenario() -> tuple[StreamError, Any]:
        host, port = base_url.removeprefix("http://").split(":")
        async with FaultProxy((host, int(port)), plan=[CutAfter(after_bytes=CUT_AT)]) as proxy:
            proxy_url = "http://{}:{}".format(*proxy.address)
            config = request(proxy_url + "/v1/chat/completions", is_gzip_accepted=False)
            source = EventSource(config)
            with pytest.raises(StreamError) as raised:
                await read_tokens(source, got)
            await asyncio.sleep(0.5)  # a re-sent POST would have connected by now
            return raised.value, proxy.stats

    error, stats = run(scenario())
    assert not isinstance(error, HTTPStatusError)
    assert error.report.cause is EndCause.NOT_RESUMABLE
    assert "POST" in str(error)
    assert stats.accepted == 1 and stats.cuts == 1
    answer = tokens_of(PROMPT)
    assert 0 < len(got) < len(answer)
    assert got == answer[: len(got)]


def test_a_cut_resumable_answer_resumes_with_every_token_once(base_url: str) -> None:
    """The endpoint with ids, cut mid-answer: the client sends the POST again with
    Last-Event-ID, the endpoint continues after that event, and the text is exact -- every
    token exactly once."""
    got: list[str] = []

    async def scenario() -> tuple[Any, Any]:
        host, port = base_url.removeprefix("http://").split(":")
        async with FaultProxy((host, int(port)), plan=[CutAfter(after_bytes=CUT_AT)]) as proxy:
            proxy_url = "http://{}:{}".format(*proxy.address)
            source = EventSource(request(proxy_url + "/resumable/v1/chat/completions",
                                         is_gzip_accepted=False))
            await read_tokens(source, got)
            return proxy.stats, source.metrics

    stats, metrics = run(scenario())
    assert stats.accepted == 2 and stats.cuts == 1
    # The endpoint went on after Last-Event-ID: nothing came twice for the client to drop.
    assert metrics.reconnections == 1 and metrics.messages_deduplicated == 0
    assert got == tokens_of(PROMPT)
    assert "".join(got) == PROMPT


def test_the_docs_example_passes_mypy_strict(tmp_path: Path) -> None:
    """The docs page's example (endpoint, server, both clients), as one user program, type-
    checks with ``mypy --strict`` -- the openai client's own types included."""
    pytest.importorskip("mypy", reason="mypy is in the dev extra")
    from tests.test_docs_examples import DOCS, code_blocks

    program = tmp_path / "openai_example.py"
    program.write_text("\n".join(source for _, source in code_blocks(DOCS / "adapters" /
                                                                     "openai.rst")))
    assert "chat.completions.create" in program.read_text()  # the extractor found it
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(program)],
        cwd=HERE.parent.parent, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
