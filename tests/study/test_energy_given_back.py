"""vaelib.study.energy_given_back on a hand-computed case, and its figure."""

from __future__ import annotations

import math

import pytest


def _result(vae, learned):
    rows = []
    for i, (a, b) in enumerate(zip(vae, learned, strict=True)):
        rows.append({"clip": f"c{i}", "label": "vae", "ber_high": a, "lsd_hf": 1.0})
        rows.append({"clip": f"c{i}", "label": "learned", "ber_high": b, "lsd_hf": 1.0})
    return {"rows": rows, "groups": {"VAE only": "vae", "learned: learned": "learned", "seed": "seed_x"}}


def test_energy_given_back_hand_computed():
    from vaelib.study import energy_given_back

    per_clip, summary = energy_given_back(_result([0.5, 1.0, 2.0, 0.6], [0.8, 1.0, 1.5, 2.0]))
    assert list(per_clip.columns) == ["VAE only", "learned: learned"]  # non-learned groups left out
    vae, lr = summary.loc["VAE only"], summary.loc["learned: learned"]
    assert vae["mean |ln ρ|"] == pytest.approx((math.log(2) + 0 + math.log(2) + -math.log(0.6)) / 4)
    assert lr["mean |ln ρ|"] == pytest.approx((-math.log(0.8) + 0 + math.log(1.5) + math.log(2.0)) / 4)
    assert vae["geometric mean ρ"] == pytest.approx((0.5 * 1.0 * 2.0 * 0.6) ** 0.25)
    # clips the VAE lost energy on (ρ < 0.9): c0 and c3; c0 moved up to 0.8 (towards 1), c3 overshot to 2.0
    # (beyond 1 / 0.6): given back on one of two
    assert vae["clips with ρ_vae < 0.9"] == lr["clips with ρ_vae < 0.9"] == 2
    assert lr["mean ln ρ there"] == pytest.approx((math.log(0.8) + math.log(2.0)) / 2)
    assert vae["mean ln ρ there"] == pytest.approx((math.log(0.5) + math.log(0.6)) / 2)
    assert lr["of them moved towards 1"] == 1 and vae["of them moved towards 1"] == 0


def test_energy_ratio_figure_has_a_series_per_method():
    from vaelib import plots
    from vaelib.study import energy_given_back

    per_clip, _ = energy_given_back(_result([0.5, 1.0], [0.8, 1.0]))
    fig = plots.energy_ratio_figure(per_clip)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2 + 2  # two series, the 1 line and the lost line
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c0", "c1"]  # sorted by the VAE's ratio
