"""Number formatting shared by the generated text and tables."""

from __future__ import annotations

import numpy as np


def fmt_num(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or in ``%.3g`` form when it is huge or tiny (e.g. an exploded energy ratio)."""
    if not np.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 10 ** -digits):
        return f"{x:.3g}"
    return f"{x:.{digits}f}"
