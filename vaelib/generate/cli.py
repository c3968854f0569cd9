"""``vaelib generate``: text-to-audio with a diffusers AudioLDM2 / AudioLDM / MusicLDM pipeline, each prompt
written plain and enhanced from the same latents, with a comparison figure and an inert ``index.html``."""

from __future__ import annotations

import argparse
import sys

from .._util import one_line

__all__ = ["add_parser"]

_EPILOG = """\
enhancers: comma-separated registry names or presets, parameters after colons (as vaelib eval), e.g.
  --enhancers learned   --enhancers learned:strength=0.5,mel_shelf:shelf_db=3   --enhancers seed_frequency
examples:
  vaelib generate --model cvssp/audioldm2 --prompt "a dog barks" --enhancers learned --seed 0 --out gen/dog
  vaelib generate --model ~/snapshots/audioldm2 --prompts prompts.txt --enhancers frequency:gain=1.5 \\
      --device cuda --dtype float16 --out gen/batch
The whole pipeline is loaded (every component, not only vae/ + vocoder/): a Hugging Face id (from the HF cache
when HF_HUB_OFFLINE=1), a local snapshot or a save_pretrained folder; safetensors weights only.
exit status: 0 ok, 2 bad input.
"""


def _cli(args) -> int:
    from .run import GenerateError, generate_run, read_prompts

    try:
        prompts = read_prompts(args.prompt, args.prompts)
        page = generate_run(args.model, prompts, args.enhancers, out=args.out, seed=args.seed, steps=args.steps,
                            guidance=args.guidance, duration=args.duration, negative_prompt=args.negative_prompt,
                            device=args.device, dtype=args.dtype, allow_foreign_restorer=args.allow_foreign_restorer,
                            echo=print)
    except GenerateError as exc:
        sys.stderr.write(f"error: {one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; nothing was written for the prompts not finished\n")
        return 130
    print(f"page: {page}")
    return 0


def add_parser(subparsers, parser_class=argparse.ArgumentParser):
    """Register ``vaelib generate`` (called by :func:`vaelib.cli.build_parser`)."""
    p = subparsers.add_parser(
        "generate", help="text-to-audio with an AudioLDM2 pipeline, plain and enhanced from the same latents",
        description="Generate each prompt once with a diffusers AudioLDM2 / AudioLDM / MusicLDM pipeline and decode "
                    "the same latent twice: plainly and with the enhancers (vaelib.attach's stages). Writes the "
                    "WAVs, a comparison figure per prompt, run.json and an inert index.html with players.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cvssp/audioldm2", metavar="ID|PATH",
                   help="pipeline: Hugging Face repo id or local folder with model_index.json (default: "
                        "cvssp/audioldm2)")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a text prompt (repeatable)")
    p.add_argument("--prompts", default=None, metavar="FILE", help="a UTF-8 file with one prompt per line")
    p.add_argument("--enhancers", required=True, metavar="SPEC", help="enhancers: name[:key=value...],... (see below)")
    p.add_argument("--allow-foreign-restorer", action="store_true",
                   help="apply a learned restorer although it was trained for another VAE than the pipeline's")
    p.add_argument("--seed", type=int, default=0,
                   help="generator seed of every prompt, and the seed of stochastic enhancers (default 0)")
    p.add_argument("--steps", type=int, default=200, metavar="N", help="diffusion steps (default 200, as diffusers)")
    p.add_argument("--guidance", type=float, default=3.5, metavar="G", help="guidance scale (default 3.5)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds of audio (default: the pipeline's, 10.24 s for AudioLDM2)")
    p.add_argument("--negative-prompt", default=None, metavar="TEXT", help="negative prompt for every prompt")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="new run folder (default generations/<YYYYmmdd-HHMMSS>); a non-empty folder is refused")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="pipeline dtype (float16: CUDA only; enhancers run in float32 either way)")
    p.set_defaults(func=_cli)
    return p
