"""Build the real-recordings *test* and *selection* sets for the restorers (issue 17), content-checked.

Decided before any restorer of this round was trained or scored (2026-12-02), and never trained on:

* **test** (``<out>/test/``; reported, never used to choose anything) — Debian packages no earlier vaelib run read:

  - ``fillets-ng-data``: the game's recorded English voice lines (every 6th file of ``sound/*/en/``; real speech),
    its music (``music/``) and its shared sound effects (``sound/share/``; effects, many under 2 s);
  - ``singularity-music``: orchestral / ambient game music (full band);
  - ``asterisk-core-sounds-en-wav``: telephone prompts recorded at 8 kHz (every 40th file; real speech with *no*
    content above 4 kHz: the little-high-band case);
  - ``asterisk-moh-opsound-wav``: music on hold at 8 kHz (music with no high band).

* **selection** (``<out>/selection/``; the only set candidates and gate settings are chosen on):
  ``sound-theme-freedesktop`` (desktop event sounds and a recorded voice; used in earlier rounds as a test) and
  ``psi-plus-sounds`` (chat notification sounds).

Rules: each file is decoded, mixed to mono and resampled to 16 kHz; only its first 10.24 s are kept and files
shorter than 1 s are skipped (the check of issue 17 scores the first 10.24 s of each clip of at least 1 s).
Distinct recordings only: identical audio (SHA-256 of the 16 kHz PCM) is kept once, and a file whose maximum
normalised cross-correlation (at 4 kHz, :func:`max_xcorr`) with an already kept file of either set is ≥ 0.9 is
dropped as the same recording; a file that correlates ≥ 0.5 with any *training* file (the demo corpus's train
split and the restorer corpus ``--train``) is dropped and listed. File names start with the audio type
(``speech_``, ``music_``, anything else = other), which :func:`vaelib.categories.category_of` reads.

    apt-get install --no-install-recommends fillets-ng-data singularity-music asterisk-core-sounds-en-wav \\
        asterisk-moh-opsound-wav sound-theme-freedesktop psi-plus-sounds
    python scripts/make_realtest.py --out /tmp/realtest --train /tmp/rc3k

Writes ``manifest.csv`` (set, file, source package, original path, type, seconds, sha256) and ``dropped.csv``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import sys
from pathlib import Path

import numpy as np

SR = 16000
MAX_S = 10.24
MIN_S = 1.0

#: (set, package, glob, name prefix, keep every k-th file of the sorted glob)
SOURCES = (
    ("test", "fillets-ng-data", "/usr/share/games/fillets-ng/sound/*/en/*.ogg", "speech_fillets", 6),
    ("test", "fillets-ng-data", "/usr/share/games/fillets-ng/music/*.ogg", "music_fillets", 1),
    ("test", "fillets-ng-data", "/usr/share/games/fillets-ng/sound/share/*.ogg", "fx_fillets", 1),
    ("test", "singularity-music", "/usr/share/games/singularity/music/**/*.ogg", "music_singularity", 1),
    ("test", "asterisk-core-sounds-en-wav", "/usr/share/asterisk/sounds/en_US_f_Allison/*.wav", "speech_asterisk",
     40),
    ("test", "asterisk-moh-opsound-wav", "/usr/share/asterisk/moh/*.wav", "music_asterisk_moh", 1),
    ("selection", "sound-theme-freedesktop", "/usr/share/sounds/freedesktop/stereo/*.oga", "fd", 1),
    ("selection", "psi-plus-sounds", "/usr/share/psi-plus/sound/*.wav", "psi", 1),
)
#: freedesktop's recorded voice (``audio-channel-*``) is speech; its other sounds are "other".
SPEECH_NAMES = ("audio-channel",)


def load16k(path) -> np.ndarray:
    """Mono, 16 kHz, float32, first :data:`MAX_S` seconds."""
    from vaelib.audio import load_audio

    return load_audio(path, sr=SR)[: int(MAX_S * SR)]


def _env4k(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    y = resample_poly(x, 1, 4).astype(np.float64)
    y -= y.mean()
    return y / (np.linalg.norm(y) + 1e-12)


def max_xcorr(a: np.ndarray, b: np.ndarray) -> float:
    """``max_k |Σ_n a[n] b[n + k]| / (‖a‖ ‖b‖)`` of two unit-norm 4 kHz signals (FFT correlation, any lag)."""
    n = len(a) + len(b) - 1
    nfft = 1 << (n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(a, nfft) * np.conj(np.fft.rfft(b, nfft)), nfft)
    return float(np.abs(c).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="new folder (refused if it exists and is not empty)")
    ap.add_argument("--train", type=Path, nargs="*", default=[],
                    help="training corpus folders to check against (the demo train split is always checked)")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty; pass a new folder", file=sys.stderr)
        return 2
    import soundfile as sf

    from vaelib.audio import find_audio

    train_files = list(find_audio("demo", demo_split="train"))
    for folder in args.train:
        train_files += list(find_audio(folder))
    print(f"checking against {len(train_files)} training files", file=sys.stderr)
    train_env = [_env4k(load16k(p)) for p in train_files]
    kept, rows, dropped, hashes = [], [], [], {}
    for set_name, pkg, pattern, prefix, every in SOURCES:
        files = sorted(glob.glob(pattern, recursive=True))[::every]
        if not files:
            print(f"warning: nothing at {pattern} (apt-get install --no-install-recommends {pkg})", file=sys.stderr)
        for path in files:
            try:
                x = load16k(path)
            except ValueError as exc:
                dropped.append((set_name, path, f"unreadable: {exc}"))
                continue
            if len(x) < MIN_S * SR:
                dropped.append((set_name, path, f"shorter than {MIN_S:g} s"))
                continue
            digest = hashlib.sha256(np.round(x * 32767).astype(np.int16).tobytes()).hexdigest()
            if digest in hashes:
                dropped.append((set_name, path, f"same audio as {hashes[digest]}"))
                continue
            env = _env4k(x)
            same = next((k for k in kept if max_xcorr(env, k[2]) >= 0.9), None)
            if same is not None:
                dropped.append((set_name, path, f"same recording as {same[1]} (xcorr >= 0.9)"))
                continue
            pairs = zip(train_env, train_files, strict=True)
            worst = max((max_xcorr(env, t), str(p)) for t, p in pairs) if train_env else (0, "")
            if worst[0] >= 0.5:
                dropped.append((set_name, path, f"correlates {worst[0]:.2f} with training file {worst[1]}"))
                continue
            stem = Path(path).stem.lower().replace(" ", "_")
            pre = prefix
            if prefix == "fd":
                pre = "speech_fd" if stem.startswith(SPEECH_NAMES) else "fd"
            name = f"{pre}_{stem}.flac"
            out = args.out / set_name / name
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, x, SR, subtype="PCM_16")
            hashes[digest] = path
            kept.append((set_name, path, env))
            from vaelib.categories import category_of

            rows.append({"set": set_name, "file": f"{set_name}/{name}", "package": pkg, "source": path,
                         "type": category_of(out), "seconds": round(len(x) / SR, 2), "sha256": digest[:16],
                         "max_xcorr_train": round(worst[0], 3)})
            print(f"{set_name:9s} {name}", file=sys.stderr)
    with open(args.out / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(args.out / "dropped.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["set", "source", "why"])
        w.writerows(dropped)
    for s in ("test", "selection"):
        sel = [r for r in rows if r["set"] == s]
        kinds = {k: sum(r["type"] == k for r in sel) for k in sorted({r["type"] for r in sel})}
        short = sum(r["seconds"] < 2 for r in sel)
        print(f"{s}: {len(sel)} clips, {sum(r['seconds'] for r in sel) / 60:.1f} min, types {kinds}, "
              f"{short} under 2 s; dropped {sum(d[0] == s for d in dropped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
