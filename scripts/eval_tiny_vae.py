"""Score a mel VAE on the demo corpus's eval clips and (for the bundled model) refresh its model card numbers.

    python scripts/eval_tiny_vae.py          # bundled model → vaelib/assets/tiny_vae/{eval.json,MODEL_CARD.md}
    python scripts/eval_tiny_vae.py --model /tmp/tv --out /tmp/tv_eval.json

Numbers: mean mel L1 (natural-log mel) of the VAE round trip vs. a naive codec (4×4 average pool of the log-mel,
bilinear upsampling back); per-band mel error in dB below / above 4 kHz, of the VAE and of the naive codec; and a
listening proxy, the LSD of VAE + Griffin-Lim and of mel projection + Griffin-Lim against the input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_markdown(res: dict, train_meta: dict | None) -> str:
    m = res["mean"]
    lines = [
        START,
        "| clip | mel L1 VAE | mel L1 naive 4×4 | err dB <4 kHz | err dB 4–8 kHz | naive err dB <4 kHz "
        "| naive err dB 4–8 kHz | LSD mel-proj+GL | LSD VAE+GL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["per_clip"]:
        lines.append(f"| {r['clip']} | {r['mel_l1_vae']:.3f} | {r['mel_l1_naive']:.3f} "
                     f"| {r['mel_err_db_below_4k']:.2f} | {r['mel_err_db_above_4k']:.2f} "
                     f"| {r['naive_err_db_below_4k']:.2f} | {r['naive_err_db_above_4k']:.2f} "
                     f"| {r['lsd_projection']:.3f} | {r['lsd_vae']:.3f} |")
    lines.append(f"| **mean** | **{m['mel_l1_vae']:.3f}** | **{m['mel_l1_naive']:.3f}** | "
                 f"**{m['mel_err_db_below_4k']:.2f}** | **{m['mel_err_db_above_4k']:.2f}** | "
                 f"**{m['naive_err_db_below_4k']:.2f}** | **{m['naive_err_db_above_4k']:.2f}** | "
                 f"**{m['lsd_projection']:.3f}** | **{m['lsd_vae']:.3f}** |")
    lines += [
        "",
        f"- Mel L1 reduction vs. the naive codec: **{100 * m['l1_reduction_vs_naive']:.1f} %** "
        f"(acceptance: ≥ 30 %) — {'met' if m['l1_reduction_vs_naive'] >= 0.30 else 'NOT met'}.",
        f"- Per-band mel error above 4 kHz ({m['mel_err_db_above_4k']:.2f} dB) "
        f"{'exceeds' if m['hf_error_exceeds_lf'] else 'does not exceed'} the error below 4 kHz "
        f"({m['mel_err_db_below_4k']:.2f} dB).",
        f"- The band-agnostic naive codec errs {m['naive_err_db_below_4k']:.2f} dB below and "
        f"{m['naive_err_db_above_4k']:.2f} dB above 4 kHz; the VAE still makes "
        f"{100 * m['err_vs_naive_below_4k']:.0f} % of that error below and {100 * m['err_vs_naive_above_4k']:.0f} % "
        "above 4 kHz.",
        f"- Mel energy kept by the VAE (decoded / input): low {m['mel_ber_low']:.2f}, mid {m['mel_ber_mid']:.2f}, "
        f"high {m['mel_ber_high']:.2f}.",
        f"- Listening proxy: LSD of VAE + Griffin-Lim {m['lsd_vae']:.3f} vs. {m['lsd_projection']:.3f} for the "
        "input mel through Griffin-Lim alone (the vocoder's own floor).",
    ]
    if train_meta:
        lines.append(f"- Training: {train_meta['train']['steps']} steps, {train_meta['train_minutes']} min "
                     f"on this machine, final train L1 {train_meta['final']['l1']:.4f}, "
                     f"scaling_factor {train_meta['scaling_factor']:.4f}, {train_meta['parameters']:,} parameters.")
    lines.append(END)
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    import vaelib
    from vaelib._util import save_json
    from vaelib.assets import bundled_model_dir
    from vaelib.tiny_vae import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: <model>/eval.json)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--audio", default=None, metavar="PATH",
                    help="score these files / this folder instead of the demo eval clips (e.g. the real recordings of "
                         "scripts/make_realtest.py: issue 3's bar is stated on real audio); needs --out, and the "
                         "model card is left alone")
    args = ap.parse_args(argv)
    if args.audio is not None and args.out is None:
        print("error: --audio needs --out (the model's eval.json is the demo eval clips' scores)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    vae = vaelib.load_vae(args.model, device="cpu")
    vocoder = vaelib.load_vocoder("griffinlim", device="cpu")
    files = vaelib.find_audio(args.audio) if args.audio is not None else vaelib.find_audio("demo", demo_split="eval")
    res = evaluate(vae, files, vocoder=vocoder)
    out = args.out or Path(args.model) / "eval.json"
    save_json(out, res)
    if args.audio is not None:
        print(f"mel L1 {res['mean']['mel_l1_vae']:.4f} vs naive 4x4 {res['mean']['mel_l1_naive']:.4f} "
              f"({100 * res['mean']['l1_reduction_vs_naive']:.1f} % lower) over {len(files)} files; wrote {out}")
        return 0
    meta_path = Path(args.model) / "train_config.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    table = results_markdown(res, meta)
    card = Path(args.model) / "MODEL_CARD.md"
    if card.exists() and START in card.read_text():
        card.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: table, card.read_text(),
                               flags=re.S))
        print(f"updated {card}")
    print(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
