"""The ``SSE_CORE_PURE_PYTHON`` switch: read once at import, it keeps the C accelerator out.

Each check runs in a fresh interpreter, since the environment is read when sse_core is first
imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Reports which implementation is wired in, and that parsing and serializing work with it.
PROBE = """
import json, sys, types
import sse_core, sse_core._parser as parser
from sse_core import Event, Parser, serialize
items = Parser().feed(b"id: 1\\ndata: caf\\xc3\\xa9\\n\\n")
print(json.dumps({
    "accelerated": sse_core.ACCELERATED,
    "speedups_loaded": "sse_core._speedups" in sys.modules,
    "python_scanner": type(Parser()._scanner) is parser._Scanner,
    "python_event_init": isinstance(Event.__dict__["__init__"], types.FunctionType),
    "parsed": items == [Event(data="caf\\u00e9", id="1", last_event_id="1")],
    "serialized": serialize(Event(data="a\\nb")) == b"data: a\\ndata: b\\n\\n",
}))
"""

IS_BUILT = importlib.util.find_spec("sse_core._speedups") is not None


def probe(value: str | None) -> dict[str, bool]:
    """Run PROBE in a new interpreter with SSE_CORE_PURE_PYTHON set to ``value`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "SSE_CORE_PURE_PYTHON"}
    if value is not None:
        env["SSE_CORE_PURE_PYTHON"] = value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    result: dict[str, bool] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("value", ["1", "yes"])
def test_pure_python_forced(value: str) -> None:
    """With the variable set, _speedups is never imported, sse_core.ACCELERATED is False, the
    parser uses the Python scanner and Event its Python __init__, and parsing and serializing
    work."""
    assert probe(value) == {
        "accelerated": False,
        "speedups_loaded": False,
        "python_scanner": True,
        "python_event_init": True,
        "parsed": True,
        "serialized": True,
    }


@pytest.mark.skipif(not IS_BUILT, reason="the C accelerator is not built here")
@pytest.mark.parametrize("value", [None, "", "0"])
def test_accelerator_used_otherwise(value: str | None) -> None:
    """Unset, empty or ``0``: the built accelerator is loaded and used (the C scanner and
    Event's C __init__)."""
    assert probe(value) == {
        "accelerated": True,
        "speedups_loaded": True,
        "python_scanner": False,
        "python_event_init": False,
        "parsed": True,
        "serialized": True,
    }
