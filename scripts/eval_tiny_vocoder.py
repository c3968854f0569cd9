"""Score a trained vocoder against Griffin-Lim on the demo eval clips (vocoder only: input log-mel → vocoder).

    python scripts/eval_tiny_vocoder.py /work/runs/vocoder_final            # writes <folder>/eval.json
    python scripts/eval_tiny_vocoder.py /work/runs/vocoder_final --json /tmp/e.json --audio some/folder

Prints a Markdown table per clip: LSD-HF and MR-STFT of Griffin-Lim (``load_vocoder("griffinlim")``) and of the
vocoder in ``<folder>/vocoder/``, the metric floor ``lsd_hf(x, x)``, and the wall seconds of each (1 thread by
default), then means and medians and the relative reductions ``1 - vocoder / GL``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    import torch

    from vaelib.audio import find_audio
    from vaelib.models import load_vocoder
    from vaelib.tiny_vocoder import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder holding vocoder/")
    ap.add_argument("--audio", default="demo", help="'demo' (the eval split) or a file/folder/list")
    ap.add_argument("--json", type=Path, default=None, help="output JSON (default <folder>/eval.json)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = find_audio(args.audio, demo_split="eval")
    voc = load_vocoder(str(args.folder), device="cpu", dtype=torch.float32)
    res = evaluate(voc, files, threads=args.threads)
    res["vocoder"] = str(args.folder / "vocoder")
    res["threads"] = args.threads
    out = args.json or args.folder / "eval.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))
    print(f"\nwrote {out}")
    return 0


def markdown(res: dict) -> str:
    """The per-clip table with mean and median rows."""
    head = ("| clip | s | floor LSD-HF | GL LSD-HF | voc LSD-HF | GL MR-STFT | voc MR-STFT | GL LSD | voc LSD "
            "| GL s | voc s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = ("seconds_audio", "lsd_hf_floor", "gl_lsd_hf", "voc_lsd_hf", "gl_mrstft", "voc_mrstft", "gl_lsd",
            "voc_lsd", "gl_seconds", "voc_seconds")

    def fmt(name, row):
        return f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |"

    lines += [fmt(r["clip"], r) for r in res["per_clip"]]
    lines.append(fmt("**mean**", res["mean"]))
    lines.append(fmt("**median**", res["median"]))
    m = res["mean"]
    lines.append("")
    lines.append(f"mean reduction vs GL: LSD-HF {100 * m['reduction_lsd_hf']:.1f} %, MR-STFT "
                 f"{100 * m['reduction_mrstft']:.1f} %, LSD {100 * m['reduction_lsd']:.1f} % (bar: ≥ 25 %)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
