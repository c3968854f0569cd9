import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import vaelib
from vaelib import plots

SR = 16000


@pytest.fixture(scope="module")
def signals():
    rng = np.random.default_rng(0)
    t = np.arange(SR * 2) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    y = (0.8 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return x, y, vaelib.wav_to_mel(x)[0, 0].numpy(), vaelib.wav_to_mel(y)[0, 0].numpy()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, dpi=40, format="png")
    return buf.getvalue()


def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums()


def test_comparison_figure_is_the_seeds_2x3(signals):
    x, y, mx, my = signals
    before = _no_pyplot_figures()
    fig = plots.comparison_figure([("input", x), ("VAE only", y), ("enhanced", y * 0.5)],
                                  [("a", mx), ("b", my), ("c", my)], title="clip")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 7  # 2×3 panels + the colour bar
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles[0].startswith("waveform") and titles[1].startswith("spectrum") and titles[2] == "band energy"
    assert titles[3:] == ["a", "b", "c"]
    assert len(fig.axes[0].lines) == 3 and fig.axes[1].get_xscale() == "log"
    assert len(fig.axes[2].patches) == 9  # 3 bands × 3 signals
    assert _png(fig)[:4] == b"\x89PNG"
    assert _no_pyplot_figures() == before  # figures are not registered with pyplot
    with pytest.raises(ValueError, match="exactly 3 mels"):
        plots.comparison_figure([("x", x)], [("a", mx)])


def test_mel_difference_and_band_error_figures(signals):
    _, _, mx, my = signals
    fig = plots.mel_difference_figure(mx, my, title="t")
    img = fig.axes[0].images[0]
    d = img.get_array()
    np.testing.assert_allclose(np.asarray(d), ((my - mx) * 20 / math.log(10)).T, rtol=1e-5, atol=1e-5)
    lo, hi = img.get_clim()
    assert lo == -hi > -np.inf
    errors = {"a": pd.DataFrame({"low": [1, 2], "mid": [2, 3], "high": [5, 7]}),
              "b": {"low": [0.5], "mid": [0.5], "high": [1.0]}}
    fig = plots.band_error_figure(errors)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [1.5, 2.5, 6.0, 0.5, 0.5, 1.0]
    _png(fig)


def test_render_sweep_pareto_heatmap_figures(signals):
    x, y, mx, my = signals
    fig = plots.render_figure(mx, my, my + 0.1, waves=[("input", x), ("VAE only", y)])
    assert len(fig.axes) == 5 and len(fig.axes[2].lines) >= 2  # 3 panels + 2 colour bars
    fig = plots.render_figure(mx, my, my + 0.1)  # no waves: mean level per mel bin
    assert len(fig.axes[2].lines) >= 3
    agg = pd.DataFrame({"label": ["VAE only", "frequency gain=1.5", "frequency gain=2", "noise level=0.1"],
                        "method": ["none", "frequency", "frequency", "noise"],
                        "param": [None, "gain", "gain", "level"], "value": [math.nan, 1.5, 2.0, 0.1],
                        "mel_lsd_hf": [2.0, 1.9, 2.1, 2.0], "mel_ber_high": [0.3, 0.6, 1.1, 0.31]})
    fig = plots.sweep_figure(agg)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["frequency", "noise"]
    fig = plots.pareto_figure(agg, front=np.array([False, True, True, False]))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and any(line.get_label() == "Pareto front" for line in ax.lines)
    far = agg.assign(mel_ber_high=[100.0, 120.0, 130.0, 110.0])
    fig = plots.pareto_figure(far)
    assert any("off the axis" in t.get_text() for t in fig.axes[0].texts)
    table = pd.DataFrame({"p1 change": [-0.1, 0.2], "p2 change": [0.0, math.nan]}, index=["c1", "c2"])
    fig = plots.per_clip_heatmap(table)
    assert [t.get_text() for t in fig.axes[0].texts] == ["-0.10", "+0.00", "+0.20"]
    _png(fig)


def test_package_never_selects_a_backend():
    pkg = Path(vaelib.__file__).parent
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        assert "matplotlib.use(" not in text, path.name
        if path.name in ("plots.py", "widgets.py") or path.parent.name == "study":
            assert "import matplotlib.pyplot" not in text and "from matplotlib import pyplot" not in text


def test_mel_panels_share_the_inputs_scale_and_state_what_is_clipped(signals):
    x, y, mx, my = signals
    exploded = mx + 14.0  # an enhancement 14 nat above the input everywhere
    fig = plots.comparison_figure([("input", x), ("VAE only", y), ("enhanced", 50 * y)],
                                  [("input", mx), ("VAE only", my), ("enhanced", exploded)], sr=SR)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    lims = {im.get_clim() for im in images}
    assert lims == {(float(mx.max()) - plots.MEL_SPAN, float(mx.max()))}  # anchored on the input, not the +14
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert "above the scale" not in titles[0] and "100 % of bins above the scale (max +14.0 nat over it)" in titles[2]
    # the input's panel is not black: its own range fills the colour map
    norm = images[0].norm
    assert np.mean(norm(mx) > 0.5) > 0.05
    wave_ax = fig.axes[0]
    assert wave_ax.get_ylim()[1] == pytest.approx(1.5 * np.abs(x[:SR]).max()) and "clipped: enhanced" in \
        wave_ax.get_title()
    assert plots.clip_note(mx, *plots.mel_scale(mx)) == ""
