import numpy as np
import pytest
import soundfile as sf
import torch

import vaelib
from vaelib.audio import MelConfig, find_audio, load_audio, normalize, pad_to_multiple, save_audio, wav_to_mel

SR = 16000


def reference_logmel(x, sr=16000, n_fft=1024, hop=160, n_mels=64, fmin=0.0, fmax=8000.0):
    """docs/reference.md §1 computed independently in plain numpy: reflect pad, periodic Hann, |rfft|, mel, ln clamp."""
    import librosa

    pad = (n_fft - hop) // 2
    xp = np.pad(x.astype(np.float64), pad, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    n_frames = (len(xp) - n_fft) // hop + 1
    frames = np.stack([xp[i * hop: i * hop + n_fft] * window for i in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames, axis=1))  # (T, F)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return np.log(np.maximum(mag @ basis.T, 1e-5))


def test_wav_to_mel_matches_independent_numpy(tone_wave):
    x, _ = normalize(tone_wave)
    x = pad_to_multiple(x)
    ref = reference_logmel(x)
    got = wav_to_mel(x)
    assert got.shape == (1, 1, ref.shape[0], 64)
    np.testing.assert_allclose(got[0, 0].numpy(), ref, atol=1e-4)


def test_wav_to_mel_frames_batch_and_padding():
    x = np.random.default_rng(0).standard_normal((3, 16000 + 37)).astype(np.float32) * 0.1
    mel = wav_to_mel(x)
    # ceil((16037)/160) = 101 frames → padded up to 104, the next multiple of 4
    assert mel.shape == (3, 1, 104, 64)
    # batch rows equal single-clip calls
    np.testing.assert_allclose(mel[1], wav_to_mel(x[1])[0], atol=1e-5)
    # padding is digital silence in the waveform: the padded tail frames are at the log floor
    assert mel[:, :, -1].max().item() == pytest.approx(np.log(1e-5), abs=1e-3)
    # N samples → N / 160 frames when no padding is needed
    assert wav_to_mel(np.zeros(6400, np.float32), pad=False).shape[2] == 40


def test_wav_to_mel_silence_floor_and_no_normalisation():
    assert wav_to_mel(np.zeros(1280, np.float32)).unique().item() == pytest.approx(np.log(1e-5))
    x = np.random.default_rng(1).standard_normal(3200).astype(np.float32) * 0.1
    # magnitude (not power): doubling the wave adds ln 2 exactly where above the clamp
    d = wav_to_mel(2 * x) - wav_to_mel(x)
    assert d[wav_to_mel(x) > -8].mean().item() == pytest.approx(np.log(2), abs=1e-4)


def test_wav_to_mel_accepts_tensor_layouts():
    x = torch.randn(2, 1, 3200) * 0.1
    assert wav_to_mel(x).shape == (2, 1, 20, 64)
    with pytest.raises(ValueError, match="shape"):
        wav_to_mel(torch.randn(2, 2, 2, 3200))
    with pytest.raises(TypeError):
        wav_to_mel(np.arange(3200))


def test_mel_config_presets_and_validation():
    c = MelConfig.audioldm2()
    assert (c.sr, c.n_fft, c.hop_length, c.n_mels, c.fmax, c.pad) == (16000, 1024, 160, 64, 8000.0, 432)
    c48 = MelConfig.audioldm_48k()
    assert (c48.sr, c48.n_fft, c48.hop_length, c48.n_mels, c48.fmax) == (48000, 2048, 480, 256, 24000.0)
    assert c48.n_frames(48000) == 100
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="hop_length"):
        MelConfig(hop_length=0)
    assert c.band_mask(4000, 8001).sum() + c.band_mask(0, 4000).sum() == 64


def test_normalize_training_rule():
    x = np.array([1.0, 3.0, -1.0, 5.0], np.float32)  # mean 2 → [-1, 1, -3, 3] → peak 3
    y, gain = normalize(x)
    np.testing.assert_allclose(y, np.array([-1, 1, -3, 3]) / (3 + 1e-8) * 0.5, rtol=1e-6)
    assert gain == pytest.approx(0.5 / 3)
    yt, gt = normalize(torch.tensor(x))
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-6)
    assert gt == pytest.approx(gain)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_load_audio_formats_stereo_resample(tmp_path, fmt):
    sr_in = 22050
    t = np.arange(sr_in) / sr_in
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, 0.5 * left], axis=1)
    path = tmp_path / f"x.{fmt}"
    sf.write(path, stereo, sr_in)
    before = path.read_bytes()
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == pytest.approx(SR, abs=2)
    # channel mean: 0.75 amplitude; resampled sine keeps its amplitude
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.375, rel=0.03)
    assert path.read_bytes() == before  # input untouched
    assert len(load_audio(path, duration=0.5)) == 8000


def test_load_audio_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEgarbage")
    with pytest.raises(ValueError, match="cannot read bad.wav") as e:
        load_audio(bad)
    assert "\n" not in str(e.value)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR)
    with pytest.raises(ValueError, match="zero samples"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan] * 1000, np.float32), SR, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        load_audio(nan)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(500, np.float32), SR)
    with pytest.raises(ValueError, match="too short"):
        load_audio(short)
    with pytest.raises(ValueError, match="folder"):
        load_audio(tmp_path)


def test_save_audio_never_overwrites(tmp_path):
    p = save_audio(tmp_path / "a.wav", np.zeros(1600, np.float32))
    with pytest.raises(FileExistsError):
        save_audio(p, np.ones(1600, np.float32))
    assert np.all(sf.read(p)[0] == 0)


def test_find_audio(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "sub/a.flac"):
        sf.write(tmp_path / name, np.zeros(2000, np.float32), SR)
    (tmp_path / "notes.txt").write_text("x")
    assert sorted(p.name for p in find_audio(tmp_path)) == ["a.flac", "b.wav"]
    assert find_audio([tmp_path / "b.wav", tmp_path / "b.wav"]) == [tmp_path / "b.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        find_audio(empty)
    with pytest.raises(FileNotFoundError):
        find_audio(tmp_path / "missing")
    with pytest.raises(ValueError, match="unsupported extension"):
        find_audio(tmp_path / "notes.txt")


def test_public_api():
    for name in ("load_audio", "normalize", "MelConfig", "wav_to_mel", "load_vae", "load_vocoder", "reconstruct"):
        assert hasattr(vaelib, name)


def test_audio_list_round_trips_any_file_name(tmp_path):
    import soundfile as sf

    from vaelib.audio import find_audio, write_audio_list

    names = ["plain.wav", "new\nline.wav", " edge .wav", "#hash.wav", '"quoted".wav', "uni\u2028sep.wav"]
    for n in names:
        sf.write(tmp_path / n, np.zeros(1600, np.float32), 16000)
    lst = write_audio_list(tmp_path / "in.lst", [tmp_path / n for n in names])
    assert sorted(p.name for p in find_audio(lst)) == sorted(names)
    with pytest.raises(FileExistsError):
        write_audio_list(lst, [])
    (tmp_path / "bad.lst").write_text('"unterminated.wav\n')
    with pytest.raises(ValueError, match="line 1: an entry starting with a double quote"):
        find_audio(tmp_path / "bad.lst")
