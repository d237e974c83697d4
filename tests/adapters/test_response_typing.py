"""The docs' framework examples type-check in user code under ``mypy --strict``.

The issue found the docs' FastAPI line ``app.add_route("/events", stream)`` failing
``mypy --strict`` in a user's program. These run mypy, as a user would, on the FastAPI,
Starlette, Litestar, Quart and Flask examples of docs/adapters/responses.rst and on the
FastAPI route the ASGI page gives for :class:`~sse_core.adapters.asgi.EventStream`; and
check that the old line does fail, so that the docs' warning about it stays true.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_docs_examples import DOCS, code_blocks

ROOT = DOCS.parent

pytest.importorskip("mypy", reason="mypy is in the dev extra")
pytest.importorskip("fastapi", reason="fastapi is in the peers extra")
pytest.importorskip("flask", reason="flask is in the peers extra")
pytest.importorskip("litestar", reason="litestar is in the peers extra")
pytest.importorskip("quart", reason="quart is in the peers extra")

EVENT_STREAM_IN_FASTAPI = """
from fastapi import FastAPI
from starlette.routing import Route

from sse_core.adapters.asgi import EventStream

app = FastAPI()
stream = EventStream()
app.router.routes.append(Route("/events", stream))
"""

OLD_LINE = """
from fastapi import FastAPI

from sse_core.adapters.asgi import EventStream

app = FastAPI()
stream = EventStream()
app.add_route("/events", stream)
"""


def _example(marker: str) -> str:
    for _, source in code_blocks(DOCS / "adapters" / "responses.rst"):
        if marker in source:
            return source
    raise AssertionError(f"no example with {marker!r} in responses.rst")


def _mypy(tmp_path: Path, sources: dict[str, str]) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, source in sources.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(str(path))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )


def test_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """The FastAPI, Starlette, Litestar, Quart (with its ASGI mount) and Flask per-request
    examples and the FastAPI route for a broadcast stream type-check with ``mypy --strict``
    (Django ships no type hints)."""
    result = _mypy(tmp_path, {
        "fastapi_example": _example("from fastapi import FastAPI"),
        "starlette_example": _example("async def feed(last_event_id: str)"),
        "litestar_example": _example("from litestar import Litestar"),
        "quart_example": _example("from quart import Quart"),
        "flask_example": _example("from flask import Flask"),
        "event_stream_route": EVENT_STREAM_IN_FASTAPI,
    })
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_old_add_route_line_fails_mypy_strict(tmp_path: Path) -> None:
    """``app.add_route("/events", stream)`` is what the docs warn against: mypy refuses it."""
    result = _mypy(tmp_path, {"old_line": OLD_LINE})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "add_route" in result.stdout
