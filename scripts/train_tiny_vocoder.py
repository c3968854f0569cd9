"""Train a small SpeechT5HifiGan vocoder (AudioLDM2's vocoder class) on vaelib's log-mel front end.

    python scripts/train_tiny_vocoder.py --out /work/runs/vocoder_final --data /work/data/rc3k \\
        --heldout /work/data/rc3k/heldout.lst --steps 2400 --minutes 42
    python scripts/train_tiny_vocoder.py --out /tmp/voc --steps 20 --upsample-initial-channel 32

Training data: the bundled demo *train* clips plus the audio under each ``--data`` folder, minus the files named in
``--heldout`` (kept for validation crops). The demo eval clips are never read. Writes ``<out>/vocoder/{config.json,
model.safetensors}`` (loads with ``vaelib.models.load_vocoder(<out>, model=...)``), ``<out>/train_config.json``
(hyper-parameters, the file list and its hash), ``<out>/training_log.csv`` and ``<out>/training_curve.png``.
Score the result with ``python scripts/eval_tiny_vocoder.py <out>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def main(argv=None) -> int:
    import torch

    from vaelib.tiny_vocoder import (
        TinyVocoderConfig,
        VocoderCropSampler,
        VocoderTrainConfig,
        count_parameters,
        file_list_hash,
        make_tiny_vocoder,
        train,
        training_files,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--force", action="store_true", help="replace an existing vocoder/ in --out")
    ap.add_argument("--data", type=Path, action="append", default=[], help="extra training folder (repeatable)")
    ap.add_argument("--heldout", type=Path, default=None,
                    help="list file of names never trained on (validation crops are drawn from them)")
    ap.add_argument("--no-demo-train", action="store_true", help="leave out the bundled demo train clips")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much training time (max_minutes)")
    ap.add_argument("--val-crops", type=int, default=8)
    ap.add_argument("--no-progress", action="store_true")
    for cls in (VocoderTrainConfig, TinyVocoderConfig):
        _add_flags(ap, cls())
    args = ap.parse_args(argv)
    if args.minutes is not None:
        args.max_minutes = args.minutes
    if (args.out / "vocoder").exists() and not args.force:
        print(f"error: {args.out / 'vocoder'} exists; pass --force to replace it or choose another --out",
              file=sys.stderr)
        return 2
    cfg, arch = (cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})
                 for cls in (VocoderTrainConfig, TinyVocoderConfig))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    heldout = _read_list(args.heldout) if args.heldout else []
    files = training_files(args.data, exclude=heldout, demo_train=not args.no_demo_train)
    if not files:
        print("error: no training files", file=sys.stderr)
        return 2
    sampler = VocoderCropSampler(files, crop_frames=cfg.crop_frames, gain_db=cfg.gain_db, mix_prob=cfg.mix_prob,
                                 seed=cfg.seed, exclude=heldout)
    total_s = sum(len(w) for w in sampler.waves) / sampler.cfg.sr
    val_batch, val_files = None, []
    if heldout:
        base = args.heldout.parent
        val_files = [base / h if not Path(h).is_absolute() else Path(h) for h in heldout]
        val_files = [p for p in val_files if p.exists()]
    if val_files:
        vs = VocoderCropSampler(val_files, crop_frames=2 * cfg.crop_frames, gain_db=0.0, mix_prob=0.0,
                                seed=cfg.seed + 12345)
        val_batch = vs.batch(args.val_crops)
    model = make_tiny_vocoder(arch, seed=cfg.seed)
    print(f"training on {len(files)} files ({total_s / 60:.1f} min), {len(val_files)} held out; "
          f"{count_parameters(model):,} parameters; {cfg}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = train(model, sampler, cfg, log_path=args.out / "training_log.csv", progress=not args.no_progress,
                 val_batch=val_batch)
    minutes = (time.time() - t0) / 60
    save_vocoder(model, args.out)
    meta = {"train": dataclasses.asdict(cfg), "arch": dataclasses.asdict(arch),
            "parameters": count_parameters(model), "train_minutes": round(minutes, 2), "steps_done": rows[-1]["step"],
            "threads": torch.get_num_threads(), "train_seconds_audio": round(total_s, 1),
            "train_files_sha256": file_list_hash(files), "train_files": [str(p) for p in files],
            "heldout_list": str(args.heldout) if args.heldout else None, "heldout_files": [p.name for p in val_files],
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "final": rows[-1]}
    (args.out / "train_config.json").write_text(json.dumps(meta, indent=2) + "\n")
    _plot(rows, args.out / "training_curve.png")
    print(f"done in {minutes:.1f} min, {rows[-1]['step']} steps: loss {rows[-1]['loss']:.4f} → {args.out}")
    return 0


def save_vocoder(model, out: Path) -> Path:
    """``model.save_pretrained(out / "vocoder", safe_serialization=True)``: the AudioLDM2 layout."""
    path = Path(out) / "vocoder"
    model.save_pretrained(path, safe_serialization=True)
    return path


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _add_flags(ap: argparse.ArgumentParser, defaults) -> None:
    """One ``--field-name`` flag per scalar field of the dataclass instance ``defaults`` (tuples stay fixed)."""
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        if isinstance(value, tuple):
            continue
        if isinstance(value, bool):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                            default=value)
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value)


def _plot(rows, path):
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    steps = [r["step"] for r in rows]
    ax1.plot(steps, [r["stft"] for r in rows], label="train MR-STFT")
    ax1.plot(steps, [r["mel"] for r in rows], label="train mel L1")
    vs = [(r["step"], r["val_stft"], r["val_mel"]) for r in rows if r["val_loss"] != ""]
    if vs:
        ax1.plot([v[0] for v in vs], [v[1] for v in vs], "o-", label="held-out MR-STFT")
        ax1.plot([v[0] for v in vs], [v[2] for v in vs], "s-", label="held-out mel L1")
    ax1.set(xlabel="step", ylabel="loss (nats)", yscale="log", title="losses")
    ax1.legend(fontsize=7)
    ax2.plot(steps, [r["lr"] for r in rows], color="C3")
    ax2.set(xlabel="step", ylabel="lr", title="learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
