"""The generate page and figure on their own: hostile text stays text, a prompt never becomes mathtext."""

import io

import numpy as np

from vaelib.audio import save_audio
from vaelib.generate.page import write_page
from vaelib.plots import generation_figure
from vaelib.report.html import find_active_content

EVIL = '<script>alert(1)</script><a href="javascript:x">$\\frac{1}{$</a>'


def _figure(title=EVIL):
    rng = np.random.default_rng(0)
    mel = rng.normal(-5, 1, (32, 64))
    return generation_figure(mel, mel + 0.5, rng.normal(0, 0.1, 5120), rng.normal(0, 0.1, 5120), title=title)


def test_generation_figure_shows_a_dollar_prompt_literally():
    fig = _figure()
    fig.savefig(io.BytesIO(), format="png")  # an unescaped "$\frac{1}{$" would raise in mathtext here
    assert fig._suptitle.get_text() == EVIL.replace("$", "\\$")
    assert len(fig.axes) == 8  # 6 panels + 2 colour bars


def test_write_page_escapes_every_input_derived_string(tmp_path):
    (tmp_path / "001").mkdir()
    for name in ("plain.wav", "enhanced.wav"):
        save_audio(tmp_path / "001" / name, np.zeros(1600, np.float32))
    record = {"started": "2026-12-01 22:00", "vaelib": "0.1.0", "pipeline": "AudioLDM2Pipeline", "model": EVIL,
              "device": "cpu", "dtype": "float32", "seed": 0, "steps": 2, "guidance": 3.5, "duration_s": 0.1,
              "negative_prompt": EVIL, "enhancers": {EVIL: {"method": "mel_shelf", "shelf_db": 3.0}}}
    items = [{"folder": "001", "prompt": EVIL, "seconds": {"diffusion": 1.0, "decode_plain": 0.1,
                                                           "decode_enhanced": 0.2},
              "figure": _figure(), "peak_plain": 0.0, "peak_enhanced": 0.0}]
    page = write_page(tmp_path / "index.html", record, items).read_text(encoding="utf-8")
    assert find_active_content(page) == []
    assert "<script>" not in page and "javascript:x\"" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4  # model, enhancer label, negative prompt, prompt
    assert 'http-equiv="Content-Security-Policy"' in page and page.count("data:audio/wav;base64,") == 2
