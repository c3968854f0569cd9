"""The small SpeechT5HifiGan vocoder trainer (vaelib.tiny_vocoder, scripts/train_tiny_vocoder.py)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelib.audio import MelConfig, wav_to_mel
from vaelib.tiny_vocoder import (
    MultiResolutionSTFTLoss,
    TinyVocoderConfig,
    VocoderCropSampler,
    VocoderLoss,
    VocoderTrainConfig,
    make_tiny_vocoder,
    train,
    vocoder_forward,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = TinyVocoderConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),))
STEPS3 = VocoderTrainConfig(steps=3, batch_size=2, crop_frames=8, warmup_steps=1, log_every=1, seed=0, threads=1)


def _script():
    spec = importlib.util.spec_from_file_location("train_tiny_vocoder", ROOT / "scripts" / "train_tiny_vocoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _waves(n=3, seconds=0.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return [(np.sin(2 * np.pi * (200 + 300 * i) * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
            for i in range(n)]


def test_loss_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(2, 4000)
    loss = VocoderLoss()
    same, parts = loss(x, x.clone())
    assert float(same) == 0.0 and parts["mel"] == 0.0 and parts["sc"] == 0.0
    other, _ = loss(x, 0.5 * x + 0.01 * torch.randn_like(x))
    assert float(other) > 0.1


def test_stft_loss_matches_hand_computed_case():
    # one resolution n_fft 4, hop 2 on 8 samples: Hann periodic [0, .5, 1, .5], centre reflect padding
    x = torch.tensor([[0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    y = 2 * x
    eps = 1e-7
    xp = np.pad(x[0].numpy(), 2, mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(4) / 4)
    frames = np.stack([xp[i:i + 4] * win for i in range(0, len(xp) - 3, 2)])
    t = np.sqrt(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, eps))
    e = np.sqrt(np.maximum(np.abs(np.fft.rfft(2 * frames, axis=1)) ** 2, eps))
    want = np.linalg.norm(t - e) / np.linalg.norm(t) + np.mean(np.abs(np.log(t) - np.log(e)))
    got = float(MultiResolutionSTFTLoss(((4, 2),))(x, y))
    assert got == pytest.approx(want, rel=1e-9)
    # est = 2 * ref: sc = 1 exactly and mag <= ln 2 (= ln 2 away from the magnitude floor)
    sc, mag = MultiResolutionSTFTLoss(((4, 2),))(x, y, return_parts=True)[1:]
    assert float(sc) == pytest.approx(1.0, abs=1e-6) and 0 < float(mag) <= math.log(2) + 1e-12


def test_stft_loss_equals_metric_on_its_resolutions():
    from vaelib import metrics

    rng = np.random.default_rng(1)
    x = rng.standard_normal(6000) * 0.1
    y = 0.7 * x + 0.02 * rng.standard_normal(6000)
    loss = MultiResolutionSTFTLoss(metrics.MRSTFT_RESOLUTIONS)
    got = float(loss(torch.from_numpy(x)[None], torch.from_numpy(y)[None]))
    assert got == pytest.approx(metrics.mrstft(x, y), rel=1e-9)


def _train3(seed):
    torch.set_num_threads(1)
    model = make_tiny_vocoder(TINY, seed=seed)
    sampler = VocoderCropSampler(waves=_waves(), crop_frames=8, seed=seed)
    train(model, sampler, STEPS3, progress=False)
    return model


def test_same_seed_same_weights_after_three_steps():
    a, b = _train3(0), _train3(0)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb), na
    c = make_tiny_vocoder(TINY, seed=0)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))  # it trained


def test_saved_model_loads_through_load_vocoder(tmp_path):
    from vaelib.models import HifiGanVocoder, load_vocoder

    model = _train3(0)
    _script().save_vocoder(model, tmp_path)
    assert (tmp_path / "vocoder" / "model.safetensors").is_file()
    voc = load_vocoder(str(tmp_path), device="cpu", dtype=torch.float32)
    assert isinstance(voc, HifiGanVocoder) and voc.hop_length == 160
    x = _waves(1, seconds=0.32)[0]
    mel = wav_to_mel(x, MelConfig.audioldm2())
    t = mel.shape[2]
    wave = voc(mel)
    assert wave.shape == (1, t * 160)
    with torch.no_grad():
        same = vocoder_forward(model.eval(), mel[:, 0])
    torch.testing.assert_close(wave, same, rtol=1e-5, atol=1e-6)
    assert model(mel[:, 0]).shape[-1] == t * 160 + 32  # the raw SpeechT5HifiGan length, trimmed by both


def test_sampler_refuses_and_never_yields_excluded(tmp_path):
    import soundfile as sf

    paths = []
    for i, w in enumerate(_waves(4, seconds=0.2)):
        p = tmp_path / f"clip{i}.wav"
        sf.write(p, w * (i + 1) / 8, 16000)
        paths.append(p)
    with pytest.raises(ValueError, match="excluded"):
        VocoderCropSampler(paths, crop_frames=8, exclude=["clip2.wav"])
    from vaelib.tiny_vocoder import training_files

    kept = [p for p in training_files([tmp_path], exclude=["clip2.wav", str(paths[3])], demo_train=False)]
    assert [p.name for p in kept] == ["clip0.wav", "clip1.wav"]
    s = VocoderCropSampler(kept, crop_frames=8, seed=0, exclude=["clip2.wav", "clip3.wav"])
    seen = set()
    for _ in range(20):
        mel, wave = s.batch(4)
        assert mel.shape == (4, 8, 64) and wave.shape == (4, 8 * 160)
        seen.update(s.last_indices)
    assert seen <= {0, 1} and [s.files[i].name for i in sorted(seen)] == ["clip0.wav", "clip1.wav"]


def test_training_files_never_include_demo_eval():
    from vaelib.audio import find_audio
    from vaelib.tiny_vocoder import training_files

    files = training_files()
    ev = {p.name for p in find_audio("demo", demo_split="eval")}
    assert files and not ev & {p.name for p in files}


def test_script_refuses_existing_vocoder(tmp_path, capsys):
    (tmp_path / "vocoder").mkdir()
    assert _script().main(["--out", str(tmp_path), "--steps", "1"]) == 2
    assert "--force" in capsys.readouterr().err
