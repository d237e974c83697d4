"""Sphinx configuration for the sse_core documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
No network is needed: intersphinx is deliberately not used.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "sse_core"
author = "sse_core contributors"
copyright = "sse_core contributors"
release = "0.1.0.dev0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# Google-style docstrings (Args / Returns / Raises / Attributes).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Render "Attributes:" as :ivar: fields, so that they do not create a second object
# description next to the one autodoc makes for the same attribute.
napoleon_use_ivar = True

# Type hints go into the parameter descriptions, not the signatures: keeps signatures short
# and avoids unresolvable cross-references in them.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_default_options = {"members": True}

nitpicky = False
default_role = "py:obj"
exclude_patterns = ["_build"]
templates_path: list[str] = []

html_theme = "alabaster"
html_title = f"sse_core {release}"
html_theme_options = {
    "description": "Sans-IO Server-Sent Events",
    "fixed_sidebar": True,
}
