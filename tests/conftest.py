"""Test configuration: hypothesis profiles.

``dev`` (default) keeps the suite quick; ``ci`` runs more examples. Select one with
``HYPOTHESIS_PROFILE=ci``.
"""

import collections
import os
from typing import Any

from hypothesis import HealthCheck, settings

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
