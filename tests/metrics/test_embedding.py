"""CLAP embedding distances: a tiny random ``ClapModel`` written in the test, loaded through vaelib's loader."""

import json
import shutil

import numpy as np
import pytest

from vaelib.metrics.embedding import ClapEmbedder, embedding_distance, fad, load_clap
from vaelib.models import ModelLoadError

SR = 16000


@pytest.fixture(scope="module")
def clap_dir(tiny_clap_dir):
    return tiny_clap_dir


@pytest.fixture(scope="module")
def clap(clap_dir):
    return load_clap(str(clap_dir))


@pytest.fixture(scope="module")
def clips():
    import vaelib

    files = vaelib.find_audio("demo", demo_split="eval")
    speech = next(f for f in files if "speech_en_us" in str(f))
    music = next(f for f in files if "harpsichord" in str(f))
    return vaelib.load_audio(speech)[: 3 * SR], vaelib.load_audio(music)[: 3 * SR]


def test_local_folder_loads_safetensors_and_embeds_unit_vectors(clap, clap_dir, clips):
    assert isinstance(clap, ClapEmbedder) and clap.sr == 48000 and str(clap_dir) in clap.describe()
    assert list(clap_dir.glob("*.safetensors")) and not list(clap_dir.glob("*.bin"))
    e = clap.embed(clips[0], SR)
    assert e.shape == (8,) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_array_equal(e, clap.embed(clips[0], SR))  # deterministic (no random crop)


def test_cosine_distance_is_zero_at_identity_and_positive_otherwise(clap, clips):
    speech, music = clips
    same = embedding_distance(speech, speech, SR, embedder=clap)["clap_cosine"]
    other = embedding_distance(speech, music, SR, embedder=clap)["clap_cosine"]
    assert same == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < other <= 2.0


def test_long_clips_are_embedded_in_10_s_windows(clap, clips):
    speech, music = clips
    long = np.concatenate([np.tile(speech, 4), music])  # 15 s: one full 10 s window and a 5 s one
    e = clap.embed(long, SR)
    w1, w2 = clap.embed(long[: 10 * SR], SR), clap.embed(long[10 * SR:], SR)
    mean = (w1 + w2) / np.linalg.norm(w1 + w2)
    np.testing.assert_allclose(e, mean, atol=1e-4)  # float32 batch of two vs one by one


def test_audioldm2_snapshot_layout_and_hf_cache_and_env(clap_dir, tmp_path, monkeypatch, clips):
    snap = tmp_path / "audioldm2-like"
    shutil.copytree(clap_dir, snap / "text_encoder")
    (snap / "feature_extractor").mkdir()
    shutil.move(str(snap / "text_encoder" / "preprocessor_config.json"), snap / "feature_extractor")
    (snap / "model_index.json").write_text(json.dumps({"text_encoder": ["transformers", "ClapModel"]}))
    ref = load_clap(str(clap_dir)).embed(clips[0], SR)
    np.testing.assert_allclose(load_clap(str(snap)).embed(clips[0], SR), ref, atol=1e-6)

    cache = tmp_path / "hub"
    base = cache / "models--laion--clap-htsat-unfused"
    rev = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(clap_dir, base / "snapshots" / rev)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in ("laion/clap-htsat-unfused", "auto"):
        emb = load_clap(source)
        assert emb.source == "laion/clap-htsat-unfused"
        np.testing.assert_allclose(emb.embed(clips[0], SR), ref, atol=1e-6)
    monkeypatch.setenv("VAELIB_CLAP", str(snap))
    assert load_clap("auto").source == str(snap)


def test_missing_model_fails_in_one_line_naming_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in ("auto", "laion/clap-htsat-unfused"):
        with pytest.raises(ModelLoadError) as e:
            load_clap(source)
        msg = str(e.value)
        assert "\n" not in msg and "huggingface-cli download laion/clap-htsat-unfused" in msg
    with pytest.raises(ModelLoadError, match="repo id"):
        load_clap("not a model")


def test_pickle_only_folder_is_refused(clap_dir, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(clap_dir / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="pickle") as e:
        load_clap(str(folder))
    assert "\n" not in str(e.value)


def test_fad_against_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 4)) @ rng.standard_normal((4, 4))
    v = np.array([1.0, -2.0, 0.5, 0.0])
    # same covariance, shifted mean: FAD = |v|^2 exactly (the trace term cancels)
    assert fad(a, a + v) == pytest.approx(v @ v, rel=1e-6)
    assert fad(a, a) == pytest.approx(0.0, abs=1e-6)
    # b = 2 (a - mean): Σ_b = 4 Σ_a, (Σ_a Σ_b)^½ = 2 Σ_a -> FAD = |μ_a|^2 + tr(Σ_a)
    b = 2 * (a - a.mean(0))
    expect = a.mean(0) @ a.mean(0) + np.trace(np.cov(a, rowvar=False))
    assert fad(a, b) == pytest.approx(expect, rel=1e-6)
    # fewer clips than dimensions (singular covariances) still gives a finite, non-negative number
    small = rng.standard_normal((3, 16))
    assert 0.0 <= fad(small, small + 0.1) < 1.0


def test_fad_rejects_bad_input_in_one_line():
    rng = np.random.default_rng(0)
    for a, b in ((rng.standard_normal((1, 4)), rng.standard_normal((5, 4))),
                 (rng.standard_normal((5, 4)), rng.standard_normal((5, 3))),
                 (np.full((3, 2), np.nan), np.zeros((3, 2)))):
        with pytest.raises(ValueError) as e:
            fad(a, b)
        assert "\n" not in str(e.value)
