"""The index's findings (issue 23 item 1): the headline first, and every number of every finding equal to the
table it cites, formatted the same way."""

import datetime as dt
import json
import math

import pytest

from vaelib.assets import bundled_model_dir
from vaelib.models import ModelChoice
from vaelib.report.pages import findings_mismatches, numbers_in, write_index
from vaelib.report.plan import ReportPlan
from vaelib.study import findings, glossary

BASELINE = {"n_clips": 3, "vae_mel_err_db_lf_dec": 3.0264, "vae_mel_err_db_high_dec": 2.0071,
            "naive_mel_err_db_lf_dec": 4.5, "naive_mel_err_db_high_dec": 1.25,
            "projection_mel_err_db_lf": 3.0, "projection_mel_err_db_high": 1.669,
            "vae_mel_err_db_lf": 4.2375, "vae_mel_err_db_high": 2.7851, "vae_mel_lsd_hf": 0.247, "vae_mel_l1": 0.32,
            "vae_lsd_hf": 1.864, "projection_lsd_hf": 1.911}
ANALYSIS = {"summary": {"n_clips": 3, "n_settings": 14, "vae_mel_lsd_hf": 0.24699, "vae_mel_ber_high": 0.926,
                        "seed_frequency_mel_lsd_hf": 2.23, "seed_frequency_mel_ber_high": 36400.0,
                        "seed_hybrid_mel_lsd_hf": 2.262, "seed_hybrid_mel_ber_high": 47900.0},
            "sweep_verdict": {"metric": "mel_lsd_hf", "base": 0.24699, "n_settings": 14, "n_better": 0,
                              "best_label": "noise level=0.05", "best": 0.2472, "best_mel_ber_high": 0.929,
                              "n_candidates": 15, "n_front": 4}}
LEARNED = {"n_clips": 3, "vae_mel_lsd_hf": 0.247, "vae_mel_l1": 0.32, "learned_mel_lsd_hf": 0.187,
           "learned_mel_lsd_hf_rel_change": -0.2418, "learned_clips_improved": 2.0, "learned_worst_change": 0.0377,
           "vae_visqol": 4.27, "learned_visqol": 4.318, "learned_visqol_change": 0.045}
BUNDLED = ModelChoice(vae=str(bundled_model_dir()), vocoder="griffinlim", bundled=True, reason="bundled default")


def _index(tmp_path, docs, choice=BUNDLED):
    run = tmp_path / "run"
    for stem, doc in docs.items():
        (run / stem).mkdir(parents=True)
        (run / stem / "metrics.json").write_text(json.dumps(doc))
    nbs = [tmp_path / f"{stem}.ipynb" for stem in docs]
    plan = ReportPlan(run_dir=run, notebooks=nbs, parameters={}, user_params={}, model_line=choice.describe(),
                      model_choice=choice)
    return write_index(run / "index.html", plan, {s: "ok" for s in docs}, dt.datetime(2026, 12, 2)).read_text()


def test_numbers_in_skips_band_edges_and_names():
    assert numbers_in("AudioLDM2 4×4 at 4 kHz: 2.007 dB, -24.2 %, 3.64e+04×, 7 of 8, gain=1.5") == \
        ["2.007", "24.2", "3.64e+04", "7", "8", "1.5"]


def test_headline_is_first_names_the_stand_ins_and_the_vae_only_mel_loss(tmp_path):
    page = _index(tmp_path, {"01_baseline": {"summary": BASELINE}})
    first = page.index('class="headline"')
    assert first < page.index("<h2>Notebooks</h2>") and page.count('class="headline"') == 1
    headline = page[first: page.index("</p>", first)]
    assert "not AudioLDM2" in headline and "Griffin-Lim" in headline and "no vocoder" in headline
    # the VAE-only numbers, below and above 4 kHz, exactly as the table shows them
    assert glossary.format_value(BASELINE["vae_mel_err_db_high_dec"], "mel_err_db_high") == "2.007 dB"
    assert "2.007 dB of log-mel at and above 4 kHz and 3.026 dB below, less above than below" in headline
    # relative to the band-blind codec (1.25 dB above, 4.5 dB below): 161 % vs. 67 % of its error
    assert "keeps the high band worse than the low band (161 % of that codec&#x27;s error above 4 kHz, 67 % below)" \
        in headline
    assert 'id="t-headline"' in page and "<td class=num>2.007 dB</td>" in page
    assert findings_mismatches(page) == []


def test_every_number_of_every_finding_is_in_the_table_it_cites(tmp_path):
    page = _index(tmp_path, {"01_baseline": {"summary": BASELINE}, "03_analysis": ANALYSIS,
                             "04_learned_enhance": {"summary": LEARNED}})
    assert page.count("data-cites=") == 5  # headline, vocoder's share, sweep, seed settings, restorers
    assert findings_mismatches(page) == []
    # the vocoder's share: what the VAE adds, in dB, from the same numbers
    assert "so the VAE adds +1.116 dB and +1.237 dB" in page
    # one count of the settings: 14 swept settings, the least harmful is a swept one (never the plain VAE)
    assert "none of the 14 swept settings lowers the high-band mel LSD" in page
    assert "the least harmful, noise level=0.05, reaches 0.247 (+0.1 %)" in page
    assert "learned restorer lowers it to 0.187 (-24.2 %; 2 of 3 clips better, worst clip +3.8 %; ViSQOL +0.045)" \
        in page


def test_a_wrong_number_is_caught(tmp_path):
    page = _index(tmp_path, {"01_baseline": {"summary": BASELINE}})
    bad = page.replace("and 3.026 dB below", "and 3.062 dB below", 1)
    assert bad != page
    (problem,) = findings_mismatches(bad)
    assert problem.startswith("t-headline: 3.062 in 'With vaelib's bundled tiny VAE")
    assert findings_mismatches(page.replace('id="t-headline"', 'id="t-other"'))[0].startswith("t-headline: no such")


def test_headline_direction_and_model_follow_the_numbers():
    s = {**BASELINE, "vae_mel_err_db_high_dec": 5.0}
    real = ModelChoice(vae="cvssp/audioldm2-music", vocoder="cvssp/audioldm2-music", bundled=False, reason="r")
    head = findings.headline_findings(s, real)[0]
    assert head.headline and "5.000 dB of log-mel at and above 4 kHz" in head and "more above than below" in head
    assert "AudioLDM2 VAE of cvssp/audioldm2-music" in head and "not AudioLDM2" not in head
    assert findings.headline_findings({"n_clips": 1}) == []


def test_mixed_quantities_are_not_on_one_axis():
    fig = findings.headline_figure(BASELINE)
    (ax,) = fig.axes
    assert "dB" in ax.get_xlabel() and len(ax.patches) == 8  # 4 paths x 2 bands, one quantity
    fig2 = findings.enhancer_figure({"03_analysis": ANALYSIS, "04_learned_enhance": {"summary": LEARNED}})
    assert "mel LSD" in fig2.axes[0].get_xlabel()
    values = sorted(p.get_width() for p in fig2.axes[0].patches)
    assert values == pytest.approx(sorted([0.24699, 0.2472, 2.23, 2.262, 0.187]))
    assert not any(math.isclose(v, 1.864) for v in values)  # no waveform LSD-HF among mel LSD-HF bars
