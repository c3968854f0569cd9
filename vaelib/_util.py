"""Small helpers shared by vaelib's modules."""

import json
import math
from pathlib import Path


def one_line(text, limit: int | None = None) -> str:
    """``text`` with all whitespace runs (newlines included) collapsed to single spaces, cut to ``limit`` chars."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def save_json(path, obj):
    """Write ``obj`` as indented JSON (floats rounded to 6 significant digits)."""

    def _round(v):
        if isinstance(v, float) and math.isfinite(v):
            return float(f"{v:.6g}")
        if isinstance(v, dict):
            return {k: _round(x) for k, x in v.items()}
        if isinstance(v, list):
            return [_round(x) for x in v]
        return v

    Path(path).write_text(json.dumps(_round(obj), indent=2) + "\n")
