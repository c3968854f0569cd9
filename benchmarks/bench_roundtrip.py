"""Time each stage of the round trip on a 10.24 s clip (median of --repeat runs, after one warm-up).

    python benchmarks/bench_roundtrip.py                     # bundled tiny VAE + Griffin-Lim, and real-size
    python benchmarks/bench_roundtrip.py --no-real-size      # skip the 55 M-parameter random-weight models
    python benchmarks/bench_roundtrip.py --device cuda

Real-size models are random-weight AutoencoderKL / SpeechT5HifiGan with AudioLDM2's configs (docs/reference.md §2):
timings, not quality. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timeit(fn, repeat, device):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_models(device, *, vae_channels=(128, 256, 512), layers_per_block=2, norm_groups=32, voc_channels=1024,
                  resblock_kernel_sizes=(3, 7, 11), resblock_dilations=((1, 3, 5),) * 3):
    """Random-weight (seeded) ``AutoencoderKL`` + ``SpeechT5HifiGan`` in AudioLDM2's layout, wrapped as vaelib wraps
    the real ones; the defaults are AudioLDM2's configs (docs/reference.md §2)."""
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    from vaelib.models import HifiGanVocoder, LatentVAE

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=8,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        block_out_channels=tuple(vae_channels), layers_per_block=layers_per_block,
                        norm_num_groups=norm_groups, sample_size=1024, scaling_factor=0.4110932946205139)
    cfg = SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=voc_channels,
                                upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                                resblock_kernel_sizes=list(resblock_kernel_sizes),
                                resblock_dilation_sizes=[list(d) for d in resblock_dilations],
                                normalize_before=False)
    return LatentVAE(vae.to(device)), HifiGanVocoder(SpeechT5HifiGan(cfg).eval().to(device))


def real_size_models(device):
    """AudioLDM2-size random-weight models (55 M parameters each)."""
    return random_models(device)


def main(argv=None):
    import vaelib
    from vaelib.audio import normalize, pad_to_multiple, wav_to_mel

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-real-size", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clip = vaelib.find_audio("demo")[0]
    x = pad_to_multiple(normalize(np.resize(vaelib.load_audio(clip), 163840))[0])
    xt = torch.from_numpy(x).to(device)
    rows = []
    mel = wav_to_mel(xt)
    rows.append(("front end (wav_to_mel)", timeit(lambda: wav_to_mel(xt), args.repeat, device)))
    gl = vaelib.load_vocoder("griffinlim", device=device)
    rows.append(("Griffin-Lim, 32 iter", timeit(lambda: gl(mel), args.repeat, device)))
    setups = [("bundled tiny VAE", vaelib.load_vae("bundled", device=device), None)]
    if not args.no_real_size:
        setups.append(("AudioLDM2-size VAE (random)", *real_size_models(device)))
    for name, vae, hifi in setups:
        z = vae.encode(mel)
        rows.append((f"{name}: encode", timeit(lambda vae=vae: vae.encode(mel), args.repeat, device)))
        rows.append((f"{name}: decode", timeit(lambda vae=vae, z=z: vae.decode(z), args.repeat, device)))
        z8 = z.repeat(8, 1, 1, 1)
        rows.append((f"{name}: decode ×8 batch (sweep)",
                     timeit(lambda vae=vae, z8=z8: vae.decode(z8, batch_size=8), args.repeat, device)))
        if hifi is not None:
            rows.append((f"{name}: HiFi-GAN (random, real size)", timeit(lambda h=hifi: h(mel), args.repeat, device)))
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, 10.24 s clip")
    print("| stage | seconds (median) |\n|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} |")


if __name__ == "__main__":
    main()
