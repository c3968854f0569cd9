"""Run the three report notebooks with papermill on a tiny random model and short synthetic clips.

The notebooks run once per module (into one run folder, like the report runner); the tests then check that no cell
failed, that the seed-named files and ``metrics.json`` exist, and that the recorded numbers equal direct vaelib
calls on the same input with the same non-default parameters.

nbval (execution with the notebooks' defaults: the demo corpus and the bundled model) is separate:
``pytest --nbval-lax notebooks/``.
"""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile as sf
import torch

import vaelib
import vaelib.report.params
from vaelib import metrics, study
from vaelib.models import load_vae, load_vocoder
from vaelib.pipeline import reconstruct

papermill = pytest.importorskip("papermill")

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = ("01_baseline", "02_latent_enhance", "03_analysis", "04_learned_enhance")
SR = 16000
DURATION = 2.0
SPECIAL = {
    "02_latent_enhance": {"method": "contrast", "factor": 1.7, "gain": 2.5, "seed": 3},
    "03_analysis": {"sweep_frequency": [1.5, 2.0], "sweep_noise": [0.1], "sweep_contrast": [1.3],
                    "sweep_hybrid": [1.4], "batch_size": 3, "seed": 1},
}


@pytest.fixture(scope="module")
def nbrun(tmp_path_factory, tiny_snapshot):
    root = tmp_path_factory.mktemp("nbrun")
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SR)) / SR
    tones = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)
    sf.write(audio / "a_tones.wav", tones.astype(np.float32), SR)
    sf.write(audio / "b_noise.wav", (0.2 * rng.standard_normal(2 * SR)).astype(np.float32), SR)
    (audio / "c_corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    out = root / "run"
    out.mkdir()
    common = {"audio": str(audio), "model": str(tiny_snapshot), "vocoder": "griffinlim", "duration_s": DURATION,
              "out_dir": str(out), "interactive": False, "max_players": 1}
    errors = {}
    for nb in NOTEBOOKS:
        try:
            papermill.execute_notebook(str(NB_DIR / f"{nb}.ipynb"), str(out / f"{nb}.ipynb"),
                                       parameters={**common, **SPECIAL.get(nb, {})}, kernel_name="python3",
                                       progress_bar=False, cwd=str(root), execution_timeout=600)
            errors[nb] = None
        except papermill.PapermillExecutionError as exc:
            errors[nb] = exc
    return {"root": root, "audio": audio, "out": out, "snapshot": tiny_snapshot, "errors": errors}


def _metrics(nbrun, nb):
    return json.loads((nbrun["out"] / nb / "metrics.json").read_text())


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_without_error_output(nbrun, nb):
    assert nbrun["errors"][nb] is None, str(nbrun["errors"][nb])[:2000]
    executed = nbformat.read(nbrun["out"] / f"{nb}.ipynb", as_version=4)
    for cell in executed.cells:
        for o in cell.get("outputs", []):
            assert o["output_type"] != "error", cell.source[:80]
            assert not (o["output_type"] == "stream" and o["name"] == "stderr"), o["text"][:500]
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "skipped" in text and "c_corrupt.wav" in text  # the corrupt file is reported, the rest still runs
    pngs = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if nb == "04_learned_enhance":  # a non-bundled VAE: no learned restorer applies, and 04 says so
        shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in executed.cells
                        for o in c.get("outputs", []))
        assert "trained for the bundled tiny VAE, not for this model" in shown
    else:
        assert pngs, "no inline figures"


