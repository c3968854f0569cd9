"""Regenerate the bundled demo corpus (``vaelib/assets/demo``) from offline sources.

The corpus is built deterministically from three kinds of material:

* speech synthesised by ``espeak-ng`` (several voices and languages, sibilant-rich texts);
* music rendered by ``fluidsynth`` with ``FluidR3_GM.sf2`` from MIDI files written here with ``mido``;
* synthetic test signals made with ``numpy``/``scipy`` from fixed seeds.

Every clip is written as 16 kHz mono FLAC (PCM_16), 4-10 s long, peak-normalised to 0.9, into
``train/`` or ``eval/`` below the output directory, together with ``manifest.csv`` and ``PROVENANCE.md``.
Intermediate files (espeak WAVs, MIDI files, fluidsynth renders) live in a temporary directory;
nothing is written outside ``--out``.

Usage::

    python scripts/make_corpus.py [--out vaelib/assets/demo]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

SR = 16000
PEAK = 0.9
MIN_S, MAX_S = 4.0, 10.0
HIGH_HZ = 4000.0
SPEECH_MAX_S = 9.2  # speech content limit; 0.3 s of padding is added around it
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
APT_HINT = "apt-get install --no-install-recommends espeak-ng fluidsynth fluid-soundfont-gm"
DEB_PACKAGES = ("espeak-ng", "espeak-ng-data", "libespeak-ng1", "fluidsynth", "libfluidsynth3",
                "fluid-soundfont-gm")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "vaelib" / "assets" / "demo"
LICENCE_CC0 = "CC0-1.0"
LICENCE_MUSIC = "MIT"  # renders contain FluidR3_GM.sf2 samples (MIT, (c) Frank Wen)


# --------------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------------


def check_tools() -> None:
    """Exit with a one-line message if a required Debian package or Python module is missing.

    Raises
    ------
    SystemExit
        If ``espeak-ng``, ``fluidsynth``, the FluidR3 soundfont or ``mido`` is unavailable.
    """
    missing = [name for name, ok in (("espeak-ng", shutil.which("espeak-ng")),
                                     ("fluidsynth", shutil.which("fluidsynth")),
                                     ("fluid-soundfont-gm", SOUNDFONT.is_file())) if not ok]
    if missing:
        raise SystemExit(f"make_corpus: missing Debian package(s) {', '.join(missing)}; run: {APT_HINT}")
    try:
        import mido  # noqa: F401
    except ImportError as exc:
        raise SystemExit("make_corpus: missing Python package mido; run: pip install 'mido>=1.3'") from exc


def run_quiet(cmd: list[str]) -> None:
    """Run ``cmd``, raising with its stderr if it fails.

    Parameters
    ----------
    cmd : list of str
        Command and arguments.
    """
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")


def deb_versions(packages: tuple[str, ...] = DEB_PACKAGES) -> dict[str, str]:
    """Read installed Debian package versions with ``dpkg-query``.

    Parameters
    ----------
    packages : tuple of str
        Package names.

    Returns
    -------
    dict
        Package name to version (``"unknown"`` where it cannot be read).
    """
    out = {}
    for pkg in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                             check=False)
        out[pkg] = res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"
    return out


# --------------------------------------------------------------------------------------------------
# signal helpers
# --------------------------------------------------------------------------------------------------


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average channels of a ``(n, ch)`` array; pass 1-D arrays through as float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def trim_silence(x: np.ndarray, thresh: float = 1e-3, margin_s: float = 0.03) -> np.ndarray:
    """Remove leading/trailing samples below ``thresh`` times the peak, keeping a short margin.

    Parameters
    ----------
    x : np.ndarray
        Mono signal.
    thresh : float
        Threshold relative to the absolute peak.
    margin_s : float
        Margin kept on each side, in seconds.

    Returns
    -------
    np.ndarray
        Trimmed signal.
    """
    idx = np.flatnonzero(np.abs(x) > thresh * np.max(np.abs(x)))
    if idx.size == 0:
        return x
    m = int(margin_s * SR)
    return x[max(idx[0] - m, 0): idx[-1] + m + 1]


def fade(x: np.ndarray, fade_in_s: float = 0.01, fade_out_s: float = 0.05) -> np.ndarray:
    """Apply raised-cosine fades of the given lengths (seconds) at both ends."""
    x = x.copy()
    n_in, n_out = int(fade_in_s * SR), int(fade_out_s * SR)
    if n_in > 1:
        x[:n_in] *= 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_in))
    if n_out > 1:
        x[-n_out:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, n_out))
    return x


def fit_length(x: np.ndarray, seconds: float) -> np.ndarray:
    """Cut (with a fade-out) or zero-pad ``x`` to exactly ``seconds``."""
    n = int(round(seconds * SR))
    if len(x) >= n:
        return fade(x[:n], 0.0, 0.08)
    return np.concatenate([x, np.zeros(n - len(x))])


def normalise(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scale ``x`` so that its absolute peak equals ``peak``."""
    return x * (peak / np.max(np.abs(x)))


