"""``vaelib report``: the notebooks run headlessly and rendered as inert, self-contained HTML.

Modules, in the order a run uses them:

* :mod:`~vaelib.report.params` — the one parameter schema of the notebooks (types, defaults, ranges, help);
* :mod:`~vaelib.report.plan` — notebook discovery and validation of everything before anything runs;
* :mod:`~vaelib.report.run` — papermill execution, the scheduler (two notebooks at a time), :func:`run_report`;
* :mod:`~vaelib.report.warm` — warm kernels: each notebook's kernel forked from one process that imported torch,
  diffusers and vaelib once (``--cold-kernels`` to start them from scratch);
* :mod:`~vaelib.report.pages` — each notebook as an HTML page, and ``index.html`` (findings first);
* :mod:`~vaelib.report.html` — the one home of escaping (Markdown / HTML), the Content-Security-Policy, number
  formatting and ``data:`` URIs;
* :mod:`~vaelib.report.evalpage` — the corpus page of a ``vaelib eval`` folder (``vaelib report --from-eval``).

The notebooks themselves live once, in the repository's ``notebooks/``, installed as the package data
``vaelib.report.notebooks`` (:func:`~vaelib.report.plan.notebooks_dir`).
"""

from .pages import export_html, write_index
from .plan import (
    DEFAULT_NOTEBOOKS,
    ReportError,
    ReportPlan,
    default_notebooks,
    format_params,
    inspect_params,
    notebooks_dir,
    parse_assignments,
    plan_report,
)
from .run import NotebookError, ReportResult, run_report

__all__ = [
    "DEFAULT_NOTEBOOKS",
    "NotebookError",
    "ReportError",
    "ReportPlan",
    "ReportResult",
    "default_notebooks",
    "export_html",
    "format_params",
    "inspect_params",
    "notebooks_dir",
    "parse_assignments",
    "plan_report",
    "run_report",
    "write_index",
]
