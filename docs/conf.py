"""Sphinx configuration of the sktve documentation.

The build is offline (no intersphinx inventories are downloaded) and strict: the
Makefile passes ``-W --keep-going -n`` so that any warning, including a reference that
does not resolve, fails the build. References to third-party types that cannot be
resolved without intersphinx are listed in ``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the package, even when it is not installed
sys.path.insert(0, str(HERE))  # _build_tables.py

# Nothing in the documentation may reach for the network (examples included).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import sktve  # noqa: E402

try:
    import torch

    # The examples train tiny models: one thread is as fast, and much faster when the
    # machine is shared (two OpenMP threads on a busy 2-core machine spin-wait badly).
    torch.set_num_threads(int(os.environ.get("SKTVE_DOCS_TORCH_THREADS", "1")))
except ImportError:  # pragma: no cover - torch is a dependency
    pass

# -- project -----------------------------------------------------------------------------
project = "sktve"
author = "the sktve developers"
copyright = "the sktve developers"  # noqa: A001
release = sktve.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "user_guide/_scripts",
    "_generated",  # pieces included by other pages
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "sg_execution_times.rst",
]
default_role = "literal"  # `x` renders as code instead of an unresolved reference

# -- strictness --------------------------------------------------------------------------
nitpicky = True
# Third-party names appear in docstrings (types, "See Also") and cannot be resolved offline
# without intersphinx. Our own names are not ignored: a broken sktve reference fails.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(pandas|pd|numpy|np|torch|nn|sklearn|scipy|joblib|duckdb|relbench|skorch|"
        r"torch_geometric|lightgbm|pyarrow|datetime|collections|typing|pickle)(\..*)?",
    ),
    # Private base classes shown by :show-inheritance: are not documented.
    (r"py:class", r"sktve(\.\w+)*\._\w+"),
    (
        r"py:.*",
        r"(DataFrame|Series|Index|Timestamp|Timedelta|ndarray|Tensor|Module|Path|"
        r"HeteroData|Generator|Memory|PredefinedSplit|Pipeline|Any|Callable|Mapping|"
        r"Sequence|Iterator|EdgeType)",
    ),
]

# -- autodoc / autosummary / numpydoc ------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # types are in the numpydoc "Parameters" sections
autodoc_member_order = "bysource"
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery ----------------------------------------------------------------------
# Only plot_*.py examples run at build time: they use the synthetic database and take
# seconds. relf1_*.py examples need the RelBench rel-f1 folder ($SKTVE_RELF1) and minutes;
# they are rendered without running unless SKTVE_DOCS_RUN_RELF1=1 (``make html-relf1``).
_run_relf1 = os.environ.get("SKTVE_DOCS_RUN_RELF1", "") not in ("", "0")
sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/(plot|relf1)_" if _run_relf1 else r"/plot_",
    "ignore_pattern": r"(__init__|_helpers)\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sktve",),
    "backreferences_dir": "gen_modules/backreferences",
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "min_reported_time": 1,
    "write_computation_times": False,
}

# -- myst (the Markdown architecture page) -----------------------------------------------
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------------------
try:  # a theme that is not installed falls back to Sphinx's own
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
        "header_links_before_dropdown": 6,
    }
except ImportError:
    html_theme = "alabaster"
html_title = f"sktve {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn adds set_{fit,score,...}_request methods to every estimator class for
    # metadata routing; their docstrings point into scikit-learn's own documentation.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _short_sktve_reference(app, env, node, contnode):
    """Resolve an unqualified Python reference to the one sktve object of that name.

    Docstrings often say :class:`SampledBatch` from another module than the one that
    defines it; when exactly one documented sktve object has that last name, link to it.
    Ambiguous or unknown names stay unresolved (and fail the build).
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or "." in target.lstrip("~."):
        return None
    name = target.lstrip("~.")
    domain = env.get_domain("py")
    matches = [
        full
        for full, entry in domain.objects.items()
        if full.startswith("sktve.")
        and full.rsplit(".", 1)[-1] == name
        and not entry.aliased  # canonical-name duplicates of the same object
    ]
    if len(matches) != 1:
        return None
    return domain.resolve_xref(
        env, node.get("refdoc"), app.builder, node["reftype"], matches[0], node, contnode
    )


# -- build-time pages --------------------------------------------------------------------
def _generate(app):
    """Render benchmark tables, the worked example's output and the CLI help."""
    import _build_tables

    _build_tables.write_all(HERE / "_generated", ROOT)


def setup(app):
    app.connect("builder-inited", _generate)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("missing-reference", _short_sktve_reference)
