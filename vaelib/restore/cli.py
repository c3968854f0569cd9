"""``vaelib train-restorer``: the command line of :func:`vaelib.restore.train.train_restorer`."""

from __future__ import annotations

import sys

from .._util import one_line
from .model import RestorerError
from .train import TrainOptions, train_restorer

__all__ = ["add_parser"]


_EPILOG = """\
Trains with the VAE frozen. Audio types for --conditional come from file names (speech_*, music_*, drums_*;
else other) or a parent folder named speech/music/percussion. Writes model.safetensors, config.json,
MODEL_CARD.md, training_log.csv/png, eval.json and checkpoint/ into a new --out folder.
examples:
  vaelib train-restorer --model bundled --audio clips/ --out runs/r1 --steps 2000
  vaelib train-restorer --model cvssp/audioldm2 --audio my.lst --out runs/ldm --minutes 30 --device cuda
  vaelib train-restorer --out runs/r1 --resume ...      (continue an interrupted run)
"""


def add_parser(subparsers, parser_class=None):
    """Register ``vaelib train-restorer``."""
    import argparse

    p = subparsers.add_parser("train-restorer", help="train a learned high-band restorer for a frozen VAE",
                              description="Train a learned high-band restorer (mel post-net or latent residual "
                                          "net) for a frozen VAE.",
                              epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="auto", metavar="auto|bundled|ID|PATH", help="the VAE (default: auto)")
    p.add_argument("--audio", required=True, nargs="+", metavar="PATH",
                   help="training audio: files, folders, .lst lists, or 'demo-train' (the bundled train split)")
    p.add_argument("--out", required=True, metavar="DIR", help="new output folder (refused if not empty)")
    p.add_argument("--kind", choices=("mel", "latent"), default="mel", help="mel post-net or latent residual net")
    p.add_argument("--conditional", action="store_true", help="FiLM-condition on the audio type")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="training steps (default 2000)")
    g.add_argument("--minutes", type=float, default=None, help="train for this wall time instead of --steps")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                   help="VAE weights dtype (bfloat16: faster pairs / latent training on a GPU; the restorer trains in "
                        "float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (with the same arguments; other ones are refused)")
    p.add_argument("--extend-steps", action="store_true",
                   help="with --resume: accept a larger --steps than the run was started with (recorded in the card)")
    p.add_argument("--arch", choices=("tcn", "unet"), default="tcn",
                   help="mel kind: temporal conv net over mel bins (default) or 2-D U-Net")
    p.add_argument("--channels", type=int, default=None, help="width (default: tcn 128, unet 16, latent 64)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-frames", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--augment", type=int, default=None,
                   help="re-coloured copies per training clip (spectral tilt, mixing, noise; default 0)")
    p.add_argument("--hf-weight", type=float, default=None, help="L1 weight of the bins >= 4 kHz (default 3)")
    p.add_argument("--lsd-weight", type=float, default=None, help="weight of the high-band RMS term (default 1)")
    p.add_argument("--energy-weight", type=float, default=None,
                   help="weight of the high-band energy term |ln(restored / input 4-8 kHz mel energy)| (default 0)")
    p.add_argument("--holdout", type=float, default=None, help="fraction of files held out (default 0.15)")
    p.add_argument("--holdout-files", nargs="+", default=None, metavar="PATH",
                   help="a fixed held-out set instead of --holdout: files, folders or .lst lists, never trained on "
                        "(compare runs on different training data on the same clips)")
    p.add_argument("--init", default=None, metavar="learned|learned_cond|DIR",
                   help="start from this restorer's weights (a bundled one or a folder; same shape and VAE) "
                        "instead of a random initialisation: a fine-tune")
    p.add_argument("--ema", type=float, default=None,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and ship "
                        "it (default 0: off)")
    p.add_argument("--no-mel-floor", action="store_true",
                   help="mel kind: do not clamp the restored log-mel at the front end's floor log(1e-5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default 2; 0 = torch default)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_main)
    return p


def _err(msg) -> int:
    sys.stderr.write(f"error: {one_line(msg, 400)}\n")
    return 2


def _main(args) -> int:
    import shlex

    from ..audio import find_audio
    from ..models import ModelLoadError, load_vae

    opts = TrainOptions()
    for name in ("steps", "minutes", "batch_size", "crop_frames", "lr", "holdout", "threads", "eval_every", "seed",
                 "hf_weight", "lsd_weight", "energy_weight", "augment", "ema", "init"):
        v = getattr(args, name, None)
        if v is not None:
            setattr(opts, name, v)
    opts.mel_floor = not getattr(args, "no_mel_floor", False)
    if opts.minutes is not None and not opts.minutes > 0:
        return _err(f"--minutes must be positive, got {opts.minutes:g}")
    if opts.minutes:
        opts.steps = 0
    for name in ("steps", "batch_size", "crop_frames", "eval_every"):
        if name == "steps" and opts.minutes:
            continue
        if getattr(opts, name) < 1:
            return _err(f"--{name.replace('_', '-')} must be a positive integer")
    if opts.augment < 0:
        return _err("--augment must be >= 0")
    if not 0 <= opts.ema < 1:
        return _err(f"--ema must be in [0, 1), got {opts.ema:g}")
    if opts.hf_weight < 0 or opts.lsd_weight < 0 or opts.energy_weight < 0:
        return _err("--hf-weight, --lsd-weight and --energy-weight must be >= 0")
    if args.channels is not None and args.channels < 1:
        return _err("--channels must be a positive integer")
    if opts.crop_frames < 8:
        return _err("--crop-frames must be at least 8")
    try:
        sources = []
        for a in args.audio:
            sources.extend(find_audio("demo", demo_split="train") if a == "demo-train" else find_audio(a))
        files = sorted(dict.fromkeys(sources))
        if args.holdout_files:
            if args.holdout is not None:
                return _err("pass --holdout or --holdout-files, not both")
            opts.holdout_files = [str(f) for a in args.holdout_files for f in find_audio(a)]
    except (FileNotFoundError, ValueError) as exc:
        return _err(exc)
    demo_eval = set()
    try:
        demo_eval = {p.resolve() for p in find_audio("demo", demo_split="eval")}
    except FileNotFoundError:
        pass
    if any(f.resolve() in demo_eval for f in files):
        sys.stderr.write("warning: training on bundled demo *eval* clips: their scores are no longer held out\n")
    try:
        vae = load_vae(args.model, device=args.device, dtype=args.dtype)
    except ModelLoadError as exc:
        return _err(exc)
    command = "vaelib train-restorer " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "train-restorer" else ""
    try:
        res = train_restorer(vae, files, args.out, kind=args.kind, conditional=args.conditional, opts=opts,
                             channels=args.channels, arch=args.arch, resume=args.resume, progress=not args.no_progress,
                             extend_steps=args.extend_steps,
                             command=command)
    except RestorerError as exc:
        return _err(exc)
    except OSError as exc:  # disk full, permissions: one line naming the path and the free space
        from ..runlock import storage_error

        return _err(storage_error(exc.filename or args.out, exc))
    except KeyboardInterrupt:
        _err(f"interrupted; resume with --resume --out {args.out}")
        return 130
    held = (res["eval"] or {}).get("heldout")
    print(f"restorer: {res['folder']} ({res['steps']} steps, {res['seconds'] / 60:.1f} min)")
    if held and held["mean"]:
        m = held["mean"]
        print(f"held-out ({m['clips']} clips): mel LSD-HF {m['lsd_hf_vae']:.4f} -> {m['lsd_hf_restored']:.4f} "
              f"({100 * m['lsd_hf_change']:+.1f} %), mel L1 {m['l1_vae']:.4f} -> {m['l1_restored']:.4f} "
              f"({100 * m['l1_change']:+.1f} %)")
    return 0
