import shutil

import numpy as np
import pytest
import torch
from conftest import write_tiny_snapshot

from vaelib.audio import wav_to_mel
from vaelib.models import GriffinLim, HifiGanVocoder, ModelLoadError, load_vae, load_vocoder, resolve_models


@pytest.fixture(scope="module")
def vae(tiny_snapshot):
    return load_vae(str(tiny_snapshot), device="cpu")


def test_load_vae_from_snapshot_layout(vae, tone_wave):
    mel = wav_to_mel(np.stack([tone_wave, tone_wave[::-1].copy()]))
    z = vae.encode(mel)
    assert z.shape == (2, 8, mel.shape[2] // 4, 16)
    assert vae.scaling_factor == 0.5  # read from config.json, never hard-coded
    out = vae.decode(z)
    assert out.shape == mel.shape
    # decode in chunks gives the same result as one batch
    torch.testing.assert_close(vae.decode(z, batch_size=1), out)


def test_encode_is_mode_times_scaling_factor(vae, tone_wave):
    mel = wav_to_mel(tone_wave)
    with torch.no_grad():
        mode = vae.model.encode(mel).latent_dist.mode()
    torch.testing.assert_close(vae.encode(mel), mode * 0.5)
    a, b = vae.encode(mel, sample=True, seed=3), vae.encode(mel, sample=True, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, vae.encode(mel, sample=True, seed=4))


def test_load_vae_direct_folder(tiny_snapshot):
    v = load_vae(str(tiny_snapshot / "vae"), device="cpu")
    assert v.latent_channels == 8


def test_wrong_mel_layouts_are_refused(vae, tone_wave):
    mel = wav_to_mel(tone_wave)  # (1, 1, T, 64)
    with pytest.raises(ValueError, match="channel dim"):
        vae.encode(mel[:, 0])
    with pytest.raises(ValueError, match="transpose"):
        vae.encode(mel[:, 0].transpose(1, 2))
    with pytest.raises(ValueError, match="swapped"):
        vae.encode(mel.transpose(2, 3))
    with pytest.raises(ValueError, match="multiple of 4"):
        vae.encode(mel[:, :, :-1])
    with pytest.raises(TypeError):
        vae.encode(mel.numpy())


def test_hifigan_vocoder_output_length(tiny_snapshot, tone_wave):
    voc = load_vocoder("hifigan", model=str(tiny_snapshot), device="cpu")
    assert isinstance(voc, HifiGanVocoder)
    mel = wav_to_mel(tone_wave)
    t = mel.shape[2]
    raw = voc.model(mel[:, 0])
    assert raw.shape[-1] > t * 160  # the real model yields T*160 + 32 ...
    assert voc(mel).shape == (1, t * 160)  # ... trimmed to T*160
    assert voc(mel[:, 0]).shape == (1, t * 160)
    with pytest.raises(ValueError, match="time must come before"):
        voc(mel[:, 0].transpose(1, 2))


def test_griffinlim_needs_no_weights_and_inverts(tone_wave):
    gl = load_vocoder("griffinlim", device="cpu")
    assert isinstance(gl, GriffinLim)
    mel = wav_to_mel(tone_wave)
    wave = gl(mel)
    assert wave.shape == (1, mel.shape[2] * 160)
    again = wav_to_mel(wave)
    inside = mel > -6  # where there is energy the resynthesis reproduces the mel closely
    assert (again - mel)[inside].abs().mean().item() < 0.35
    torch.testing.assert_close(gl(mel), wave)  # seeded initial phase: deterministic


def test_pickle_only_weights_refused(tmp_path):
    root = write_tiny_snapshot(tmp_path / "pickled", with_vocoder=False, safetensors=False)
    assert list((root / "vae").glob("*.bin"))
    with pytest.raises(ModelLoadError, match="pickle") as e:
        load_vae(str(root))
    assert "\n" not in str(e.value)


def test_offline_uncached_repo_id_gives_one_line_help(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as e:
        load_vae("cvssp/audioldm2-music")
    msg = str(e.value)
    assert "cvssp/audioldm2-music" in msg and "HF_HUB_OFFLINE" in msg and "local snapshot folder" in msg
    assert "\n" not in msg


def test_bad_sources(tmp_path):
    with pytest.raises(ModelLoadError, match="neither"):
        load_vae(str(tmp_path))
    with pytest.raises(ModelLoadError, match="repo id"):
        load_vae("not a model")
    with pytest.raises(ModelLoadError, match="CPU"):
        load_vae("bundled", device="cpu", dtype="float16")


def _fake_hf_cache(cache, repo, snapshot):
    """Lay out ``snapshot`` as the HF cache does: models--org--name/{refs/main, snapshots/<rev>/...}."""
    base = cache / ("models--" + repo.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(snapshot, base / "snapshots" / rev)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(rev)
    return base / "snapshots" / rev


def test_auto_resolution_with_and_without_cached_audioldm2(tmp_path, monkeypatch, tiny_snapshot):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    choice = resolve_models("auto", "auto")
    assert choice.bundled and choice.vocoder == "griffinlim"
    assert "bundled" in choice.describe() and "Griffin-Lim" in choice.describe()

    _fake_hf_cache(cache, "cvssp/audioldm2-music", tiny_snapshot)
    choice = resolve_models("auto", "auto")
    assert not choice.bundled
    assert choice.vae == "cvssp/audioldm2-music" and choice.vocoder == "cvssp/audioldm2-music"
    assert "HiFi-GAN" in choice.describe()
    vae = load_vae("auto", device="cpu")
    assert not vae.bundled and vae.latent_channels == 8
    assert isinstance(load_vocoder("auto", device="cpu"), HifiGanVocoder)
    assert resolve_models("auto", "griffinlim").vocoder == "griffinlim"


def test_auto_resolution_env_variable(monkeypatch, tiny_snapshot, tmp_path):
    monkeypatch.setenv("VAELIB_MODEL", str(tiny_snapshot))
    choice = resolve_models("auto")
    assert choice.vae == str(tiny_snapshot) and choice.vocoder == str(tiny_snapshot)
    vae_only = write_tiny_snapshot(tmp_path / "novoc", with_vocoder=False)
    with pytest.raises(ModelLoadError, match="griffinlim"):
        resolve_models(str(vae_only), "hifigan")
    assert resolve_models(str(vae_only), "auto").vocoder == "griffinlim"


def test_griffinlim_output_does_not_depend_on_batch_company(tone_wave):
    gl = load_vocoder("griffinlim", device="cpu", n_iter=4)
    mel = wav_to_mel(tone_wave)
    other = wav_to_mel(np.random.default_rng(2).standard_normal(tone_wave.size).astype(np.float32) * 0.1)
    torch.testing.assert_close(gl(torch.cat([other, mel]))[1], gl(mel)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n_fft, win, hop, frames", [(1024, 1024, 160, 37), (64, 48, 20, 9), (32, 32, 16, 5)])
def test_griffinlim_transforms_equal_torch_stft_istft(n_fft, win, hop, frames):
    from vaelib.models import _Frames

    g = torch.Generator().manual_seed(0)
    window = torch.hann_window(win, periodic=True)
    tf = _Frames(n_fft, hop, window, frames)
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True)
    wave = torch.randn(2, frames * hop, generator=g)
    ref = torch.stft(wave, return_complex=True, **kw)[..., :frames].transpose(1, 2)
    torch.testing.assert_close(tf.stft(wave), ref, atol=1e-4, rtol=1e-4)
    spec = torch.randn(2, frames, n_fft // 2 + 1, dtype=torch.complex64, generator=g)
    spec[..., 0].imag = 0  # a real signal's DC and Nyquist bins
    spec[..., -1].imag = 0
    torch.testing.assert_close(tf.istft(spec), torch.istft(spec.transpose(1, 2), length=frames * hop, **kw),
                               atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------ the model checked up front (issue 23 item 5)
def _hub_raising(monkeypatch, exc):
    """Make the Hub metadata request raise ``exc`` (never a real request: tests stay offline)."""
    import huggingface_hub

    calls = []

    def fake(url, timeout=None, **kw):
        calls.append(url)
        raise exc

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", fake)
    return calls


def _http_error(cls, msg):
    import httpx

    req = httpx.Request("HEAD", "https://huggingface.co/x")
    return cls(msg, response=httpx.Response(404, request=req))


def test_typo_repo_id_online_is_refused_in_one_line_before_loading(monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    from vaelib.models import check_models

    calls = _hub_raising(monkeypatch, _http_error(RepositoryNotFoundError, "404 Repository Not Found"))
    with pytest.raises(ModelLoadError) as e:
        check_models("cvssp/audioldm2-musik")
    msg = str(e.value)
    assert "cvssp/audioldm2-musik is not a model repo on the Hugging Face Hub" in msg and "\n" not in msg
    assert calls and calls[0].endswith("vae/config.json")


def test_unreachable_hub_says_network_and_names_offline_and_a_folder(monkeypatch):
    from vaelib.models import check_models

    _hub_raising(monkeypatch, ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(ModelLoadError) as e:
        check_models("cvssp/audioldm2-musik")
    msg = str(e.value)
    assert "could not reach the Hugging Face Hub" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "local snapshot folder" in msg
    assert "config.json" not in msg and "\n" not in msg


def test_repo_without_the_part_is_named(monkeypatch):
    from huggingface_hub.errors import EntryNotFoundError

    from vaelib.models import check_models

    _hub_raising(monkeypatch, EntryNotFoundError("404 Entry Not Found"))
    with pytest.raises(ModelLoadError, match="has no vae/config.json"):
        check_models("someone/not-audioldm")


def test_existing_repo_passes_the_hub_check_and_griffinlim_asks_nothing_of_the_vocoder(monkeypatch):
    import huggingface_hub

    from vaelib.models import check_models

    asked = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url, timeout=None, **kw: asked.append(url))
    choice = check_models("cvssp/audioldm2-music", "griffinlim")
    assert choice.vae == "cvssp/audioldm2-music" and choice.vocoder == "griffinlim"
    assert [u.rsplit("/", 2)[-2:] for u in asked] == [["vae", "config.json"]]


def test_offline_check_never_asks_the_hub(monkeypatch):
    import huggingface_hub

    from vaelib.models import check_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda *a, **k: pytest.fail("asked the Hub"))
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1"):
        check_models("cvssp/audioldm2-musik")


def test_choice_names_the_bundled_stand_ins(tiny_snapshot):
    from vaelib.assets import bundled_model_dir
    from vaelib.models import ModelChoice

    gl = ModelChoice(vae=str(bundled_model_dir()), vocoder="griffinlim", bundled=True, reason="r")
    assert gl.short_names() == ("vaelib's bundled tiny VAE (a stand-in, not AudioLDM2)", "Griffin-Lim")
    voc = ModelChoice(vae=str(bundled_model_dir()), vocoder=str(bundled_model_dir()), bundled=True, reason="r")
    assert voc.bundled_vocoder and "SpeechT5HifiGan" in voc.short_names()[1] and "SpeechT5HifiGan" in voc.describe()
    real = ModelChoice(vae="cvssp/audioldm2-music", vocoder="cvssp/audioldm2-music", bundled=False, reason="r")
    assert real.short_names() == ("the AudioLDM2 VAE of cvssp/audioldm2-music", "its HiFi-GAN vocoder")
    assert not real.bundled_vocoder


def test_griffinlim_warm_start():
    """vocode_warm without a phase is forward exactly; a given phase replaces the seeded one on its frames and
    changes the output; the returned phases have unit modulus."""
    import numpy as np
    import torch

    from vaelib.audio import wav_to_mel
    from vaelib.models import GriffinLim

    gl = GriffinLim(n_iter=3)
    t = torch.arange(16000 * 2) / 16000
    mel = wav_to_mel(0.3 * torch.sin(2 * torch.pi * 440 * t))[0, 0]  # (T, M)
    wave, unit = gl.vocode_warm(mel)
    assert torch.equal(wave, gl(mel[None])[0]) and wave.shape == (mel.shape[0] * 160,)
    assert unit.shape == (mel.shape[0], 1024 // 2 + 1)
    assert np.allclose(unit.abs().numpy(), 1.0, atol=1e-5)
    warm, _ = gl.vocode_warm(mel, unit[:20])
    assert warm.shape == wave.shape and not torch.equal(warm, wave)
