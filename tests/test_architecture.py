"""The floors of STYLE.md hold: imports point only downward and the core does no I/O.

Floor 0 (errors, types, validators) imports only floor 0; floor 1 (records, parser, serializer) only
floor 0; floor 2 state objects import floors 0-1 and never each other; floors 0-3 never import
modules that read clocks, sleep, touch sockets or draw randomness.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import sse_core
import sse_core.state

PACKAGE = Path(sse_core.__file__).resolve().parent

FLOORS = {
    "_errors": 0,
    "_types": 0,
    "_version": 0,
    "_validators": 0,  # argument checks and the rule for `now`, used by every floor above
    "_events": 1,
    "_parser": 1,
    "_accelerator": 1,  # loads _speedups unless SSE_CORE_PURE_PYTHON=1
    "_speedups": 1,  # the C accelerator's stub (_speedups.pyi); the source is _speedups.c
    "_serializer": 1,
    "_backoff": 2,
    "_dedup": 2,
    "_sequencer": 2,
    "_chunking": 2,
    "_timers": 2,
    "_replay": 2,
    "_metrics": 2,
    "_actions": 3,
    "_compression": 3,
    "_config": 3,  # the sessions' configurations
    "_transport": 3,  # the client's transport fallback (TransportSwitch)
    "_handshake": 3,  # the client's requests and its verdict on a response head
    "_client": 3,
    "_server": 3,
    "_longpoll": 3,
    "_pipeline": 3,
    "_audit": 3,  # the client session's audit trail (records over the sessions' actions)
    "_batching": 3,  # a state object over the sessions' actions (Deliver -> DeliverBatch)
    "_health": 3,  # a pure monitor over the sessions' metrics snapshots (alerts as records)
    "_broadcast": 3,
    "_shared_log": 3,  # the contract of every resumption log (ReplayLog's records, two shapes)
    "_stream_log": 3,  # the pure decisions of a log kept in a stream store (Redis)
    "state": 3,  # the public namespace of the state objects (re-exports floors 1-3)
}
# Edges (floor 4) may do I/O; everything else must not.
# _cli is the command line (a package: sse_core/_cli/): it reads stdin, writes the terminal,
# starts threads and subprocesses and runs the adapters -- I/O through and through.
EDGES = {"__main__", "_live_demo", "_cli"}
FORBIDDEN = {
    "time", "asyncio", "trio", "socket", "ssl", "selectors", "threading", "os", "random",
    "subprocess", "multiprocessing", "datetime",
}
# The one exception: _accelerator reads SSE_CORE_PURE_PYTHON from os.environ, once, at import.
ALLOWED = {"_accelerator": {"os"}}


def core_modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.glob("*.py")
        if path.stem not in EDGES and path.stem != "__init__"
    )


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """Return (absolute top-level modules, our private modules) imported by the file."""
    absolute: set[str] = set()
    ours: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    ours.add(node.module.split(".")[0])
                else:
                    ours.update(alias.name for alias in node.names)
            elif node.module:
                top = node.module.split(".")[0]
                if top == "sse_core":
                    ours.update(
                        node.module.split(".")[1:] or [alias.name for alias in node.names]
                    )
                else:
                    absolute.add(top)
    return absolute, ours


def test_every_core_module_has_a_floor() -> None:
    """A new module must be placed on a floor here (and so be checked)."""
    unplaced = [path.stem for path in core_modules() if path.stem not in FLOORS]
    assert unplaced == []


def test_every_subpackage_is_an_edge() -> None:
    """A package inside sse_core is floor 4 (adapters, testing, the command line): the core
    is flat modules, each on a floor above."""
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages - {"adapters", "testing"} <= EDGES


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.stem)
def test_core_does_no_io(path: Path) -> None:
    """Floors 0-3 import nothing that reads clocks, sleeps, does I/O or draws randomness."""
    absolute, _ = imports_of(path)
    assert absolute & (FORBIDDEN - ALLOWED.get(path.stem, set())) == set()


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.stem)
def test_core_stays_silent(path: Path) -> None:
    """Floors 0-3 do not log: their actions carry everything, and the adapters log what they
    carried out (``sse_core.client``, ``sse_core.server``)."""
    absolute, _ = imports_of(path)
    assert "logging" not in absolute


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.stem)
def test_imports_point_down(path: Path) -> None:
    """A module imports only from lower floors or its own (floor 2 objects never from each
    other: each state object stands alone)."""
    floor = FLOORS.get(path.stem)
    if floor is None:
        pytest.fail(f"{path.stem} has no floor")
    _, ours = imports_of(path)
    for name in ours:
        assert name in FLOORS, f"{path.stem} imports unknown module {name}"
        assert FLOORS[name] < floor or (FLOORS[name] == floor and floor != 2), (
            f"{path.stem} (floor {floor}) imports {name} (floor {FLOORS[name]})"
        )


@pytest.mark.parametrize("namespace", [sse_core, sse_core.state], ids=lambda m: m.__name__)
def test_all_is_explicit_and_complete(namespace: ModuleType) -> None:
    """Every public name is in __all__ and every name in __all__ exists and has a docstring;
    the root and sse_core.state share no name."""
    for name in namespace.__all__:
        obj = getattr(namespace, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
    public = {
        name for name, obj in vars(namespace).items()
        if not name.startswith("_") and not inspect.ismodule(obj)  # sse_core.testing is opt-in
    }
    assert public - set(namespace.__all__) == set()
    assert not set(sse_core.__all__) & set(sse_core.state.__all__)


ADAPTERS = PACKAGE / "adapters"


def adapter_modules() -> list[Path]:
    return sorted(path for path in ADAPTERS.glob("*.py") if path.stem != "__init__")


def test_adapter_http_glue_does_no_io() -> None:
    """The h11 glue shared by the adapters is sans-IO like the core: no sockets, no clock."""
    absolute, _ = imports_of(ADAPTERS / "_http.py")
    assert absolute & FORBIDDEN == set()


@pytest.mark.parametrize("path", adapter_modules(), ids=lambda path: path.stem)
def test_adapters_never_import_each_other(path: Path) -> None:
    """An adapter may use the shared helpers (``_http``, the sans-IO glue; ``_base``, what
    every adapter shares, ``_client_base`` what their clients share, ``_asyncio_client`` the
    asyncio clients' loop, ``_trio_client`` the trio clients' loop (the socket adapter's and
    the httpx driver's), ``_sync_client`` the blocking clients' loop, ``_server_base`` what
    their servers share; ``_options``, their options records; ``_sockets``, socket options;
    ``_response``, what the per-request responses share; ``_async_response``, the loop the
    async ones share -- apart from ``_response`` because it needs anyio, which the WSGI
    response does not; ``_logging``, the loggers and the ``extra`` keys of every adapter's
    records; ``_exporters``, what the metrics exporters share), its own private
    modules (``trio`` -> ``_trio_server``, ``asgi`` -> ``_asgi_response``, and these among
    themselves) and the core, never another adapter."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    siblings = {
        alias.name if not node.module else node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
    }
    absolute_siblings = {
        node.module.split(".")[2]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        and node.module.startswith("sse_core.adapters.")
    }
    family = f"_{path.stem.lstrip('_').split('_')[0]}_"
    own = {name for name in siblings | absolute_siblings if name.startswith(family)}
    allowed = {
        "_http", "_base", "_client_base", "_asyncio_client", "_trio_client", "_sync_client",
        "_exporters",
        "_server_base", "_options", "_sockets", "_response", "_async_response", "_logging",
    } | own
    assert (siblings | absolute_siblings) - allowed == set()
