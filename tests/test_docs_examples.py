"""Every docs page's code examples really run, and the reference covers every export."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

import sse_core
import sse_core.state

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted([*DOCS.glob("*.rst"), *DOCS.glob("state/*.rst"), *DOCS.glob("adapters/*.rst"),
                *DOCS.glob("migrate/*.rst")])
_DIRECTIVE = re.compile(r"^\.\. code-block:: python\s*$")


def is_peer_required() -> bool:
    """Whether every peer must be installed (``SSE_CORE_REQUIRE_PEERS``, set by CI)."""
    return os.environ.get("SSE_CORE_REQUIRE_PEERS", "") not in ("", "0")


def code_blocks(path: Path) -> list[tuple[int, str]]:
    """The ``.. code-block:: python`` bodies of a page, with their line numbers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if not _DIRECTIVE.match(lines[i]):
            i += 1
            continue
        i += 1
        # Directive options (":caption: ...") and the blank line before the body.
        while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith(":")):
            i += 1
        start = i
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            i += 1
        blocks.append((start + 1, textwrap.dedent("\n".join(lines[start:i]))))
    return blocks


def test_pages_have_examples() -> None:
    """The extractor finds the examples (so the tests below cannot pass vacuously)."""
    counts = {page.relative_to(DOCS).as_posix(): len(code_blocks(page)) for page in PAGES}
    for name in ("index.rst", "events.rst", "parser.rst", "serializer.rst", "client.rst",
                 "state/backoff.rst", "state/chunking.rst", "state/dedup.rst",
                 "state/metrics.rst", "state/replay.rst", "state/sequencer.rst",
                 "state/timers.rst"):
        assert counts[name] >= 1, counts
    assert sum(counts.values()) >= 12, counts


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path) -> None:
    """Each page's examples run in order, in one namespace, without raising."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for line, source in code_blocks(page):
        code = compile(source, f"{page}:{line}", "exec")
        try:
            exec(code, namespace)
        except ModuleNotFoundError as error:  # a framework the example shows (Starlette, ...)
            if error.name is None or error.name.startswith("sse_core") or is_peer_required():
                raise
            pytest.skip(f"the example at line {line} needs {error.name} (the peers extra)")


def _documented_names() -> set[str]:
    pattern = re.compile(r"^\.\. (?:auto\w+|py:\w+):: (?:sse_core\.(?:state\.)?)?(\w+)", re.M)
    names: set[str] = set()
    for page in [*DOCS.glob("*.rst"), *DOCS.glob("state/*.rst")]:
        names.update(pattern.findall(page.read_text(encoding="utf-8")))
    return names


def test_every_export_is_documented() -> None:
    """Every name in sse_core.__all__ and sse_core.state.__all__ has a reference entry."""
    missing = sorted((set(sse_core.__all__) | set(sse_core.state.__all__)) - _documented_names())
    assert not missing, f"add reference entries for {missing}"


def test_documented_constant_values_are_current() -> None:
    """The values written by hand in api.rst (``py:data`` with ``:value:``) are the real ones."""
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    entries = re.findall(r"^\.\. py:data:: (sse_core\.state\.)?(\w+)\n   :value: (.+)$", text,
                         re.M)
    assert len(entries) >= 4
    for module, name, value in entries:
        assert repr(getattr(sse_core.state if module else sse_core, name)) == value, name


def test_state_pages_are_included() -> None:
    """The index picks up every docs/state/*.rst page through its toctree glob."""
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert re.search(r":glob:\n\n   state/\*$", index, re.M)