def high_band_fraction(x: np.ndarray, cutoff_hz: float = HIGH_HZ) -> float:
    """Fraction of the signal energy above ``cutoff_hz``.

    Parameters
    ----------
    x : np.ndarray
        Mono signal at ``SR``.
    cutoff_hz : float
        Cut-off frequency in Hz.

    Returns
    -------
    float
        Energy above the cut-off divided by total energy.
    """
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(power[freqs >= cutoff_hz].sum() / power.sum())


def band_noise(rng: np.random.Generator, n: int, lo: float | None, hi: float | None) -> np.ndarray:
    """Gaussian noise, optionally band-limited with an 8th-order Butterworth filter.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator.
    n : int
        Number of samples.
    lo, hi : float or None
        Pass-band edges in Hz (``None`` for no lower/upper edge).

    Returns
    -------
    np.ndarray
        Noise with unit-ish RMS.
    """
    x = rng.standard_normal(n)
    if lo is not None and hi is not None:
        sos = signal.butter(8, [lo, hi], btype="bandpass", fs=SR, output="sos")
    elif lo is not None:
        sos = signal.butter(8, lo, btype="highpass", fs=SR, output="sos")
    elif hi is not None:
        sos = signal.butter(8, hi, btype="lowpass", fs=SR, output="sos")
    else:
        return x
    y = signal.sosfilt(sos, x)
    return y / np.sqrt(np.mean(y**2))


# --------------------------------------------------------------------------------------------------
# speech (espeak-ng)
# --------------------------------------------------------------------------------------------------


