"""vaelib.study.perceptual (notebooks 01 and 04), the index's ViSQOL finding and the glossary entries."""

import math

import numpy as np
import pytest

import vaelib
from vaelib.metrics import PERCEPTUAL_KEYS
from vaelib.metrics.perceptual import SPEECH_ONLY
from vaelib.study import findings, glossary
from vaelib.study.perceptual import perceptual_caption, perceptual_rows, perceptual_summary, perceptual_table

SR = 16000


def _demo(name, seconds=2.5):
    path = next(f for f in vaelib.find_audio("demo", demo_split="eval") if name in str(f))
    return vaelib.load_audio(path)[: int(seconds * SR)].astype(np.float64)


def _noisy(x, snr_db, seed=0):
    n = np.random.default_rng(seed).standard_normal(x.size)
    return x + n * np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))


@pytest.fixture(scope="module")
def rows():
    speech, music = _demo("speech_en_us_f4"), _demo("music_harpsichord")
    pairs = [("speech_a", "speech", speech, {"vae": _noisy(speech, 10), "learned": _noisy(speech, 25)}),
             ("music_b", "music", music, {"vae": _noisy(music, 25), "learned": _noisy(music, 10)})]
    return perceptual_rows(pairs, sr=SR)


def test_speech_measures_only_on_speech_clips(rows):
    assert list(rows.columns) == ["clip", "category", "stage", *PERCEPTUAL_KEYS] and len(rows) == 4
    speech, music = rows[rows.category == "speech"], rows[rows.category == "music"]
    computed = [k for k in PERCEPTUAL_KEYS if not k.startswith("dnsmos")]  # DNSMOS: vaelib eval only (time)
    assert speech[computed].map(math.isfinite).all().all()
    assert rows[["dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"]].isna().all().all()
    assert music["visqol"].map(math.isfinite).all()
    assert music[list(SPEECH_ONLY)].isna().all().all()
    table = perceptual_table(rows)
    assert any("(speech only)" in c for c in table.columns) and not any("ViSQOL (audio" in c and "speech only" in c
                                                                         for c in table.columns)
    cap = perceptual_caption(rows)
    assert "speech clips only (1 speech clip here)" in cap and "DNSMOS" in cap and "visqol-python 3.8.0" in cap


def test_summary_changes_against_the_plain_vae(rows):
    s = perceptual_summary(rows, {"vae": "vae", "learned": "learned"}, base="vae")
    w = rows.pivot_table(index="clip", columns="stage", values="visqol")
    d = w["learned"] - w["vae"]
    assert s["learned_visqol_change"] == pytest.approx(d.mean())
    assert s["learned_visqol_change_median"] == pytest.approx(d.median())
    assert s["learned_visqol_n_improved"] == 1.0  # speech got less noise, music more
    assert s["vae_visqol"] == pytest.approx(w["vae"].mean())
    assert s["n_perceptual_clips"] == 2.0 and s["n_perceptual_speech"] == 1.0
    # speech measures: over the speech clip only
    ws = rows.pivot_table(index="clip", columns="stage", values="pesq_wb")
    assert s["learned_pesq_wb"] == pytest.approx(ws.loc["speech_a", "learned"])
    assert s["learned_pesq_wb_change"] > 0 and "learned_pesq_wb_n_improved" not in s
    assert perceptual_summary(None, {"vae": "vae"}) == {}


def test_index_finding_on_visqol(rows):
    s = perceptual_summary(rows, {"vae": "vae", "learned": "learned"}, base="vae")
    line = findings.perceptual_sentence("learned restorer", s, "learned")
    assert line.startswith(f"The learned restorer changes ViSQOL (audio mode, vocoded) by "
                           f"{s['learned_visqol_change']:+.3f} on the run's 2 clips")
    assert "higher on 1 of 2 clips" in line
    # on the index, ViSQOL is part of the restorer's one finding (beside its mel numbers), in its cited table
    s.update({"n_clips": 2, "vae_mel_lsd_hf": 0.3, "learned_mel_lsd_hf": 0.25, "learned_mel_lsd_hf_rel_change": -1 / 6,
              "learned_clips_improved": 2, "learned_worst_change": -0.1})
    (got,) = [x for x in findings.run_findings({"04_learned_enhance": {"summary": s}}) if "ViSQOL" in x]
    assert f"ViSQOL {s['learned_visqol_change']:+.3f}" in got.text
    assert any("ViSQOL" in c for c in got.table.columns)
    assert not [x for x in findings.run_findings({"04_learned_enhance": {"summary": {"n_clips": 2}}})
                if "ViSQOL" in x]


def test_glossary_explains_each_measure():
    generic = glossary.definition("visqol").split(".")[0]
    seen = set()
    for k in (*PERCEPTUAL_KEYS, "clap_cosine"):
        text = glossary.definition(k)
        assert text and k in glossary.METRICS, k
        seen.add(text)
    assert len(seen) == len(PERCEPTUAL_KEYS) + 1  # one definition each
    assert "ViSQOL" in generic and "48 kHz" in generic
    assert glossary.describe_key("learned_visqol_change") == ("learned restorer", "visqol", "change")


def test_04_reuses_01s_plain_vae_rows_only_for_the_same_inputs(rows, tmp_path):
    import json

    from vaelib.study import reuse_baseline_rows

    sig = {"clips": [[c, None, 100] for c in sorted(set(rows["clip"]))], "seed": 0}
    folder = tmp_path / "01_baseline"
    folder.mkdir()
    rows.to_csv(folder / "perceptual.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({"inputs": sig}))
    got = reuse_baseline_rows(tmp_path, sig)
    assert got is not None and set(got["stage"]) == {"vae"} and sorted(got["clip"]) == sorted(set(rows["clip"]))
    assert reuse_baseline_rows(tmp_path, {**sig, "seed": 1}) is None  # other inputs: score them again
    assert reuse_baseline_rows(tmp_path, {**sig, "clips": sig["clips"] + [["new", None, 1]]}) is None
    assert reuse_baseline_rows(tmp_path / "nowhere", sig) is None
