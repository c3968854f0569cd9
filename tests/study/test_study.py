import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from vaelib import enhance, metrics, study
from vaelib.models import load_vae, load_vocoder
from vaelib.pipeline import reconstruct

SR = 16000


@pytest.fixture(scope="module")
def models(tiny_snapshot):
    return load_vae(str(tiny_snapshot), device="cpu"), load_vocoder("griffinlim", device="cpu", n_iter=4)


@pytest.fixture
def audio_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "audio"
    (d / "sub").mkdir(parents=True)
    t = np.arange(int(0.6 * SR)) / SR
    sf.write(d / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    sf.write(d / "sub" / "a.wav", (0.1 * rng.standard_normal(t.size)).astype(np.float32), SR)
    (d / "broken.wav").write_bytes(b"RIFF....not a wave file")
    return d


# ---------------------------------------------------------------------------------------------- parameters
def test_claims_hold_the_seed_reports_numbers():
    s1, s2 = study.CLAIMS["step1"], study.CLAIMS["step2"]
    assert (s1["snr_db"], s1["correlation"], s1["ret_high_pct"], s1["ret_mid_pct"], s1["ret_low_pct"]) == (
        -0.81, 0.0667, 5.7, 26.4, 61.7)
    assert s2["seed_frequency"] == {"d_snr_db": -3.01, "d_high_pp": 94.9, "d_corr": 0.0200}
    assert s2["seed_noise"] == {"d_snr_db": -0.02, "d_high_pp": 0.3, "d_corr": -0.0045}
    assert s2["seed_contrast"] == {"d_snr_db": -2.97, "d_high_pp": 7.0, "d_corr": 0.0095}
    assert s2["seed_hybrid"] == {"d_snr_db": -3.64, "d_high_pp": 93.0, "d_corr": 0.0194}
    assert set(s2) == set(enhance.PRESETS)


def test_prepare_out_dir(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = study.prepare_out_dir(str(tmp_path), "enhance")
    assert folder == tmp_path / "02_latent_enhance" and folder.is_dir()
    study.prepare_out_dir(str(tmp_path), "enhance")  # empty: fine
    (folder / "x.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds results"):
        study.prepare_out_dir(str(tmp_path), "enhance")
    temp = study.prepare_out_dir("", "baseline")
    assert temp.name == "01_baseline" and temp.is_dir() and temp.parent.name.startswith("vaelib_run_")
    assert temp.is_relative_to(tmp_path)


# ---------------------------------------------------------------------------------------------- loading
def test_load_clips_skips_corrupt_files_and_keeps_names_unique(audio_dir):
    clips, skipped = study.load_clips(str(audio_dir), duration_s=0.5)
    assert [c.name for c in clips] == ["a", "a_2"]
    assert all(len(c.wave) == 8000 and c.wave.dtype == np.float32 for c in clips)
    assert len(skipped) == 1 and skipped[0][0].endswith("broken.wav") and "broken.wav" in skipped[0][1]
    one, _ = study.load_clips(str(audio_dir), max_clips=1)
    assert len(one) == 1


def test_load_clips_list_file_and_all_broken(audio_dir, tmp_path):
    lst = tmp_path / "inputs.lst"
    lst.write_text(f"# inputs\n{audio_dir / 'a.wav'}\naudio/sub/a.wav\n")
    clips, skipped = study.load_clips(str(lst))
    assert len(clips) == 2 and not skipped
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"junk")
    (bad / "y.flac").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 2 audio file") as err:
        study.load_clips(str(bad))
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- scoring
def test_quick_score_matches_metrics_score(tone_wave):
    est = np.roll(tone_wave, 7) * 0.8 + 0.03 * np.random.default_rng(2).standard_normal(tone_wave.size)
    full = metrics.score(tone_wave, est)
    quick = study.quick_score(tone_wave, est)
    assert np.isfinite(quick["added_hf_flatness"])
    for k, v in quick.items():
        assert v == pytest.approx(full[k], rel=1e-12, abs=1e-12), k
    assert "lsd" not in study.quick_score(tone_wave, est, lsd=False)


def test_run_round_trips_and_baseline_summary_match_direct_calls(models, tone_wave):
    vae, voc = models
    clips = [study.Clip("tone", None, tone_wave), study.Clip("quiet", None, tone_wave[::-1] * 0.1)]
    df, recs = study.run_round_trips(clips, vae, voc, show_progress=False)
    assert list(df["stage"]) == ["mel_projection", "vae"] * 2
    rec = reconstruct(tone_wave, vae, voc)
    direct = metrics.score(rec.wave, rec["vae"].wave)
    row = df[(df["clip"] == "tone") & (df.stage == "vae")].iloc[0]
    for k in ("lsd_hf", "snr_db", "ber_high", "mrstft"):
        assert row[k] == pytest.approx(direct[k], abs=1e-6)
    assert row["dec_mel_l1"] == pytest.approx(metrics.mel_l1(rec.input_mel, rec["vae"].mel), abs=1e-6)
    proj = df[(df["clip"] == "tone") & (df.stage == "mel_projection")].iloc[0]
    assert proj["dec_mel_l1"] == 0.0
    s = study.baseline_summary(df)
    assert s["n_clips"] == 2
    assert s["vae_lsd_hf"] == pytest.approx(df[df.stage == "vae"]["lsd_hf"].mean())
    assert s["vae_mel_l1"] == pytest.approx(df[df.stage == "vae"]["dec_mel_l1"].mean())
    assert s["vae_share_lsd_hf"] == pytest.approx((s["vae_lsd_hf"] - s["projection_lsd_hf"]) / s["vae_lsd_hf"])
    assert all(isinstance(v, float) for v in s.values())
    text = study.why_disagree(s, "griffinlim")
    assert f"{s['projection_snr_db']:.2f} dB" in text and f"{s['vae_lsd_hf']:.2f}" in text and "Griffin-Lim" in text
    table = study.attribution_table(df)
    assert list(table.index) == ["tone", "quiet", "mean"]
    assert table.loc["mean", "VAE LSD-HF"] == pytest.approx(s["vae_lsd_hf"])
    seed_table = study.claims_comparison_table(df)
    assert seed_table.loc[("mean", "vae"), "ret >4k % (seed)"] == pytest.approx(s["vae_claims_ret_high"] * 100)
    # the headline's numbers: the decoded log-mel's error below 4 kHz is the direct mean over the bins below 4 kHz
    direct = metrics.mel_band_error_db_logmel(rec.input_mel, rec["vae"].mel, bands={"lf": (0.0, 4000.0),
                                                                                   "hf": (4000.0, 8000.0)})
    assert row["dec_mel_err_db_lf"] == pytest.approx(direct["lf"], rel=1e-9)
    assert row["dec_mel_err_db_high"] == pytest.approx(direct["hf"], rel=1e-9)
    assert s["vae_mel_err_db_lf_dec"] == pytest.approx(df[df.stage == "vae"]["dec_mel_err_db_lf"].mean())
    # vocoded: from the re-analysed waveform, the same identity
    vdirect = metrics.mel_band_error_db(rec.wave, rec["vae"].wave, bands={"lf": (0.0, 4000.0)})
    assert row["mel_err_db_lf"] == pytest.approx(vdirect["lf"], rel=1e-6)
    # the band-blind reference codec: 4x4 average pool + bilinear upsample of the input mel
    import torch

    from vaelib.tiny_vae import naive_codec
    m = torch.as_tensor(np.asarray(rec.input_mel, dtype=np.float32))
    m = m.reshape(1, 1, *m.shape[-2:])
    ref = metrics.mel_band_error_db_logmel(m, naive_codec(m),
                                           bands={"lf": (0.0, 4000.0), "hf": (4000.0, 8000.0)})
    assert row["naive_mel_err_db_lf"] == pytest.approx(ref["lf"], rel=1e-6)
    assert s["naive_mel_err_db_high_dec"] == pytest.approx(df[df.stage == "vae"]["naive_mel_err_db_high"].mean())
    assert "decoded log-mel (no vocoder)" in text


def test_claims_changes_and_enhance_summary():
    rows = []
    for clip, off in (("a", 0.0), ("b", 1.0)):
        rows.append({"clip": clip, "stage": "vae", "snr_db": -1.0 + off, "claims_ret_high": 0.05, "correlation": 0.1,
                     "lsd_hf": 2.0, "dec_mel_lsd_hf": 1.0, "ber_high": 0.1, "added_hf_flatness": 0.2,
                     "hf_flatness": 0.3, "hf_flatness_ref": 0.4})
        rows.append({"clip": clip, "stage": "seed_frequency", "snr_db": -4.0 + off, "claims_ret_high": 1.0,
                     "correlation": 0.12, "lsd_hf": 2.5, "dec_mel_lsd_hf": 1.2, "ber_high": 0.9,
                     "added_hf_flatness": 0.8, "hf_flatness": 0.7, "hf_flatness_ref": 0.4})
    df = pd.DataFrame(rows)
    ch = study.claims_changes(df)
    assert list(ch["stage"]) == ["seed_frequency"] * 2
    np.testing.assert_allclose(ch["d_snr_db"], [-3.0, -3.0])
    np.testing.assert_allclose(ch["d_claims_high_pp"], [95.0, 95.0])
    np.testing.assert_allclose(ch["d_corr"], [0.02, 0.02])
    s = study.enhance_summary(df)
    assert s["seed_frequency_d_claims_high_pp"] == pytest.approx(95.0)
    assert s["seed_frequency_mel_lsd_hf"] == pytest.approx(1.2) and s["vae_snr_db"] == pytest.approx(-0.5)
    table = study.enhance_comparison_table(df)
    assert table.loc["seed_frequency", "Δhigh pp (seed)"] == 94.9
    assert table.loc["seed_frequency", "Δhigh pp"] == pytest.approx(95.0)
    notes = study.claims_rule_notes(df)
    assert len(notes) == 1
    assert notes[0].startswith("By the seed's rule, frequency changes high-band retention by +95.0 pp (the seed "
                               "reported +94.9) and SNR by -3.00 dB")
    assert "+80.0 % of the input's" in notes[0] and "flatness 0.80 vs. 0.40" in notes[0]
    assert "more noise-like" in notes[0]
    calm = df.assign(added_hf_flatness=0.1)
    assert "no flatter than" in study.claims_rule_notes(calm)[0]
    with pytest.raises(ValueError, match="no rows of baseline"):
        study.claims_changes(df, baseline="nothing")


# ---------------------------------------------------------------------------------------------- sweeps
def test_sweep_decodes_in_batches_and_scores_in_mel_domain(models, tone_wave):
    vae, _ = models
    x, mel, z = study.encode_clip(tone_wave, vae)
    grid = {"frequency": [1.0, 1.5, 2.0], "noise": [0.1], "contrast": [1.3], "hybrid": [1.4]}
    mels = {}
    t1 = study.sweep_grid(z, vae, grid, batch_size=1, ref_mel=mel, seed=4, mels_out=mels)
    t3 = study.sweep_grid(z, vae, grid, batch_size=3, ref_mel=mel, seed=4)
    assert list(t1["label"]) == ["VAE only", "frequency gain=1", "frequency gain=1.5", "frequency gain=2",
                                 "noise level=0.1", "contrast factor=1.3", "hybrid gain=1.4"]
    np.testing.assert_allclose(t1["mel_lsd_hf"], t3["mel_lsd_hf"], rtol=1e-5, atol=1e-6)
    base = metrics.score_mel(mel, vae.decode(z))
    assert t1.iloc[0]["mel_l1"] == pytest.approx(base["mel_l1"], rel=1e-5)
    assert t1.iloc[1]["mel_l1"] == pytest.approx(base["mel_l1"], rel=1e-5)  # gain 1 is the identity
    boosted = vae.decode(enhance.apply("frequency", z, gain=2.0))
    assert t1.iloc[3]["mel_lsd_hf"] == pytest.approx(metrics.mel_lsd(mel, boosted, band=(4000, 8001)), rel=1e-5)
    hybrid = vae.decode(enhance.apply("hybrid", z, gain=1.4, level=0.04, factor=1.2, seed=4))
    assert t1.iloc[6]["mel_l1"] == pytest.approx(metrics.mel_l1(mel, hybrid), rel=1e-5)
    assert json.loads(t1.iloc[6]["params"]) == {"gain": 1.4, "level": 0.04, "factor": 1.2}
    np.testing.assert_allclose(mels["frequency gain=2"], boosted[0, 0].numpy(), atol=1e-5)
    one = study.sweep(z, vae, "contrast", [0.8, 1.3], batch_size=2, ref_mel=mel)
    assert list(one["value"]) == [0.8, 1.3] and set(one["method"]) == {"contrast"}
    with pytest.raises(ValueError, match="out of range"):
        study.sweep(z, vae, "noise", [2.0], ref_mel=mel)


def _toy_sweep():
    rows = []
    spec = [("none", None, math.nan, 2.0, 0.5, 1.0), ("frequency", "gain", 1.5, 1.8, 0.8, 0.9),
            ("frequency", "gain", 3.0, 2.2, 1.1, 0.8), ("contrast", "factor", 1.3, 1.7, 0.4, 1.1)]
    for clip, off in (("c1", 0.0), ("c2", 0.2)):
        for method, param, value, lsd_hf, ber, l1 in spec:
            rows.append({"clip": clip, "method": method, "param": param, "value": value,
                         "label": study.setting_label(method, param, value), "params": "{}",
                         "mel_lsd_hf": lsd_hf + off, "mel_lsd": lsd_hf, "mel_l1": l1, "mel_err_db_high": lsd_hf * 10,
                         "mel_ber_high": ber})
    return pd.DataFrame(rows)


def test_pareto_best_and_per_clip():
    df = _toy_sweep()
    agg = study.aggregate_sweep(df)
    assert list(agg["label"]) == ["VAE only", "frequency gain=1.5", "frequency gain=3", "contrast factor=1.3"]
    assert agg.loc[1, "mel_lsd_hf"] == pytest.approx(1.9)
    front = study.pareto_front(agg)
    # |ln ber|: 0.69, 0.22, 0.10, 0.92 ; lsd_hf: 2.1, 1.9, 2.3, 1.8
    assert list(front) == [False, True, True, True]
    best = study.best_per_criterion(agg).set_index("criterion")
    assert best.loc["lowest high-band mel LSD", "label"] == "contrast factor=1.3"
    assert best.loc["lowest high-band mel LSD", "change"] == pytest.approx(1.8 - 2.1)
    assert best.loc["high-band energy closest to the input", "label"] == "frequency gain=3"
    assert best.loc["lowest mel L1", "label"] == "frequency gain=3"
    per = study.per_clip_best(df)
    assert per.loc["c1", "best setting"] == "contrast factor=1.3"
    assert per.loc["c1", "seed_frequency change"] == pytest.approx(-0.2)
    assert math.isnan(per.loc["c1", "seed_noise change"])


def test_conclusions_are_computed_from_the_numbers():
    df = _toy_sweep()
    lines = study.conclusions(df)
    text = "\n".join(lines)
    assert "2.100" in text and "contrast factor=1.3" in text and "reaches 1.800 (-14.3% vs. VAE only)" in text
    assert "frequency gain=1.5) improves the high-band mel LSD (2.100 → 1.900)" in text
    assert "3 of 4 candidates (the 3 swept settings and the plain VAE) are Pareto-optimal" in text
    worse = df.copy()
    worse.loc[worse["method"] != "none", "mel_lsd_hf"] += 1.0
    text2 = "\n".join(study.conclusions(worse))
    assert "None of the 3 swept settings lowers the high-band mel LSD" in text2
    # the least harmful is a swept setting, never the plain VAE; the index reads the same verdict
    v = study.sweep_verdict(study.aggregate_sweep(worse))
    assert v["n_settings"] == 3 and v["n_better"] == 0 and v["best_label"] != "VAE only"
    assert f"the least harmful is {v['best_label']}" in text2
    assert "frequency gain=1.5) worsens" in text2
    assert text != text2


def test_claims_vs_measured_and_analysis_summary(models, tone_wave):
    vae, voc = models
    x, mel, z = study.encode_clip(tone_wave, vae)
    grid = {m: [enhance.PRESETS[f"seed_{m}"][1][enhance.get(m).main_param]] for m in study.DEFAULT_SWEEPS}
    mels = {}
    sweep_df = study.sweep_grid(z, vae, grid, 8, ref_mel=mel, mels_out=mels).assign(clip="tone")
    labels = {"VAE only": "vae", **{lab: p for p, lab in study.preset_labels().items()}}
    waves = voc(torch.from_numpy(np.stack([mels[lab] for lab in labels]))[:, None]).numpy()
    claims_df = pd.DataFrame([{"clip": "tone", "stage": st, **study.quick_score(x, w, lsd=False)}
                            for st, w in zip(labels.values(), waves, strict=True)])
    claims = study.claims_vs_measured(claims_df, sweep_df).set_index("claim")
    assert claims.loc["VAE-only SNR (dB)", "seed"] == -0.81
    assert claims.loc["VAE-only SNR (dB)", "measured"] == pytest.approx(metrics.snr_db(x, waves[0]))
    assert claims.loc["frequency: Δ high band (pp)", "seed"] == 94.9
    ret = metrics.band_retention_claims
    assert claims.loc["frequency: Δ high band (pp)", "measured"] == pytest.approx(
        (ret(x, waves[1])["high"] - ret(x, waves[0])["high"]) * 100)
    assert len(claims) == 5 + 3 * 4
    s = study.analysis_summary(sweep_df, claims_df)
    assert s["n_settings"] == 4 and s["vae_snr_db"] == pytest.approx(metrics.snr_db(x, waves[0]))
    assert s["seed_frequency_mel_lsd_hf"] == pytest.approx(
        sweep_df.set_index("label").loc["frequency gain=1.5", "mel_lsd_hf"])
    lines = study.conclusions(sweep_df, claims_df)
    assert any("By the seed's rule, frequency" in line for line in lines)


# ---------------------------------------------------------------------------------------------- files
def test_write_metrics_is_strict_json_and_never_overwrites(tmp_path):
    df = pd.DataFrame({"clip": ["a", "b"], "lsd_hf": [1.0, float("nan")]})
    csv_path, json_path = study.write_metrics(tmp_path, df, {"vae_lsd_hf": 1.0, "n": np.float64(2)},
                                                 notebook="x", extra_list=[float("inf")])
    doc = json.loads(json_path.read_text())
    assert doc["summary"] == {"vae_lsd_hf": 1.0, "n": 2.0}
    assert doc["per_clip"][1] == {"clip": "b", "lsd_hf": None} and doc["extra_list"] == [None]
    assert pd.read_csv(csv_path).shape == (2, 2)
    with pytest.raises(FileExistsError):
        study.write_metrics(tmp_path, df, {})
    with pytest.raises(ValueError, match="must be numbers"):
        study.write_metrics(tmp_path / "new", df, {"method": "frequency"})


def test_save_figure_returns_the_saved_png(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([0, 1])
    img = study.save_figure(fig, tmp_path / "f.png")
    assert img.data == (tmp_path / "f.png").read_bytes() and img.data[:4] == b"\x89PNG"
    with pytest.raises(FileExistsError):
        study.save_figure(fig, tmp_path / "f.png")


def test_aggregate_uses_geometric_mean_for_ratios():
    df = pd.DataFrame({"stage": ["x", "x", "y"], "lsd_hf": [1.0, 3.0, 2.0], "ber_high": [0.01, 100.0, 4.0],
                       "claims_ret_high": [0.5, 2.0, float("nan")], "dec_mel_ber_high": [1.0, 4.0, 9.0]})
    agg = study.aggregate(df)
    assert agg.loc["x", "lsd_hf"] == 2.0  # arithmetic
    assert agg.loc["x", "ber_high"] == pytest.approx(1.0)  # geometric: sqrt(0.01 * 100)
    assert agg.loc["x", "claims_ret_high"] == pytest.approx(1.0) and math.isnan(agg.loc["y", "claims_ret_high"])
    assert agg.loc["x", "dec_mel_ber_high"] == pytest.approx(2.0)
    assert agg.loc["y", "dec_mel_ber_high"] == pytest.approx(9.0)
    assert list(agg.index) == ["x", "y"]


def test_reuse_claims_scores_only_with_identical_inputs(tmp_path, models, tone_wave):
    vae, voc = models
    m = study.Models(choice=None, vae=vae, vocoder=voc)
    clips = [study.Clip("tone", tmp_path / "tone.wav", tone_wave)]
    params = {"duration_s": 10.24, "seed": 0}
    sig = study.inputs_signature(clips, m, params)
    assert sig["vocoder"]["name"] == "griffinlim" and sig["vocoder"]["n_iter"] == 4
    assert study.reuse_claims_scores(tmp_path, sig) is None  # nothing there yet
    cols = dict.fromkeys(study.claims._CLAIMS_SCORE_COLUMNS, 0.5)
    rows = [{"clip": "tone", "stage": st, "method": st, **cols, "lsd_hf": 1.0}
            for st in ("vae", "configured", "seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid")]
    rows[0]["added_hf_flatness"] = None  # NaN in JSON
    study.write_metrics(tmp_path / "02_latent_enhance", pd.DataFrame(rows), {"n_clips": 1.0}, inputs=sig)
    got = study.reuse_claims_scores(tmp_path, sig)
    assert list(got["stage"]) == ["vae", "seed_frequency", "seed_noise", "seed_contrast", "seed_hybrid"]
    assert math.isnan(got.loc[0, "added_hf_flatness"]) and got["snr_db"].dtype == float
    other = study.inputs_signature(clips, m, {**params, "seed": 1})
    assert study.reuse_claims_scores(tmp_path, other) is None
    other = study.inputs_signature(clips, m, {**params, "duration_s": 5.0})
    assert study.reuse_claims_scores(tmp_path, other) is None