def espeak(text: str, voice: str, speed: int, tmp: Path) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng and return it at ``SR``, silence trimmed.

    Parameters
    ----------
    text : str
        Sentence to speak.
    voice : str
        espeak-ng voice, e.g. ``"en-us+f3"``.
    speed : int
        Words per minute.
    tmp : Path
        Temporary directory for the WAV file.

    Returns
    -------
    np.ndarray
        Mono float signal at 16 kHz.
    """
    wav = tmp / "espeak.wav"
    run_quiet(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text])
    x, sr = sf.read(wav, dtype="float64")
    x = to_mono(x)
    if sr != SR:
        g = np.gcd(SR, sr)
        x = signal.resample_poly(x, SR // g, sr // g)
    return trim_silence(x)


def speech_clip(tmp: Path, voice: str, speed: int, sentences: tuple[str, ...], gap_s: float = 0.3,
                target_s: float = 6.0) -> np.ndarray:
    """Concatenate spoken sentences until the clip is at least ``target_s`` long (at most ``MAX_S``).

    Parameters
    ----------
    tmp : Path
        Temporary directory.
    voice : str
        espeak-ng voice.
    speed : int
        Words per minute.
    sentences : tuple of str
        Sentences, used in order (cycled if needed).
    gap_s : float
        Silence between sentences.
    target_s : float
        Stop adding sentences once this length is reached.

    Returns
    -------
    np.ndarray
        Speech signal between ``MIN_S`` and ``MAX_S`` seconds long.
    """
    gap = np.zeros(int(gap_s * SR))
    limit = int(SPEECH_MAX_S * SR)
    parts: list[np.ndarray] = []
    for i in range(4 * len(sentences)):
        if sum(map(len, parts)) >= target_s * SR:
            break
        seg = espeak(sentences[i % len(sentences)], voice, speed, tmp)
        if parts and sum(map(len, parts)) + len(gap) + len(seg) > limit:
            break
        parts.extend([gap, seg] if parts else [seg])
    x = np.concatenate(parts)
    if len(x) > limit:
        x = fit_length(x, SPEECH_MAX_S)
    x = np.concatenate([np.zeros(int(0.1 * SR)), x, np.zeros(int(0.2 * SR))])
    return fit_length(x, MIN_S) if len(x) < MIN_S * SR else x


# --------------------------------------------------------------------------------------------------
# music (mido + fluidsynth)
# --------------------------------------------------------------------------------------------------

DRUM_CH = 9
KICK, SNARE, SIDESTICK, CLAP = 36, 38, 37, 39
HH_CLOSED, HH_PEDAL, HH_OPEN = 42, 44, 46
CRASH, RIDE, RIDE_BELL, SPLASH, TAMBOURINE = 49, 51, 53, 55, 54
TOM_LO, TOM_MID, TOM_HI = 45, 47, 50
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


class Score:
    """Minimal multi-channel note list that can be written as a MIDI file.

    Parameters
    ----------
    bpm : float
        Tempo in beats per minute.
    tpb : int
        MIDI ticks per beat.
    """

    def __init__(self, bpm: float, tpb: int = 480) -> None:
        self.bpm = bpm
        self.tpb = tpb
        self.events: list[tuple[int, int, object]] = []  # (tick, order, message)

    def program(self, ch: int, prog: int) -> None:
        """Select General MIDI program ``prog`` (0-based) on channel ``ch``."""
        import mido

        self.events.append((0, 0, mido.Message("program_change", channel=ch, program=prog)))

    def note(self, ch: int, pitch: int, start: float, dur: float, vel: int) -> None:
        """Add a note starting at beat ``start`` lasting ``dur`` beats."""
        import mido

        on, off = int(round(start * self.tpb)), int(round((start + dur) * self.tpb))
        vel = int(np.clip(vel, 1, 127))
        self.events.append((on, 2, mido.Message("note_on", channel=ch, note=pitch, velocity=vel)))
        off_msg = mido.Message("note_off", channel=ch, note=pitch, velocity=0)
        self.events.append((max(off, on + 1), 1, off_msg))

    def save(self, path: Path) -> None:
        """Write a type-0 MIDI file to ``path``."""
        import mido

        mid = mido.MidiFile(type=0, ticks_per_beat=self.tpb)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm), time=0))
        now = 0
        for tick, _, msg in sorted(self.events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=self.tpb))
        mid.tracks.append(track)
        mid.save(path)


def chord_tones(root: int, scale: tuple[int, ...], degree: int) -> list[int]:
    """Triad on scale ``degree`` (0-based) above MIDI note ``root``."""
    out = []
    for k in (0, 2, 4):
        d = degree + k
        out.append(root + scale[d % 7] + 12 * (d // 7))
    return out


def add_melody(s: Score, rng: np.random.Generator, ch: int, root: int, scale: tuple[int, ...], bars: int,
               steps: tuple[float, ...] = (0.5, 0.5, 1.0), vel: tuple[int, int] = (70, 100)) -> None:
    """Random-walk melody on ``scale`` above ``root`` for ``bars`` bars of 4/4."""
    t, deg = 0.0, 7
    while t < 4 * bars - 0.01:
        dur = float(rng.choice(steps))
        deg = int(np.clip(deg + rng.integers(-2, 3), 3, 13))
        pitch = root + scale[deg % 7] + 12 * (deg // 7)
        s.note(ch, pitch, t, dur * 0.95, int(rng.integers(*vel)))
        t += dur


# Velocity per drum sound: cymbals forward, kick/snare/toms held back so that the drum clips carry a
# realistic (cymbal-heavy) share of energy above 4 kHz; FluidR3's hi-hats are ~14 dB quieter than its kick.
DRUM_LEVEL = {KICK: 78, SNARE: 84, SIDESTICK: 95, CLAP: 88, HH_CLOSED: 124, HH_PEDAL: 115, HH_OPEN: 112,
              CRASH: 112, RIDE: 120, RIDE_BELL: 105, SPLASH: 110, TAMBOURINE: 100, TOM_LO: 78, TOM_MID: 78,
              TOM_HI: 78}

# One bar of each style: (sound, onsets in beats). Hi-hat off-beats are played softer (see add_drums).
DRUM_PATTERNS = {
    "rock": ((HH_CLOSED, tuple(0.5 * k for k in range(8))), (KICK, (0.0, 2.0, 2.5)), (SNARE, (1.0, 3.0))),
    "hats16": ((HH_CLOSED, tuple(0.25 * k for k in range(16) if k % 4 != 2)), (HH_OPEN, (0.5, 1.5, 2.5, 3.5)),
               (KICK, (0.0, 1.75, 2.5)), (CLAP, (1.0,)), (SNARE, (3.0,)), (TAMBOURINE, (3.5,))),
    "ride": ((RIDE, (0.0, 1.0, 1.667, 2.0, 3.0, 3.667)), (RIDE_BELL, (2.0,)), (HH_PEDAL, (1.0, 3.0)),
             (SIDESTICK, (3.667,)), (KICK, (0.0,))),
    "disco": ((HH_CLOSED, (0.0, 1.0, 2.0, 3.0)), (HH_OPEN, (0.5, 1.5, 2.5, 3.5)),
              (KICK, (0.0, 1.0, 2.0, 3.0)), (CLAP, (1.0, 3.0))),
    "breaks": ((HH_CLOSED, tuple(0.5 * k for k in range(8))), (KICK, (0.0, 1.75, 2.5)),
               (SNARE, (1.0, 3.0, 3.75))),
}


def add_drums(s: Score, rng: np.random.Generator, bars: int, style: str) -> None:
    """Add a drum pattern on channel 10 (index 9) with a crash every other bar.

    Parameters
    ----------
    s : Score
        Score to extend.
    rng : np.random.Generator
        Random generator for velocity humanisation.
    bars : int
        Number of 4/4 bars.
    style : {"rock", "hats16", "ride", "disco", "breaks"}
        Pattern family; ``"breaks"`` alternates hi-hat and ride bars, adds splashes and tom fills.
    """
    def hit(pitch: int, beat: float, accent: int = 0) -> None:
        s.note(DRUM_CH, pitch, beat, 0.25, DRUM_LEVEL[pitch] + accent + int(rng.integers(-10, 6)))

    for bar in range(bars):
        b0 = 4.0 * bar
        if bar % 2 == 0:
            hit(CRASH, b0)
        for pitch, onsets in DRUM_PATTERNS[style]:
            if style == "breaks" and pitch == HH_CLOSED and bar % 2:
                pitch = RIDE
            for beat in onsets:
                hit(pitch, b0 + beat, -20 if pitch == HH_CLOSED and beat % 0.5 else 0)
        if style == "breaks" and bar % 2:
            hit(SPLASH, b0)
            for k, tom in enumerate((TOM_HI, TOM_MID, TOM_LO)):
                hit(tom, b0 + 3.0 + 0.25 * k)


def piece_piano(rng: np.random.Generator, bpm: float, root: int, scale: tuple[int, ...], prog: int,
                bars: int = 4) -> Score:
    """Melody plus left-hand arpeggiated chords on one (keyboard) program."""
    s = Score(bpm)
    s.program(0, prog)
    prog_degrees = (0, 4, 5, 3) if scale == MAJOR else (0, 5, 3, 4)
    for bar in range(bars):
        tones = chord_tones(root - 12, scale, prog_degrees[bar % 4])
        for k in range(8):
            pitch = tones[k % 3] + (12 if k % 4 == 3 else 0)
            s.note(0, pitch, 4 * bar + 0.5 * k, 0.5, 60 + int(rng.integers(0, 15)))
    add_melody(s, rng, 0, root, scale, bars)
    return s


def piece_strings(rng: np.random.Generator, bpm: float, root: int, scale: tuple[int, ...],
                  pad_prog: int, lead_prog: int, bars: int = 4) -> Score:
    """Sustained string-ensemble chords, a pad an octave below, and a slow lead melody."""
    s = Score(bpm)
    s.program(0, 48)
    s.program(1, pad_prog)
    s.program(2, lead_prog)
    for bar in range(bars):
        tones = chord_tones(root - 12, scale, (0, 5, 3, 4)[bar % 4])
        for p in tones:
            s.note(0, p, 4 * bar, 4.0, 75)
            s.note(1, p - 12, 4 * bar, 4.0, 60)
    add_melody(s, rng, 2, root, scale, bars, steps=(1.0, 1.0, 2.0), vel=(65, 90))
    return s


def piece_band(rng: np.random.Generator, bpm: float, root: int, scale: tuple[int, ...], bass_prog: int,
               chord_prog: int, lead_prog: int, drums: str, bars: int = 4) -> Score:
    """Bass, chord stabs, lead melody and drums."""
    s = Score(bpm)
    for ch, prog in ((0, bass_prog), (1, chord_prog), (2, lead_prog)):
        s.program(ch, prog)
    for bar in range(bars):
        tones = chord_tones(root - 12, scale, (0, 5, 3, 4)[bar % 4])
        for k in range(4):
            s.note(0, tones[0] - 12 + (7 if k == 2 else 0), 4 * bar + k, 0.9, 88)
        for beat in (0.5, 1.5, 2.5, 3.5):
            for p in tones:
                s.note(1, p + 12, 4 * bar + beat, 0.35, 64)
    add_melody(s, rng, 2, root, scale, bars, vel=(80, 105))
    add_drums(s, rng, bars, drums)
    return s


def piece_drums(rng: np.random.Generator, bpm: float, style: str, bars: int = 4) -> Score:
    """Drum kit only."""
    s = Score(bpm)
    add_drums(s, rng, bars, style)
    return s


def render_midi(score: Score, tmp: Path, seconds: float, dry: bool) -> np.ndarray:
    """Render ``score`` with fluidsynth at 16 kHz and return ``seconds`` of mono audio.

    Parameters
    ----------
    score : Score
        Music to render.
    tmp : Path
        Temporary directory for the MIDI and WAV files.
    seconds : float
        Clip length.
    dry : bool
        Disable fluidsynth's reverb and chorus.

    Returns
    -------
    np.ndarray
        Mono float signal.
    """
    mid, wav = tmp / "piece.mid", tmp / "piece.wav"
    score.save(mid)
    fx = ["-R", "0", "-C", "0"] if dry else []
    run_quiet(["fluidsynth", "-ni", "-q", "-g", "0.5", *fx, "-r", str(SR), "-O", "float", "-T", "wav",
               "-F", str(wav), str(SOUNDFONT), str(mid)])
    x, sr = sf.read(wav, dtype="float64")
    if sr != SR:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz, expected {SR}")
    return fit_length(to_mono(x), seconds)


def music_clip(tmp: Path, seed: int, builder: Callable[..., Score], seconds: float, dry: bool = False,
               **kw: object) -> np.ndarray:
    """Build a score with a seeded generator and render it."""
    return render_midi(builder(np.random.default_rng(seed), **kw), tmp, seconds, dry)


# --------------------------------------------------------------------------------------------------
# synthetic signals
# --------------------------------------------------------------------------------------------------


def synth_chirp(tmp: Path, f0: float, f1: float, seconds: float) -> np.ndarray:
    """Logarithmic sine sweep from ``f0`` to ``f1`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    return fade(signal.chirp(t, f0=f0, t1=t[-1], f1=f1, method="logarithmic", phi=-90.0), 0.02, 0.02)


def synth_bursts(tmp: Path, seed: int, seconds: float, bands: tuple[tuple[float | None, float | None], ...],
                 ) -> np.ndarray:
    """Noise bursts of random length/level separated by silence.

    Parameters
    ----------
    tmp : Path
        Unused (uniform clip-builder signature).
    seed : int
        Seed for the generator.
    seconds : float
        Clip length.
    bands : tuple of (lo, hi)
        Band edges for each burst, cycled; ``(None, None)`` is white noise.

    Returns
    -------
    np.ndarray
        Signal of ``seconds`` length.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    pos, k = int(0.1 * SR), 0
    while True:
        length = int(rng.uniform(0.04, 0.35) * SR)
        if pos + length > n - int(0.1 * SR):
            break
        lo, hi = bands[k % len(bands)]
        burst = band_noise(rng, length, lo, hi) * 10 ** (rng.uniform(-18, 0) / 20)
        env = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.004 * SR))
        x[pos: pos + length] = burst * env
        pos += length + int(rng.uniform(0.12, 0.4) * SR)
        k += 1
    return x


def synth_tone_noise(tmp: Path, seed: int, f0: float, seconds: float, noise_band: tuple[float, float],
                     noise_db: float, vibrato_hz: float = 0.0) -> np.ndarray:
    """Harmonic tone below 4 kHz plus band-limited noise in the high band.

    Parameters
    ----------
    tmp : Path
        Unused (uniform clip-builder signature).
    seed : int
        Seed for the noise.
    f0 : float
        Fundamental in Hz.
    seconds : float
        Clip length.
    noise_band : (float, float)
        Noise pass band in Hz.
    noise_db : float
        Noise RMS relative to the tone RMS, in dB.
    vibrato_hz : float
        Rate of a +-1 % vibrato (0 disables it).

    Returns
    -------
    np.ndarray
        Signal of ``seconds`` length.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    inst = f0 * (1.0 + 0.01 * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(inst) / SR
    tone = sum(np.sin(h * phase) / h for h in range(1, int(3900 // f0) + 1))
    tone /= np.sqrt(np.mean(tone**2))
    noise = band_noise(rng, len(t), *noise_band) * 10 ** (noise_db / 20)
    return fade(tone + noise, 0.02, 0.05)


# --------------------------------------------------------------------------------------------------
# corpus definition
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One corpus entry.

    Attributes
    ----------
    name : str
        File stem.
    split : str
        ``"train"`` or ``"eval"``.
    kind : str
        ``"speech"``, ``"music"`` or ``"synthetic"``.
    source : str
        Generator and settings (espeak-ng voice, fluidsynth programs, numpy).
    description : str
        Human-readable description.
    render : Callable[[Path], np.ndarray]
        Builds the signal given a temporary directory.
    bright : bool
        Expected to carry more than 20 % of its energy above 4 kHz.
    """

    name: str
    split: str
    kind: str
    source: str
    description: str
    render: Callable[[Path], np.ndarray]
    bright: bool = False

    @property
    def file(self) -> str:
        """Relative path of the FLAC file."""
        return f"{self.split}/{self.name}.flac"

    @property
    def licence(self) -> str:
        """Licence of the rendered audio."""
        return LICENCE_MUSIC if self.kind == "music" else LICENCE_CC0


SPEECH = (
    # name, split, voice, speed, sentences, description
    ("speech_en_us_m3", "train", "en-us+m3", 150,
     ("So if she sells shells on the seashore, I'm sure she sells seashore shells.",
      "She sells sea shells by the sea shore.", "The shells she sells are surely seashells."),
     "American English, male variant m3, 'she sells sea shells'"),
    ("speech_en_gb_rp_f3", "train", "en-gb-x-rp+f3", 145,
     ("Sixty-six sick chicks sat in six small sacks.", "Six thick thistle sticks.",
      "Susie's sister sews sheets for sixty soldiers."),
     "British English (RP), female variant f3, 'sixty-six sick chicks'"),
    ("speech_de_m2", "train", "de+m2", 150,
     ("Fischers Fritz fischt frische Fische, frische Fische fischt Fischers Fritz.",
      "Zwischen zwei Zwetschgenzweigen sitzen zwei zwitschernde Schwalben."),
     "German, male variant m2, 'Fischers Fritz', 'Zwetschgenzweigen'"),
    ("speech_fr_f2", "train", "fr-fr+f2", 150,
     ("Les chaussettes de l'archiduchesse sont-elles sèches, archi-sèches ?",
      "Un chasseur sachant chasser doit savoir chasser sans son chien."),
     "French, female variant f2, 'les chaussettes de l'archiduchesse'"),
    ("speech_es_m1", "train", "es+m1", 155,
     ("Tres tristes tigres tragaban trigo en un trigal.",
      "El cielo está enladrillado, ¿quién lo desenladrillará?",
      "Si Sansón no sazona su salsa con sal, le sale sosa."),
     "Spanish, male variant m1, 'tres tristes tigres', 'Sansón ... salsa con sal'"),
    ("speech_it_f5", "train", "it+f5", 150,
     ("Sopra la panca la capra campa, sotto la panca la capra crepa.",
      "Sei sciocche sciarpe di seta.", "Trentatré trentini entrarono a Trento."),
     "Italian, female variant f5, 'sopra la panca', 'sei sciocche sciarpe'"),
    ("speech_en_us_f4", "eval", "en-us+f4", 150,
     ("Silly Sally swiftly shooed seven silly sheep.",
      "The seven silly sheep Silly Sally shooed shilly-shallied south.",
      "Specific Pacific species hiss softly."),
     "American English, female variant f4, 'silly Sally ... seven silly sheep' (eval-only text)"),
    ("speech_en_scotland_m5", "eval", "en-gb-scotland+m5", 140,
     ("Which wristwatches are Swiss wristwatches?", "Fresh French fried fish fillets sizzle.",
      "Sixty-six thousand sixty-six sausages."),
     "Scottish English, male variant m5, 'Swiss wristwatches' (eval-only text)"),
)


def speech_clips() -> list[Clip]:
    """Speech clips rendered by espeak-ng."""
    return [Clip(name, split, "speech", f"espeak-ng -v {voice} -s {speed}", desc,
                 partial(speech_clip, voice=voice, speed=speed, sentences=sents))
            for name, split, voice, speed, sents, desc in SPEECH]


def music_clips() -> list[Clip]:
    """Music clips rendered by fluidsynth from seeded MIDI."""
    c = [
        ("music_piano", "train", "fluidsynth GM 0 (acoustic grand piano)",
         "piano melody over arpeggiated chords, C major, 100 bpm", 11, piece_piano, 8.0, False, False,
         dict(bpm=100, root=72, scale=MAJOR, prog=0)),
        ("music_strings_pad", "train", "fluidsynth GM 48 (strings), 89 (warm pad), 73 (flute)",
         "string chords + pad + flute melody, A minor, 80 bpm", 12, piece_strings, 8.0, False, False,
         dict(bpm=80, root=69, scale=MINOR, pad_prog=89, lead_prog=73)),
        ("music_band_rock", "train", "fluidsynth GM 33 (bass), 29 (overdrive gtr), 81 (saw lead), drums ch10",
         "band groove: bass, guitar stabs, lead, rock kit with closed hi-hats/crash, E minor, 120 bpm", 13,
         piece_band, 8.0, False, False, dict(bpm=120, root=64, scale=MINOR, bass_prog=33, chord_prog=29,
                                             lead_prog=81, drums="rock")),
        ("music_band_disco", "train", "fluidsynth GM 38 (synth bass), 4 (e-piano), 56 (trumpet), drums ch10",
         "disco groove: synth bass, e-piano, trumpet, open/closed hi-hats and claps, F major, 118 bpm", 14,
         piece_band, 8.0, False, False, dict(bpm=118, root=65, scale=MAJOR, bass_prog=38, chord_prog=4,
                                             lead_prog=56, drums="disco")),
        ("drums_rock", "train", "fluidsynth drums ch10 (standard kit)",
         "rock kit: kick, snare, closed hi-hat (42) eighths, crash (49), dry", 15, piece_drums, 6.0, True,
         True, dict(bpm=110, style="rock")),
        ("drums_ride_jazz", "train", "fluidsynth drums ch10 (standard kit)",
         "jazz ride (51) pattern with bell (53), pedal hi-hat (44), side-stick", 16, piece_drums, 6.0, False,
         True, dict(bpm=140, style="ride")),
        ("drums_breaks", "train", "fluidsynth drums ch10 (standard kit)",
         "breakbeat: kick/snare syncopation, hi-hat/ride alternating bars, crash+splash, tom fills, dry", 17,
         piece_drums, 6.0, True, True, dict(bpm=125, style="breaks")),
        ("music_harpsichord", "eval", "fluidsynth GM 6 (harpsichord)",
         "harpsichord melody over arpeggiated chords, D minor, 96 bpm (eval-only seed)", 21, piece_piano, 7.0,
         False, False, dict(bpm=96, root=74, scale=MINOR, prog=6)),
        ("music_band_hats", "eval",
         "fluidsynth GM 34 (picked bass), 27 (clean gtr), 65 (alto sax), drums ch10",
         "band groove: bass, clean guitar, alto sax, 16th closed + open hi-hats (42/46), crash, G major, "
         "105 bpm (eval-only seed)", 22, piece_band, 8.0, False, False,
         dict(bpm=105, root=67, scale=MAJOR, bass_prog=34, chord_prog=27, lead_prog=65, drums="hats16")),
        ("drums_hats16", "eval", "fluidsynth drums ch10 (standard kit)",
         "16th closed hi-hats with open hi-hat (46), crash (49), clap, tambourine, dry (eval-only seed)", 23,
         piece_drums, 6.0, True, True, dict(bpm=100, style="hats16")),
    ]
    return [Clip(name, split, "music", src, desc,
                 partial(music_clip, seed=seed, builder=builder, seconds=secs, dry=dry, **kw), bright)
            for name, split, src, desc, seed, builder, secs, dry, bright, kw in c]


def synthetic_clips() -> list[Clip]:
    """Seeded numpy/scipy test signals."""
    hp = ((4000.0, None),)
    return [
        Clip("chirp_log_down_8000_50", "train", "synthetic", "numpy/scipy.signal.chirp",
             "logarithmic sine sweep 8 kHz -> 50 Hz, 5 s",
             partial(synth_chirp, f0=7999.0, f1=50.0, seconds=5.0)),
        Clip("noise_bursts_white", "train", "synthetic", "numpy (seed 31)",
             "white-noise bursts 40-350 ms, levels 0 to -18 dB, silence between", partial(
                 synth_bursts, seed=31, seconds=4.5, bands=((None, None),)), True),
        Clip("noise_bursts_highpass", "train", "synthetic", "numpy (seed 32)",
             "high-passed (>4 kHz) noise bursts 40-350 ms, silence between",
             partial(synth_bursts, seed=32, seconds=4.5, bands=hp), True),
        Clip("tone_330_noise_5k_8k", "train", "synthetic", "numpy (seed 33)",
             "330 Hz harmonic tone (1/h, <3.9 kHz) with 5 Hz vibrato + 5-7.9 kHz band noise at -4 dB",
             partial(synth_tone_noise, seed=33, f0=330.0, seconds=5.0, noise_band=(5000.0, 7900.0),
                     noise_db=-4.0, vibrato_hz=5.0), True),
        Clip("tone_110_noise_4k_6k", "train", "synthetic", "numpy (seed 34)",
             "110 Hz harmonic tone (1/h, <3.9 kHz) + 4-6 kHz band noise at -12 dB",
             partial(synth_tone_noise, seed=34, f0=110.0, seconds=5.0, noise_band=(4000.0, 6000.0),
                     noise_db=-12.0)),
        Clip("chirp_log_50_8000", "eval", "synthetic", "numpy/scipy.signal.chirp",
             "logarithmic sine sweep 50 Hz -> 8 kHz, 6 s",
             partial(synth_chirp, f0=50.0, f1=7999.0, seconds=6.0)),
        Clip("tone_220_noise_4k_8k", "eval", "synthetic", "numpy (seed 41)",
             "220 Hz harmonic tone (1/h, <3.9 kHz) + 4-7.9 kHz band noise at -3 dB",
             partial(synth_tone_noise, seed=41, f0=220.0, seconds=6.0, noise_band=(4000.0, 7900.0),
                     noise_db=-3.0), True),
        Clip("noise_bursts_mixed", "eval", "synthetic", "numpy (seed 42)",
             "noise bursts cycling white / >4 kHz / 2-6 kHz / <2 kHz bands, silence between",
             partial(synth_bursts, seed=42, seconds=4.5,
                     bands=((None, None), (4000.0, None), (2000.0, 6000.0), (None, 2000.0))), True),
    ]


def all_clips() -> list[Clip]:
    """The full corpus definition."""
    return speech_clips() + music_clips() + synthetic_clips()


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------


def write_clip(clip: Clip, x: np.ndarray, out: Path) -> float:
    """Normalise, validate and write ``x`` as 16-bit FLAC; return its duration in seconds."""
    x = normalise(x)
    dur = len(x) / SR
    if not MIN_S <= dur <= MAX_S:
        raise RuntimeError(f"{clip.file}: duration {dur:.2f} s outside [{MIN_S}, {MAX_S}]")
    sf.write(out / clip.file, x.astype(np.float32), SR, format="FLAC", subtype="PCM_16")
    return dur


def write_manifest(rows: list[dict[str, object]], out: Path) -> None:
    """Write ``manifest.csv``."""
    cols = ["file", "split", "kind", "source", "duration_s", "sr", "licence", "description"]
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


PROVENANCE = """# Demo corpus provenance

Small, fully synthetic, offline demo corpus for measuring the AudioLDM2 VAE round trip
(16 kHz audio -> 64-bin log-mel -> VAE -> mel -> vocoder). All clips are 16 kHz mono FLAC
(PCM_16), 4-10 s long, peak-normalised to 0.9 (about -0.9 dBFS). `manifest.csv` lists every clip
with its split, kind, source settings, duration, sample rate and licence.

## Regenerate

```bash
apt-get install --no-install-recommends espeak-ng fluidsynth fluid-soundfont-gm
pip install -e '.[dev]'          # numpy, scipy, soundfile, mido
python scripts/make_corpus.py --out vaelib/assets/demo
```

The script is deterministic (fixed seeds, fixed texts, fixed MIDI). Byte-identical output needs the
same package versions as below; other versions give near-identical audio.

## Sources

* **speech** - `espeak-ng` formant synthesiser; voices and speeds are listed in `manifest.csv`. Its
  22050 Hz output is resampled to 16 kHz with `scipy.signal.resample_poly(320, 441)`. espeak-ng is
  GPL-3.0-or-later; the GPL covers the program, not the audio it produces.
* **music** - MIDI written by `scripts/make_corpus.py` with `mido` from fixed seeds (temporary files,
  not kept), rendered at 16 kHz by `fluidsynth` (LGPL-2.1-or-later) with the General MIDI soundfont
  `/usr/share/sounds/sf2/FluidR3_GM.sf2` (MIT, notice below). General MIDI program numbers in
  `manifest.csv` are 0-based (0 = acoustic grand piano). Drum clips use channel 10 (closed/open/pedal
  hi-hat 42/46/44, ride 51/53, crash 49, splash 55, snare, clap, kick, toms); "dry" clips use `-R 0 -C 0`.
* **synthetic** - seeded `numpy`/`scipy` signals: logarithmic chirps, white / high-passed / band-passed
  noise bursts, harmonic tones plus band-limited noise in the 4-8 kHz band. Code under the project's
  licence (MIT).

The corpus audio is released under **CC0-1.0** (speech and synthetic clips) and **MIT** (music clips,
because they are built from the MIT-licensed FluidR3_GM samples). The MIDI compositions themselves
are CC0-1.0.

## Debian packages used

| package | version |
|---|---|
{deb_rows}

Python: {py_versions}.

## FluidR3_GM.sf2 licence notice

Fluid (R3) General MIDI SoundFont, Copyright (c) 2000-2002, 2008 Frank Wen, Copyright (c) 2008 Toby
Smithe. Released under the MIT license: Permission is hereby granted, free of charge, to any person
obtaining a copy of this software and associated documentation files (the "Software"), to deal in the
Software without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software. THE SOFTWARE
IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL
THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def python_versions() -> str:
    """Versions of the Python packages that shape the output."""
    from importlib.metadata import version

    pkgs = ", ".join(f"{name} {version(name)}" for name in ("numpy", "scipy", "soundfile", "mido"))
    return f"{pkgs} (libsndfile {sf.__libsndfile_version__})"


def write_provenance(out: Path) -> dict[str, str]:
    """Write ``PROVENANCE.md`` and return the Debian package versions it records."""
    versions = deb_versions()
    rows = "\n".join(f"| `{pkg}` | `{ver}` |" for pkg, ver in versions.items())
    text = PROVENANCE.replace("{deb_rows}", rows).replace("{py_versions}", python_versions())
    (out / "PROVENANCE.md").write_text(text, encoding="utf-8")
    return versions


def prepare_out(out: Path) -> None:
    """Create ``out/train`` and ``out/eval`` and remove stale FLAC files there."""
    for split in ("train", "eval"):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.flac"):
            old.unlink()


def build(out: Path) -> list[dict[str, object]]:
    """Render every clip into ``out`` and write the manifest and provenance.

    Parameters
    ----------
    out : Path
        Output directory.

    Returns
    -------
    list of dict
        Manifest rows, each with an extra ``hf`` key (energy fraction above 4 kHz).
    """
    clips = all_clips()
    names = [c.name for c in clips]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate clip names")
    prepare_out(out)
    rows = []
    with tempfile.TemporaryDirectory(prefix="make_corpus_") as tmpdir:
        for clip in clips:
            x = clip.render(Path(tmpdir))
            dur = write_clip(clip, x, out)
            hf = high_band_fraction(x)
            rows.append(dict(file=clip.file, split=clip.split, kind=clip.kind, source=clip.source,
                             duration_s=f"{dur:.3f}", sr=SR, licence=clip.licence,
                             description=clip.description, hf=hf, bright=clip.bright))
    write_manifest([{k: v for k, v in r.items() if k not in ("hf", "bright")} for r in rows], out)
    return rows


def report(rows: list[dict[str, object]], out: Path, versions: dict[str, str]) -> int:
    """Print per-clip high-band energy and total size; return the number of failed brightness checks."""
    failures = 0
    print(f"{'file':40s} {'kind':9s} {'dur_s':>6s} {'kB':>6s} {'E>4k':>6s}")
    for r in rows:
        size = (out / str(r["file"])).stat().st_size
        flag = ""
        if r["bright"] and float(r["hf"]) < 0.2:
            flag, failures = "  <-- expected > 20 %", failures + 1
        print(f"{r['file']!s:40s} {r['kind']!s:9s} {float(r['duration_s']):6.2f} {size / 1e3:6.1f} "
              f"{100 * float(r['hf']):5.1f}%{flag}")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    n_train = sum(r["split"] == "train" for r in rows)
    print(f"{len(rows)} clips ({n_train} train, {len(rows) - n_train} eval); total size {total / 1e6:.2f} MB")
    print("debian: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if total > 5.5e6:
        print("warning: corpus larger than 5.5 MB", file=sys.stderr)
        failures += 1
    return failures


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    args = ap.parse_args(argv)
    check_tools()
    out = args.out.resolve()
    rows = build(out)
    versions = write_provenance(out)
    return 1 if report(rows, out, versions) else 0


if __name__ == "__main__":
    sys.exit(main())
