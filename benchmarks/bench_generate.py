"""What vaelib.attach costs per generation: the plain pipeline vs. the same pipeline with enhancers attached.

    python benchmarks/bench_generate.py                          # tiny random AudioLDM2 pipeline, CPU, 2 threads
    python benchmarks/bench_generate.py --real-size              # also AudioLDM2-size UNet / VAE / vocoder (random)
    python benchmarks/bench_generate.py --device cuda --real-size --steps 200

Two rows per enhancer set, each the median of --repeat runs after one warm-up:

* ``generation`` — ``pipe(prompt, num_inference_steps=steps)`` with the enhancers attached (``none`` = the plain
  pipeline, no hook installed);
* ``post-processing`` — what the hook changes: scaled latent → [latent stage] → ``vae.decode`` → [mel stage] →
  vocoder (:func:`vaelib.generate.run.decode`), for one latent of the pipeline's default length;
* ``enhancers alone`` — the enhancers' own work on that latent and its decoded mel (``run_stage``): the cost the
  hook adds, without the decode and vocoder time it shares with the plain pipeline.

The sets are timed interleaved (each repeat runs every set once), so load drift hits them alike.

Tiny = :func:`vaelib.generate.tiny.tiny_audioldm2` around the bundled VAE (0.32 s of audio). Real size = AudioLDM2's
UNet widths, VAE and HiFi-GAN configs with random weights (10.24 s of audio) and the bundled restorers (which only
fit the bundled VAE: ``allow_foreign_restorer=True``, timing only). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETS = {"none": None, "frequency": "frequency", "learned": "learned", "seed_hybrid+learned": ["seed_hybrid", "learned"]}


def _timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench(pipe, label, steps, repeat, device, generation=True):
    """Interleaved: every repeat times each enhancer set once, so load drift on a shared machine hits all alike."""
    import vaelib
    from vaelib.generate.hook import plan, run_stage
    from vaelib.generate.run import audio_length, decode, diffuse

    z = diffuse(pipe, "a dog barks", steps=1)
    mel, _ = decode(pipe, z, None, length=audio_length(pipe))
    length = audio_length(pipe)
    hooks = {name: plan(pipe, enh, allow_foreign_restorer=True) if enh else None for name, enh in SETS.items()}
    jobs = {}
    for name, hook in hooks.items():
        jobs[(name, "post")] = lambda hook=hook: decode(pipe, z, hook, length=length)
        jobs[(name, "stages")] = (lambda hook=hook: hook and (run_stage(hook.latent, z, seed=0),
                                                              run_stage(hook.mel, mel, seed=0)))
        if generation:
            def gen(enh=SETS[name]):
                vaelib.attach(pipe, enh, allow_foreign_restorer=True)
                pipe("a dog barks", num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
                vaelib.detach(pipe)
            jobs[(name, "gen")] = gen
    times = {k: [] for k in jobs}
    for fn in jobs.values():  # warm-up
        fn()
    for _ in range(repeat):
        for k, fn in jobs.items():
            times[k].append(_timed(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in SETS:
        gen = (f"{med[(name, 'gen')]:.3f} s ({med[(name, 'gen')] / med[('none', 'gen')]:.2f}x)" if generation
               else "not run")
        print(f"| {label} | {name} | {gen} | {med[(name, 'post')]:.3f} s "
              f"({med[(name, 'post')] / med[('none', 'post')]:.2f}x) | {med[(name, 'stages')]:.4f} s |", flush=True)
    return med


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="diffusion steps of the generation rows (default 2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real-size", action="store_true", help="also AudioLDM2-size random components")
    ap.add_argument("--real-size-generation", action="store_true",
                    help="with --real-size, also time whole generations (slow on CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    from vaelib.generate.compat import fix_language_model
    from vaelib.generate.tiny import tiny_audioldm2

    print(f"torch {torch.__version__}, {device}, {args.threads} threads, {args.steps} steps, median of "
          f"{args.repeat}")
    print("| pipeline | enhancers | generation | post-processing | enhancers alone |\n|---|---|---|---|---|")
    pipe = tiny_audioldm2().to(device)
    fix_language_model(pipe)
    bench(pipe, "tiny (0.32 s)", args.steps, args.repeat, device)
    if args.real_size:
        del pipe
        pipe = tiny_audioldm2(vae="audioldm2", size="audioldm2").to(device)
        fix_language_model(pipe)
        bench(pipe, "AudioLDM2-size (10.24 s)", args.steps, args.repeat, device,
              generation=args.real_size_generation or device.type == "cuda")


if __name__ == "__main__":
    main()
