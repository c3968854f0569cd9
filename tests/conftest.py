"""Shared fixtures: tiny models written in the real AudioLDM2 layout, and test signals.

Tests never touch the network: the session sets ``HF_HUB_OFFLINE=1`` and points the HF cache at a temp dir.
"""

import contextlib
import json
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

SR = 16000


def write_tiny_snapshot(root, with_vocoder=True, seed=0, safetensors=True):
    """Write a tiny random AutoencoderKL (and SpeechT5HifiGan) under ``root`` in the AudioLDM2 repo layout."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    vae = AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=8,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64,
        scaling_factor=0.5,
    )
    vae.save_pretrained(root / "vae", safe_serialization=safetensors)
    index = {"_class_name": "AudioLDM2Pipeline", "_diffusers_version": "0.30.0",
             "vae": ["diffusers", "AutoencoderKL"]}
    if with_vocoder:
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        cfg = SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=SR, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]],
            normalize_before=False,
        )
        SpeechT5HifiGan(cfg).save_pretrained(root / "vocoder", safe_serialization=safetensors)
        index["vocoder"] = ["transformers", "SpeechT5HifiGan"]
    (root / "model_index.json").write_text(json.dumps(index))
    return root


@pytest.fixture(scope="session")
def tiny_snapshot(tmp_path_factory):
    """Path of a tiny AudioLDM2-layout snapshot (``model_index.json``, ``vae/``, ``vocoder/``)."""
    return write_tiny_snapshot(tmp_path_factory.mktemp("snapshot") / "audioldm2-tiny")


@contextlib.contextmanager
def lock_held_elsewhere(folder):
    """A real second process holding :func:`vaelib.runlock.lock_folder` on ``folder`` while the block runs; yields
    its PID (the process is killed afterwards, leaving a stale lock file behind)."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; from vaelib.runlock import lock_folder; "
                               f"l = lock_folder({str(folder)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Restore torch's intra-op thread count after each test: a test that runs train-restorer or the tiny-VAE
    trainer in-process sets it (their --threads), and tests comparing an in-process run with a subprocess's need
    both at the same count (a different count changes float sums in the last bits)."""
    import torch

    n = torch.get_num_threads()
    yield
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path_factory, monkeypatch):
    """Point the HF cache at an empty temp dir so the user's cache never leaks into tests."""
    cache = tmp_path_factory.getbasetemp() / "hf_cache_empty"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("VAELIB_MODEL", raising=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tone_wave():
    """1.28 s: 440 Hz + 3 kHz + 6 kHz tones and a little seeded noise, at 16 kHz."""
    t = np.arange(int(1.28 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)
    x += 0.01 * np.random.default_rng(1).standard_normal(t.size)
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------------------------
# tiny stand-in notebooks and inputs for the report runner (tests/report/, tests/test_cli.py)
# ------------------------------------------------------------------------------------------------------
NB1_PARAMS = '''\
audio: str = "demo"  # audio file, folder, .lst list or 'demo'
model: str = "auto"  # VAE source
vocoder: str = "auto"  # vocoder
duration_s: float = 1.0  # seconds per clip
method: str = "frequency"  # enhancement method
gain: float = 1.5  # Laplacian gain
seed: int = 0  # random seed
max_clips: int = 8  # at most this many clips
out_dir: str = "."  # output folder
interactive: bool = True  # widgets (True) or static output (False)
'''

NB1_BODY = '''\
%matplotlib inline
import json, pathlib
import numpy as np
import matplotlib.pyplot as plt
import soundfile as sf
from IPython.display import Audio, display
from vaelib.audio import find_audio

files = find_audio(audio)[:max_clips]
out = pathlib.Path(out_dir) / "01_tiny"
out.mkdir(parents=True, exist_ok=True)
x, sr = sf.read(str(files[0]), dtype="float32")
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(np.arange(x.size) / sr, x, color="tab:blue")
ax.set_title(f"{files[0].name} (gain {gain})")
plt.show()
display(Audio(np.clip(x, -1, 1), rate=sr, normalize=False))
rms = float(np.sqrt(np.mean(x ** 2)))
_ = (out / "files.json").write_text(json.dumps([str(f) for f in files]))
_ = (out / "metrics.json").write_text(json.dumps({"summary": {"n_clips": len(files), "gain": gain, "rms": rms,
                                                          "interactive": interactive}}))
'''

NB2_PARAMS = '''\
level: float = 0.1  # noise level
fail: bool = False  # raise in a later cell
out_dir: str = "."  # output folder
'''


def write_notebook(path, params_src, *cells):
    """A notebook with a papermill ``parameters`` cell and then ``cells`` (strings; ``"# md ..."`` → markdown)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(params_src, metadata={"tags": ["parameters"]}))
    for src in cells:
        if src.startswith("# md "):
            nb.cells.append(nbformat.v4.new_markdown_cell(src[5:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(src))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def make_notebooks(folder):
    """Three tiny notebooks: ``01_tiny`` (plot + audio player + metrics), ``02_tiny`` (can fail), ``03_tiny``."""
    nb1 = write_notebook(folder / "01_tiny.ipynb", NB1_PARAMS, "# md # Tiny baseline", NB1_BODY)
    nb2 = write_notebook(
        folder / "02_tiny.ipynb", NB2_PARAMS, "twice = 2 * level",
        'if fail:\n    raise ValueError("deliberate failure")',
        'import json, pathlib\nout = pathlib.Path(out_dir) / "02_tiny"\nout.mkdir(parents=True, exist_ok=True)\n'
        '(out / "metrics.json").write_text(json.dumps({"summary": {"twice_level": twice}}))',
    )
    nb3 = write_notebook(folder / "03_tiny.ipynb", 'out_dir: str = "."  # output folder', "print('third ran')")
    return [nb1, nb2, nb3]


def write_inputs(folder):
    """Three good clips (wav, flac, one in a subfolder) and one corrupt ``.wav``."""
    import soundfile as sf

    t = np.arange(SR) / SR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    sf.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    sf.write(folder / "b.flac", (0.2 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR)
    sf.write(folder / "sub" / "c.wav", (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32), SR)
    (folder / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    return folder


# ------------------------------------------------------------------------------------------------------
# tiny random CLAP model (tests/metrics: embedding distances, eval --metrics embedding)

def write_tiny_clap(root, seed=0):
    """Write a tiny random ``ClapModel`` (+ its feature extractor) under ``root``, safetensors weights."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(hidden_size=16, patch_embeds_hidden_size=8, depths=[1, 1], num_attention_heads=[2, 2],
                 window_size=8, spec_size=256, num_mel_bins=64, patch_size=4, patch_stride=[4, 4],
                 projection_dim=8, enable_fusion=False, intermediate_size=16)
    text = dict(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                projection_dim=8, max_position_embeddings=64)
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8))
    model.save_pretrained(root, safe_serialization=True)
    ClapFeatureExtractor().save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory):
    """A folder holding a tiny random CLAP model (``config.json``, ``model.safetensors``, preprocessor config)."""
    return write_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")
