"""Test configuration: hypothesis profiles, and the CI guard against skipping for a peer.

``dev`` (default) keeps the suite quick; ``ci`` runs more examples. Select one with
``HYPOTHESIS_PROFILE=ci``.

With the ``test`` extra alone the suite runs, and a test that needs a real peer (the ``peers``
extra: httpx, uvicorn, trustme, ...) skips, saying which is missing. CI installs them all and
sets ``SSE_CORE_REQUIRE_PEERS=1``: then a missing one fails the run at its start instead, so
no peer test is skipped there unnoticed (as ``SSE_CORE_REQUIRE_NETNS`` does for tests/netns).
"""

import collections
import importlib.metadata
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from packaging.requirements import Requirement

settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: Set (to anything but empty or ``0``) where every peer must be installed: CI.
REQUIRE_PEERS_ENV = "SSE_CORE_REQUIRE_PEERS"
#: The extras whose packages the suite uses; ``test`` names the adapters' extras in turn.
PEER_EXTRAS = ("test", "peers")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_distributions(extras: tuple[str, ...] = PEER_EXTRAS) -> list[str]:
    """The distributions the installed sse-core's ``extras`` name (recursively) that are absent."""
    try:
        requirements = [Requirement(r) for r in importlib.metadata.requires("sse-core") or []]
    except importlib.metadata.PackageNotFoundError:
        return ["sse-core (install it: pip install -e '.[dev]')"]
    wanted, seen, names = list(extras), set(), set()
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in requirements:
            if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
                continue
            if _normalized(requirement.name) == "sse-core":
                wanted.extend(requirement.extras)
            else:
                names.add(requirement.name)
    missing = []
    for name in sorted(names):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under ``SSE_CORE_REQUIRE_PEERS``, stop at once if a package a peer test needs is absent."""
    if os.environ.get(REQUIRE_PEERS_ENV, "") in ("", "0"):
        return
    missing = missing_distributions()
    if missing:
        pytest.exit(
            f"{REQUIRE_PEERS_ENV} is set but these are not installed: {', '.join(missing)} "
            f"(pip install -e '.[dev]')",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many simulated scenarios ran and how many completed (tests/test_simulation)."""
    totals: collections.Counter[str] = collections.Counter()
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        totals.update(
            {key: value for key, value in report.user_properties
             if key in ("scenarios", "completed")}
        )
    if totals["scenarios"]:
        rate = totals["completed"] / totals["scenarios"]
        terminalreporter.write_line(
            f"simulation: {totals['scenarios']} scenarios, {totals['completed']} completed "
            f"({rate:.2%})"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the combinations a test module declares meaningless, so that they are neither
    run nor reported as skipped: a module's ``NOT_APPLICABLE`` maps a test function's name to
    ``{fixture or argument name: values it does not apply to}``."""
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        rules = getattr(getattr(item, "module", None), "NOT_APPLICABLE", {})
        callspec = getattr(item, "callspec", None)
        rule = rules.get(getattr(item, "originalname", item.name), {})
        if callspec is not None and any(
            callspec.params.get(name) in values for name, values in rule.items()
        ):
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
