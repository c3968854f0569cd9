"""Per-clip change distributions (vaelib.changes), by hand."""

import math

import numpy as np
import pytest

from vaelib.changes import change_summary, describe_change, relative_change


def test_relative_change_by_hand():
    got = relative_change([2.0, 4.0, 0.0, 1.0, np.nan], [1.0, 5.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(got[:2], [-0.5, 0.25])
    assert got[3] == 0.0 and np.isnan(got[2]) and np.isnan(got[4])  # zero or missing reference: no change defined
    with pytest.raises(ValueError, match="same shape"):
        relative_change([1.0], [1.0, 2.0])


def test_change_summary_by_hand():
    ref = [1.0, 2.0, 4.0, 1.0]
    new = [0.5, 2.2, 3.0, 1.0]  # changes -50 %, +10 %, -25 %, 0
    s = change_summary(ref, new, ["a", "b", "c", "d"])
    assert s["clips"] == 4 and s["improved"] == 2 and s["worse"] == 1 and s["share_improved"] == 0.5
    assert s["median"] == pytest.approx(-0.125) and s["mean"] == pytest.approx((-0.5 + 0.1 - 0.25 + 0) / 4)
    assert (s["worst_clip"], s["best_clip"]) == ("b", "a")
    assert s["worst"] == pytest.approx(0.1) and s["best"] == pytest.approx(-0.5)
    assert s["mean_of_means"] == pytest.approx(6.7 / 8.0 - 1)  # the mean hides that b got worse
    assert describe_change(s, "learned ") == "learned improves 2 of 4 clips (median −12 %); worst clip b +10 %"
    empty = change_summary([0.0], [1.0], ["z"])
    assert empty["clips"] == 0 and math.isnan(empty["median"]) and empty["worst_clip"] is None
    assert describe_change(empty) == "no clip to compare"
    with pytest.raises(ValueError, match="names"):
        change_summary([1.0], [1.0], ["a", "b"])
