"""Model folders that are broken or hostile: each is refused in one line (ModelLoadError), never a diffusers /
transformers traceback; headers say what a local folder is instead of calling it AudioLDM2."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tiny_snapshot

from vaelib.models import ModelLoadError, check_models, load_vae, load_vocoder, resolve_models, vae_kind


@pytest.fixture
def snap(tmp_path, tiny_snapshot):
    """A writable copy of the tiny AudioLDM2-layout snapshot."""
    return shutil.copytree(tiny_snapshot, tmp_path / "snap")


def _edit(path, **changes):
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def _refused(fn, match):
    with pytest.raises(ModelLoadError, match=match) as e:
        fn()
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    return str(e.value)


def test_config_that_is_not_json(snap):
    (snap / "vae" / "config.json").write_text('{"block_out_channels": [8, 16,')
    msg = _refused(lambda: load_vae(str(snap), device="cpu"), "is not valid JSON")
    assert "line 1 column" in msg and str(snap / "vae" / "config.json") in msg
    _refused(lambda: check_models(str(snap), "griffinlim"), "is not valid JSON")
    (snap / "vae" / "config.json").write_text("[1, 2]")
    _refused(lambda: load_vae(str(snap), device="cpu"), "must hold a JSON object")
    (snap / "vae" / "config.json").write_bytes(b"\xff\xfe{")
    _refused(lambda: load_vae(str(snap), device="cpu"), "not UTF-8")


@pytest.mark.parametrize("changes, match", [
    ({"block_out_channels": [8, 16, 1_000_000]}, "block_out_channels must be a list of 1 to 8 integers"),
    ({"block_out_channels": [4096, 4096, 4096], "norm_num_groups": 32, "layers_per_block": 16}, "G parameters"),
    ({"block_out_channels": [8, 16, 16, 16]}, "down-sample by 8"),
    ({"latent_channels": 0}, "latent_channels must be an integer"),
    ({"layers_per_block": 10 ** 9}, "layers_per_block"),
    ({"norm_num_groups": 3}, "must divide"),
    ({"in_channels": 3}, "in_channels must be 1"),
    ({"scaling_factor": 0}, "scaling_factor must be a finite positive"),
    ({"scaling_factor": float("nan")}, "scaling_factor"),
    ({"block_out_channels": "<script>"}, r"got \?\)"),
])
def test_absurd_vae_sizes_refused_before_anything_is_built(snap, changes, match):
    _edit(snap / "vae" / "config.json", **changes)
    _refused(lambda: load_vae(str(snap), device="cpu"), match)
    _refused(lambda: check_models(str(snap), "griffinlim"), match)


@pytest.mark.parametrize("changes, match", [({"upsample_rates": [5, 4, 2, 2, 4]}, "multiply to 320"),
                                            ({"model_in_dim": 80}, "model_in_dim must be 64"),
                                            ({"upsample_initial_channel": 10 ** 7}, "upsample_initial_channel")])
def test_absurd_vocoder_config_refused(snap, changes, match):
    _edit(snap / "vocoder" / "config.json", **changes)
    _refused(lambda: load_vocoder("hifigan", model=str(snap), device="cpu"), match)


def test_weights_of_another_architecture(snap, tmp_path):
    """Weights saved from a VAE with other sizes beside this config: refused, whichever way they differ."""
    other = write_tiny_snapshot(tmp_path / "other", with_vocoder=False)
    cfg = json.loads((other / "vae" / "config.json").read_text())
    # wider last block: same keys, other shapes
    _edit(snap / "vae" / "config.json", block_out_channels=[8, 16, 32])
    _refused(lambda: load_vae(str(snap), device="cpu"), "do not match its config.json")
    # more layers per block: keys missing from the weights (diffusers would keep them random, with a warning)
    _edit(snap / "vae" / "config.json", block_out_channels=cfg["block_out_channels"], layers_per_block=2)
    _refused(lambda: load_vae(str(snap), device="cpu"), "do not match its config.json")
    # truncated weights
    _edit(snap / "vae" / "config.json", layers_per_block=1)
    w = snap / "vae" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    _refused(lambda: load_vae(str(snap), device="cpu"), "cannot load the model in")


def test_stray_and_misnamed_weight_files(snap):
    vae = snap / "vae"
    (vae / "extra.ckpt").write_bytes(b"not loaded")  # a stray pickle beside the safetensors is never opened
    assert load_vae(str(snap), device="cpu").latent_channels == 8
    (vae / "diffusion_pytorch_model.safetensors").rename(vae / "weights.safetensors")
    (vae / "extra.ckpt").unlink()
    msg = _refused(lambda: load_vae(str(snap), device="cpu"), "no diffusion_pytorch_model.safetensors")
    assert "found weights.safetensors" in msg
    (vae / "weights.safetensors").unlink()
    (vae / "stray.pt").write_bytes(b"\x80\x04")
    _refused(lambda: load_vae(str(snap), device="cpu"), "refusing to load pickle weights")


def test_headers_say_what_a_local_folder_is(snap, tmp_path):
    line = resolve_models(str(snap), "griffinlim").describe()
    assert "AudioLDM2 VAE" not in line
    assert (f"VAE from local folder {snap} (AutoencoderKL config: latent_channels 8, block_out_channels [8, 16, 16], "
            "scaling_factor 0.5)") in line
    assert vae_kind("cvssp/audioldm2") == "AudioLDM2 VAE from cvssp/audioldm2"
    assert vae_kind("someone/else") == "VAE from Hugging Face repo someone/else"
    assert "bundled tiny VAE" in resolve_models("bundled").describe()
    _edit(snap / "vae" / "config.json", latent_channels="<b>x</b>", scaling_factor=True)
    assert "latent_channels ?" in vae_kind(str(snap)) and "scaling_factor ?" in vae_kind(str(snap))
    (snap / "vae" / "config.json").write_text("{")
    assert vae_kind(str(snap)).endswith("(config unreadable)")


def test_eval_with_a_broken_model_folder_is_one_line_and_the_corrected_rerun_works(snap, tmp_path):
    (snap / "vae" / "config.json").write_text("{oops")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "a.wav", (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
    cmd = [sys.executable, "-m", "vaelib", "eval", "--audio", str(corpus), "--out", str(tmp_path / "run"),
           "--vocoder", "griffinlim", "--griffinlim-iters", "2", "--device", "cpu", "--no-progress"]
    p = subprocess.run([*cmd, "--model", str(snap)], capture_output=True, text=True, timeout=200)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "is not valid JSON" in p.stderr
    p = subprocess.run([*cmd, "--model", "bundled"], capture_output=True, text=True, timeout=200)
    assert p.returncode == 0, p.stderr