EXPECTED = {
    "01_baseline": ["original_a_tones.wav", "reconstructed_a_tones.wav", "projection_a_tones.wav",
                    "analysis_a_tones.png", "analysis_b_noise.png", "mel_difference_a_tones.png",
                    "reconstructed_b_noise.wav", "band_errors.png", "metrics.csv", "metrics.json"],
    "02_latent_enhance": ["original_a_tones.wav", "vae_only_a_tones.wav", "latent_enhanced_a_tones.wav",
                          "comparison_analysis_a_tones.png", "comparison_analysis_b_noise.png",
                          "latent_enhanced_b_noise.wav", "comparison_table.csv", "metrics.csv", "metrics.json"],
    "03_analysis": ["sweep.csv", "sweep.png", "pareto.png", "per_clip.png", "claims_vs_measured.csv",
                    "vae_only_a_tones.wav", "best_a_tones.wav", "metrics.csv", "metrics.json"],
    # a non-bundled (tiny random) VAE: the learned rows are skipped, the baselines are still scored
    "04_learned_enhance": ["comparison_table.csv", "per_type_lsd_hf_change.csv", "metrics.csv", "metrics.json"],
}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_writes_seed_named_files_and_metrics_json(nbrun, nb):
    folder = nbrun["out"] / nb
    missing = [f for f in EXPECTED[nb] if not (folder / f).is_file()]
    assert not missing, f"missing in {folder}: {missing}; present: {sorted(p.name for p in folder.iterdir())}"
    doc = _metrics(nbrun, nb)
    assert isinstance(doc["summary"], dict) and doc["summary"]
    assert all(isinstance(v, (int, float)) or v is None for v in doc["summary"].values())
    assert doc["summary"]["n_clips"] == 2 and isinstance(doc["per_clip"], list) and doc["per_clip"]
    for p in nbrun["root"].rglob("*"):  # nothing written outside out_dir (besides the inputs and the model)
        assert p.is_relative_to(nbrun["out"]) or p.is_relative_to(nbrun["audio"]), p


def _clips(nbrun):
    clips, skipped = study.load_clips(str(nbrun["audio"]), DURATION)
    assert len(clips) == 2 and len(skipped) == 1
    return clips


def test_baseline_metrics_agree_with_direct_calls(nbrun):
    doc = _metrics(nbrun, "01_baseline")
    vae = load_vae(str(nbrun["snapshot"]), device="cpu")
    voc = load_vocoder("griffinlim", device="cpu")
    rows = {(r["clip"], r["stage"]): r for r in doc["per_clip"]}
    lsd_hf = []
    for clip in _clips(nbrun):
        rec = reconstruct(vaelib.load_audio(clip.path, duration=DURATION), vae, voc, seed=0)
        r = rows[(clip.name, "vae")]
        assert r["lsd_hf"] == pytest.approx(metrics.lsd_hf(rec.wave, rec["vae"].wave), abs=1e-5)
        assert r["snr_db"] == pytest.approx(metrics.snr_db(rec.wave, rec["vae"].wave), abs=1e-5)
        assert r["dec_mel_l1"] == pytest.approx(metrics.mel_l1(rec.input_mel, rec["vae"].mel), abs=1e-5)
        p = rows[(clip.name, "mel_projection")]
        assert p["lsd_hf"] == pytest.approx(metrics.lsd_hf(rec.wave, rec["mel_projection"].wave), abs=1e-5)
        lsd_hf.append(r["lsd_hf"])
    assert doc["summary"]["vae_lsd_hf"] == pytest.approx(np.mean(lsd_hf), abs=1e-9)


def test_learned_notebook_metrics_agree_with_direct_calls(nbrun):
    """04's plain-VAE and mel-shelf rows equal reconstruct + metrics on the same clips (mel domain, no vocoder)."""
    doc = _metrics(nbrun, "04_learned_enhance")
    vae = load_vae(str(nbrun["snapshot"]), device="cpu")
    cut = (metrics.HIGH_BAND_HZ, SR / 2 + 1)
    from vaelib.study import restorers

    pname, values = restorers.BASELINE_GRIDS["mel_shelf"]
    shelf = next({pname: v} for v in values if restorers._label("mel_shelf", {pname: v}) == doc["chosen"]["mel_shelf"])
    plain, shelved = [], []
    for clip in _clips(nbrun):
        rec = reconstruct(vaelib.load_audio(clip.path, duration=DURATION), vae, None, vocode=False,
                          enhancers={"shelf": ("mel_shelf", shelf)})
        plain.append(metrics.mel_lsd(rec.input_mel, rec["vae"].mel, band=cut))
        shelved.append(metrics.mel_lsd(rec.input_mel, rec["shelf"].mel, band=cut))
    assert doc["summary"]["vae_mel_lsd_hf"] == pytest.approx(np.mean(plain), rel=1e-4)
    assert doc["summary"]["baseline_mel_shelf_mel_lsd_hf"] == pytest.approx(np.mean(shelved), rel=1e-4)
    assert "learned_mel_lsd_hf" not in doc["summary"]  # the bundled restorers do not belong to this VAE


