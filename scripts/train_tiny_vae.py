"""Train the bundled tiny VAE on the demo corpus's train split and write it in the Hugging Face ``vae/`` layout.

    python scripts/train_tiny_vae.py                  # writes vaelib/assets/tiny_vae/ (refuses to overwrite)
    python scripts/train_tiny_vae.py --out /tmp/tv --steps 200
    python scripts/train_tiny_vae.py --out /tmp/tv --block-out-channels 32,32,64 --kl-weight 0.02

Writes ``<out>/vae/{config.json,diffusion_pytorch_model.safetensors}``, ``<out>/training_log.csv``,
``<out>/training_curve.png`` and ``<out>/train_config.json``. Eval clips are never read here; score the result with
``python scripts/eval_tiny_vae.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from vaelib.assets import bundled_model_dir
    from vaelib.audio import find_audio, load_audio
    from vaelib.tiny_vae import CropSampler, TinyVAEConfig, TrainConfig, make_tiny_vae, set_scaling_factor, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=bundled_model_dir())
    ap.add_argument("--force", action="store_true", help="replace an existing model in --out")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this model folder's vae/ (fine-tuning; its architecture is kept) instead of a "
                         "seeded fresh initialisation")
    for cls in (TrainConfig, TinyVAEConfig):
        _add_flags(ap, cls())
    args = ap.parse_args(argv)
    if (args.out / "vae").exists() and not args.force:
        print(f"error: {args.out / 'vae'} exists; pass --force to replace it or choose another --out", file=sys.stderr)
        return 2
    cfg, arch = (cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
                 for cls in (TrainConfig, TinyVAEConfig))
    files = find_audio("demo", demo_split="train")
    waves = [load_audio(p) for p in files]
    print(f"training on {len(files)} train clips ({sum(map(len, waves)) / 16000:.1f} s); {cfg}")
    if args.init is not None:
        from diffusers import AutoencoderKL

        model = AutoencoderKL.from_pretrained(args.init, subfolder="vae", use_safetensors=True)
        model.register_to_config(scaling_factor=1.0)  # the latent is re-measured after training
        arch = TinyVAEConfig(block_out_channels=tuple(model.config.block_out_channels),
                             layers_per_block=model.config.layers_per_block,
                             norm_num_groups=model.config.norm_num_groups,
                             latent_channels=model.config.latent_channels)
    else:
        model = make_tiny_vae(arch, seed=cfg.seed)
    sampler = CropSampler(waves, crop_frames=cfg.crop_frames, mix_prob=cfg.mix_prob, gain_db=cfg.gain_db,
                          seed=cfg.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = train(model, sampler, cfg, log_path=args.out / "training_log.csv")
    minutes = (time.time() - t0) / 60
    sf = set_scaling_factor(model, CropSampler(waves, crop_frames=cfg.crop_frames, seed=cfg.seed + 1))
    model.save_pretrained(args.out / "vae", safe_serialization=True)
    meta = {"train": dataclasses.asdict(cfg), "arch": dataclasses.asdict(arch), "scaling_factor": sf,
            "init": None if args.init is None else str(args.init),
            "train_clips": [p.name for p in files], "train_minutes": round(minutes, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "final": rows[-1]}
    (args.out / "train_config.json").write_text(json.dumps(meta, indent=2) + "\n")
    _plot(rows, args.out / "training_curve.png")
    print(f"done in {minutes:.1f} min: final L1 {rows[-1]['l1']:.4f}, scaling_factor {sf:.4f} → {args.out}")
    return 0


def _add_flags(ap: argparse.ArgumentParser, defaults) -> None:
    """One ``--field-name`` flag per field of the dataclass instance ``defaults`` (tuples as ``16,32,64``)."""
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        if isinstance(value, tuple):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=_int_tuple, default=value,
                            help=f"comma-separated (default {','.join(map(str, value))})")
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value)


def _int_tuple(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 16,32,64, got {text!r}") from None


def _plot(rows, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    steps = [r["step"] for r in rows]
    ax1.plot(steps, [r["l1"] for r in rows])
    ax1.set(xlabel="step", ylabel="L1 (ln mel)", title="reconstruction", yscale="log")
    ax2.plot(steps, [r["kl"] for r in rows], color="C1")
    ax2.set(xlabel="step", ylabel="KL / latent element (nats)", title="KL")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
