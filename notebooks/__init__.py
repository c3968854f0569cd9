"""The report notebooks, installed with vaelib as the package data ``vaelib.report.notebooks`` (pyproject.toml)."""