def test_enhance_metrics_with_non_default_parameters_agree_with_direct_calls(nbrun):
    doc = _metrics(nbrun, "02_latent_enhance")
    assert doc["configured"] == {"method": "contrast", "params": {"factor": 1.7}} and doc["seed"] == 3
    assert doc["inputs"]["seed"] == 3 and doc["inputs"]["vocoder"]["seed"] == 3
    vae = load_vae(str(nbrun["snapshot"]), device="cpu")
    voc = load_vocoder("griffinlim", device="cpu")
    voc.seed = 3
    enhancers = {"configured": ("contrast", {"factor": 1.7}),
                 **{p: vaelib.enhance.PRESETS[p] for p in ("seed_frequency", "seed_noise", "seed_contrast",
                                                           "seed_hybrid")}}
    rows = {(r["clip"], r["stage"]): r for r in doc["per_clip"]}
    per_clip = {"lsd_hf": [], "d_snr": []}
    stages = ["vae", *enhancers]  # 02 vocodes these, in this order, in one batch (not the mel projection)
    for clip in _clips(nbrun):
        rec = reconstruct(vaelib.load_audio(clip.path, duration=DURATION), vae, None, enhancers=enhancers, seed=3,
                          vocode=False)
        waves = voc(torch.stack([torch.from_numpy(rec[s].mel)[None] for s in stages])).numpy()
        for s, wave in zip(stages, waves, strict=True):
            rec.stages[s].wave = wave
        w, v = rec["configured"].wave, rec["vae"].wave
        r = rows[(clip.name, "configured")]
        assert json.loads(r["params"]) == {"factor": 1.7} and r["method"] == "contrast"
        assert r["lsd_hf"] == pytest.approx(metrics.lsd_hf(rec.wave, w), abs=1e-5)
        assert r["snr_db"] == pytest.approx(metrics.snr_db(rec.wave, w), abs=1e-5)
        assert r["correlation"] == pytest.approx(metrics.correlation(rec.wave, w), abs=1e-5)
        assert r["ber_high"] == pytest.approx(metrics.band_energy_ratio(rec.wave, w)["high"], abs=1e-5)
        assert r["claims_ret_high"] == pytest.approx(metrics.band_retention_claims(rec.wave, w)["high"], abs=1e-5)
        assert r["dec_mel_lsd_hf"] == pytest.approx(metrics.score_mel(rec.input_mel, rec["configured"].mel)
                                                    ["mel_lsd_hf"], abs=1e-5)
        noisy = rows[(clip.name, "seed_noise")]  # the seed (3) reached the noise enhancer and Griffin-Lim
        assert noisy["snr_db"] == pytest.approx(metrics.snr_db(rec.wave, rec["seed_noise"].wave), abs=1e-5)
        per_clip["lsd_hf"].append(metrics.lsd_hf(rec.wave, w))
        per_clip["d_snr"].append(metrics.snr_db(rec.wave, w) - metrics.snr_db(rec.wave, v))
    s = doc["summary"]
    assert s["configured_lsd_hf"] == pytest.approx(np.mean(per_clip["lsd_hf"]), abs=1e-5)
    assert s["configured_d_snr_db"] == pytest.approx(np.mean(per_clip["d_snr"]), abs=1e-5)


