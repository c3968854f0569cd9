"""``vaelib eval --metrics default,perceptual,embedding``: the columns for every stage, the summary, refusals."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import soundfile as sf

import vaelib
from vaelib.evaluate import EvalError, EvalSettings, evaluate
from vaelib.metrics.sets import parse_metric_sets

SR = 16000
FAST = dict(model="bundled", vocoder="griffinlim", griffinlim_iters=4, device="cpu", progress=False,
            echo=lambda s: None, keep_worst=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """2.5 s of a demo speech clip and of a demo music clip, in category folders."""
    root = tmp_path_factory.mktemp("pcorpus") / "corpus"
    files = vaelib.find_audio("demo", demo_split="eval")
    for cat, name in (("speech", "speech_en_us_f4"), ("music", "music_harpsichord")):
        (root / cat).mkdir(parents=True)
        wave = vaelib.load_audio(next(f for f in files if name in str(f)))
        sf.write(root / cat / f"{name}.wav", wave[: int(2.5 * SR)], SR)
    return root


@pytest.fixture(scope="module")
def run(corpus, tiny_clap_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VAELIB_CLAP", str(tiny_clap_dir))
    try:
        out = tmp_path_factory.mktemp("prun") / "ev"
        res = evaluate(corpus, out=out, metrics="default,perceptual,embedding", **FAST)
    finally:
        mp.undo()
    return res


def test_every_stage_gets_finite_perceptual_and_embedding_columns(run):
    df = pd.read_parquet(run.results)
    assert set(df["stage"]) == {"mel_projection", "vae"} and len(df) == 4
    for col in ("visqol", "visqol_speech", "stoi", "estoi", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak",
                "clap_cosine"):
        assert df[col].map(math.isfinite).all(), (col, df[col].tolist())
    assert (df["visqol"] < 4.74).all() and (df["clap_cosine"] >= -1e-9).all()
    assert len(df["clap_emb"].iloc[0]) == 8
    csv = pd.read_csv(run.results_csv)
    assert "visqol" in csv and "clap_emb" not in csv and "clap_ref_emb" not in csv


def test_summary_has_medians_speech_medians_fad_and_versions(run):
    s = json.loads(run.summary.read_text())["perceptual"]
    vae = s["stages"]["vae"]
    assert vae["visqol"]["n"] == 2 and math.isfinite(vae["visqol"]["median"])
    assert vae["pesq_wb"]["speech"]["n"] == 1  # speech measures also summarised over speech clips only
    assert "speech" not in vae["visqol"]  # the audio mode is not a speech-only measure
    assert vae["fad_clap"] >= 0.0
    assert s["versions"]["visqol-python"] and s["clap_model"] == [s["clap_model"][0]]


def test_default_runs_keep_their_hash_and_opt_in_changes_it():
    assert "metrics" not in EvalSettings().identity()
    assert EvalSettings(metrics=("default", "perceptual")).identity()["metrics"] == ["default", "perceptual"]
    assert parse_metric_sets("perceptual") == ("default", "perceptual")
    assert parse_metric_sets(None) == ("default",)


def test_unknown_metric_set_fails_in_one_line(corpus, tmp_path):
    with pytest.raises(EvalError, match="unknown metric set") as e:
        evaluate(corpus, out=tmp_path / "x", metrics="default,mos", **FAST)
    assert "\n" not in str(e.value)
    cmd = [sys.executable, "-m", "vaelib", "eval", "--audio", str(corpus), "--out", str(tmp_path / "y"),
           "--model", "bundled", "--vocoder", "griffinlim", "--no-progress", "--metrics", "default,bogus"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "bogus" in done.stderr


def test_embedding_without_a_model_fails_in_one_line(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(EvalError, match="huggingface-cli download") as e:
        evaluate(corpus, out=tmp_path / "z", metrics="embedding", **FAST)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "z").exists()  # refused before the run folder or any clip
