"""The training and evaluation scripts behind the bundled model, run end to end on a very small model."""

import importlib.util
import json
from pathlib import Path

import pytest

import vaelib

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tv")
    argv = ["--out", str(out), "--steps", "3", "--batch-size", "2", "--crop-frames", "16", "--threads", "1",
            "--log-every", "1", "--block-out-channels", "4,8,8", "--norm-num-groups", "4"]
    assert _script("train_tiny_vae").main(argv) == 0
    return out, argv


def test_train_script_writes_a_loadable_model_in_the_hf_layout(trained):
    out, _ = trained
    assert sorted(p.name for p in (out / "vae").iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    meta = json.loads((out / "train_config.json").read_text())
    assert meta["arch"]["block_out_channels"] == [4, 8, 8] and meta["train"]["steps"] == 3
    assert (out / "training_curve.png").stat().st_size > 0
    assert len((out / "training_log.csv").read_text().splitlines()) == 1 + 3
    vae = vaelib.load_vae(str(out), device="cpu")  # the same from_pretrained path users run
    assert vae.latent_channels == 8 and vae.scaling_factor == pytest.approx(meta["scaling_factor"])


def test_train_script_refuses_to_overwrite_without_force(trained, capsys):
    out, argv = trained
    before = (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert _script("train_tiny_vae").main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == before


def test_train_script_rejects_a_malformed_channel_list(tmp_path):
    with pytest.raises(SystemExit):
        _script("train_tiny_vae").main(["--out", str(tmp_path), "--block-out-channels", "16,x"])


def test_eval_script_scores_a_model_and_leaves_the_bundled_card_alone(trained, tmp_path):
    out, _ = trained
    dest = tmp_path / "eval.json"
    assert _script("eval_tiny_vae").main(["--model", str(out), "--out", str(dest), "--threads", "1"]) == 0
    res = json.loads(dest.read_text())
    assert len(res["per_clip"]) == len(vaelib.find_audio("demo", demo_split="eval"))
    for key in ("mel_l1_vae", "mel_l1_naive", "mel_err_db_below_4k", "mel_err_db_above_4k", "naive_err_db_above_4k",
                "lsd_vae", "lsd_projection", "l1_reduction_vs_naive", "hf_error_exceeds_lf"):
        assert key in res["mean"], key
    assert not (out / "MODEL_CARD.md").exists()


def test_eval_script_scores_other_audio_only_into_its_own_file(trained, tmp_path, capsys):
    """--audio: the files given, written to --out only (required); the model's eval.json and card untouched."""
    import shutil

    out, _ = trained
    audio = tmp_path / "audio"
    audio.mkdir()
    for f in vaelib.find_audio("demo", demo_split="eval")[:2]:
        shutil.copy(f, audio / f.name)
    mod = _script("eval_tiny_vae")
    assert mod.main(["--model", str(out), "--audio", str(audio), "--threads", "1"]) == 2
    assert "--audio needs --out" in capsys.readouterr().err
    before = sorted(p.name for p in out.iterdir())
    dest = tmp_path / "real.json"
    assert mod.main(["--model", str(out), "--audio", str(audio), "--out", str(dest), "--threads", "1"]) == 0
    res = json.loads(dest.read_text())
    assert sorted(c["clip"] for c in res["per_clip"]) == sorted(f.stem for f in audio.iterdir())
    assert "lower) over 2 files" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == before


def test_eval_restorer_scores_each_recording_once(tmp_path, capsys):
    """sound-theme-freedesktop names some recordings several times (symlinks): each is scored once."""
    mod = _script("eval_restorer")
    (tmp_path / "b-real.oga").write_bytes(b"one recording")
    (tmp_path / "a-link.oga").symlink_to(tmp_path / "b-real.oga")
    (tmp_path / "c-copy.oga").write_bytes(b"one recording")
    (tmp_path / "d-other.oga").write_bytes(b"another recording")
    kept = mod.distinct(sorted(tmp_path.glob("*.oga")))
    assert [f.name for f in kept] == ["b-real.oga", "d-other.oga"]
    err = capsys.readouterr().err
    assert "a-link.oga is the same audio as b-real.oga" in err and "c-copy.oga" in err


def test_restorer_corpus_names_and_types():
    mod = _script("make_restorer_corpus")
    assert mod._typed_prefix("bd_808", "sonicpi") == "drums_sonicpi"
    assert mod._typed_prefix("ambi_choir", "sonicpi") == "music_sonicpi"
    assert mod._typed_prefix("vinyl_hiss", "sonicpi") == "sonicpi"
    assert mod._typed_prefix("piano-c", "icon") == "music_icon"
    assert mod._typed_prefix("x", "deepin") == "deepin"
    assert mod._forbidden("/usr/share/sounds/freedesktop/stereo/bell.oga")
    assert not mod._forbidden("/usr/share/sounds/deepin/stereo/message.wav")
    assert not set(mod.HELDOUT) & set(mod.EXCLUDED) and len(set(mod.HELDOUT)) == 42


def test_restorer_corpus_like_guard_finds_a_shifted_copy_and_passes_other_audio(tmp_path):
    """--exclude-like: a training file that is a delayed, scaled copy of a test file correlates ~1 with it (by
    make_realtest's own measure); independent noise does not; long files are cut to the documented excerpt."""
    import numpy as np
    import soundfile as sf

    mod = _script("make_restorer_corpus")
    realtest = _script("make_realtest")
    rng = np.random.default_rng(0)
    sr = 16000
    a, b = rng.standard_normal(sr * 2) * 0.1, rng.standard_normal(sr * 3) * 0.1
    sf.write(tmp_path / "speech_a.flac", a.astype(np.float32), sr)
    sf.write(tmp_path / "music_b.flac", b.astype(np.float32), sr)
    guard = mod._LikeGuard([tmp_path])
    copy = 0.3 * np.concatenate([np.zeros(1236), a, np.zeros(500)])  # a lag of whole 4 kHz samples
    score, name = guard.worst(copy)
    assert score > 0.95 and name.endswith("speech_a.flac")
    ref = realtest._env4k(realtest.load16k(tmp_path / "speech_a.flac"))
    assert score == pytest.approx(realtest.max_xcorr(realtest._env4k(copy), ref), abs=1e-9)
    other, _ = guard.worst(rng.standard_normal(sr * 4) * 0.1)
    assert other < mod.DUP_LIMIT / 2
    assert mod._LikeGuard([]).worst(copy) == (0.0, "")
    start, length = mod.EXCERPT_S
    long = np.arange(int((start + length + 5) * sr), dtype=float)
    cut = mod._excerpt(long)
    assert len(cut) == int(length * sr) and cut[0] == int(start * sr)
    short = np.arange(int((start + length) * sr), dtype=float)
    assert mod._excerpt(short) is short
    assert mod._typed_prefix("frozen-mainzik-1p", "frozen_bubble") == "music_frozen_bubble"
    assert mod._typed_prefix("launch", "frozen_bubble") == "frozen_bubble"


def test_eval_restorer_perceptual_summary_by_hand():
    """Higher is better: per clip difference to the plain VAE, its median, clips improved, the worst clip; a measure
    that does not apply (NaN) to a clip leaves that clip out of that measure only."""
    import math

    mod = _script("eval_restorer")
    nan = math.nan
    rows = [{"clip": c, "label": lab, "visqol": v, "visqol_speech": s, "stoi": nan, "estoi": nan, "pesq_wb": nan}
            for c, lab, v, s in [("a", "vae", 4.0, 3.0), ("b", "vae", 3.0, nan), ("c", "vae", 2.0, nan),
                                 ("a", "r", 4.5, 2.5), ("b", "r", 2.8, nan), ("c", "r", 2.1, nan)]]
    summ = mod.perceptual_summary(rows)
    v = summ["r"]["visqol"]
    assert v["mean"] == pytest.approx((4.5 + 2.8 + 2.1) / 3)
    assert v["median_diff"] == pytest.approx(0.1) and v["improved"] == 2 and v["clips"] == 3
    assert v["worst_clip"] == "b" and v["worst_diff"] == pytest.approx(-0.2)
    s = summ["r"]["visqol_speech"]
    assert s["clips"] == 1 and s["worst_diff"] == pytest.approx(-0.5) and s["improved"] == 0
    assert "stoi" not in summ["r"]
    assert summ["vae"]["visqol"]["improved"] == 0 and summ["vae"]["visqol"]["median_diff"] == 0
    assert "| r | visqol | 3.133 | 3 | +0.100 | 2 of 3 | b -0.200 |" in mod.perceptual_table(summ)