def test_analysis_metrics_agree_with_direct_calls(nbrun):
    doc = _metrics(nbrun, "03_analysis")
    assert doc["grid"] == {"frequency": [1.5, 2.0], "noise": [0.1], "contrast": [1.3], "hybrid": [1.4]}
    assert doc["summary"]["n_settings"] == 5 and doc["conclusions"]
    vae = load_vae(str(nbrun["snapshot"]), device="cpu")
    rows = {(r["clip"], r["label"]): r for r in doc["per_clip"]}
    base = []
    for clip in _clips(nbrun):
        wave = vaelib.load_audio(clip.path, duration=DURATION)
        x, _ = vaelib.normalize(wave)
        mel = vaelib.wav_to_mel(x)
        z = vae.encode(mel)
        plain = metrics.score_mel(mel, vae.decode(z))
        assert rows[(clip.name, "VAE only")]["mel_lsd_hf"] == pytest.approx(plain["mel_lsd_hf"], abs=1e-5)
        noisy = metrics.score_mel(mel, vae.decode(vaelib.enhance.apply("noise", z, level=0.1, seed=1)))
        assert rows[(clip.name, "noise level=0.1")]["mel_l1"] == pytest.approx(noisy["mel_l1"], abs=1e-5)
        base.append(plain["mel_lsd_hf"])
    assert doc["summary"]["vae_mel_lsd_hf"] == pytest.approx(np.mean(base), abs=1e-5)
    claims = {r["claim"]: r for r in doc["claims_vs_measured"]}
    assert claims["frequency: Δ high band (pp)"]["seed"] == 94.9


PARAMS = {stem: {name: spec.annotation for name, spec in vaelib.report.params.specs(kind).items()}
          for kind, (stem, _) in vaelib.report.params.NOTEBOOKS.items()}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_parameters_cell_is_annotated_and_outputs_are_stripped(nb):
    path = NB_DIR / f"{nb}.ipynb"
    info = papermill.inspect_notebook(str(path))
    assert {k: v["inferred_type_name"] for k, v in info.items()} == PARAMS[nb]
    assert all(v["help"] for v in info.values()), [k for k, v in info.items() if not v["help"]]
    assert info["audio"]["default"] == '"demo"' and info["interactive"]["default"] == "True"
    if nb == "03_analysis":  # the notebook's sweep defaults are vaelib's
        for method, values in study.DEFAULT_SWEEPS.items():
            assert info[f"sweep_{method}"]["default"] == str(values)
    src = nbformat.read(path, as_version=4)
    tagged = [c for c in src.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in src.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit the notebook stripped of outputs"
    setup = "\n".join(c.source for c in src.cells if c.cell_type == "code")
    assert "%matplotlib inline" in setup and "matplotlib.use(" not in setup


def test_explorer_notebook_runs_interactively_under_papermill(nbrun, tmp_path):
    """interactive=True builds the widgets; papermill must not hang on them (nteract/papermill#723)."""
    out = tmp_path / "run"
    params = {"audio": str(nbrun["audio"]), "model": str(nbrun["snapshot"]), "vocoder": "griffinlim",
              "duration_s": 1.0, "out_dir": str(out), "interactive": True, "max_clips": 1, "max_players": 1,
              "method": "hybrid"}
    papermill.execute_notebook(str(NB_DIR / "02_latent_enhance.ipynb"), str(tmp_path / "02.ipynb"),
                               parameters=params, kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                               execution_timeout=180)
    executed = nbformat.read(tmp_path / "02.ipynb", as_version=4)
    views = [o for c in executed.cells for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the explorer widget was not displayed"
    assert (out / "02_latent_enhance" / "metrics.json").is_file()


def test_baseline_notebook_adds_visqol_and_keeps_speech_measures_to_speech_clips(nbrun):
    """With vaelib[perceptual] (part of [test]): 01 writes perceptual.csv and ViSQOL per stage to its summary; the
    speech measures stay empty on these clips (tones, noise: not speech)."""
    import pandas as pd

    rows = pd.read_csv(nbrun["out"] / "01_baseline" / "perceptual.csv")
    assert sorted(set(rows["stage"])) == ["mel_projection", "vae"] and len(rows) == 4
    assert rows["visqol"].between(1.0, 4.74).all()
    assert rows[["visqol_speech", "stoi", "pesq_wb", "dnsmos_ovrl"]].isna().all().all()
    s = _metrics(nbrun, "01_baseline")["summary"]
    assert s["vae_visqol"] == pytest.approx(rows.loc[rows.stage == "vae", "visqol"].mean(), abs=1e-9)
    assert s["projection_visqol"] == pytest.approx(rows.loc[rows.stage == "mel_projection", "visqol"].mean(), abs=1e-9)
    assert s["n_perceptual_clips"] == 2 and s["n_perceptual_speech"] == 0 and s["vae_pesq_wb"] is None
