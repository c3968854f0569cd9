"""Audio I/O and the training-matched AudioLDM2 front end.

The front end follows the AudioLDM training code (haoheliu/AudioLDM-training-finetuning,
``audioldm_train/utilities/data/dataset.py``: ``normalize_wav``, ``mel_spectrogram_train``, ``pad_spec``),
which is what the VAE learned on:

1. mono (mean of channels), resample to 16 kHz;
2. ``x = x - mean(x)``; ``x = x / (max|x| + 1e-8) * 0.5`` (peak 0.5);
3. reflect-pad ``(n_fft - hop) // 2`` samples each side, ``torch.stft(center=False)`` with a periodic Hann
   window, magnitude ``|X|`` (not power);
4. ``mel = librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) @ |X|`` (Slaney scale and norm);
5. ``log(clamp(mel, min=1e-5))`` (natural log), layout ``(batch, 1, time, n_mels)``.

One deliberate difference: when a clip is shorter than the target length the original code zero-pads the
*log-mel* (log 0 = magnitude 1, a loud floor). We pad the *waveform* with zeros instead, so padding is
digital silence (log-mel -11.5129).
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ._util import one_line as _one_line

__all__ = [
    "AUDIO_EXTENSIONS",
    "MelConfig",
    "load_audio",
    "normalize",
    "save_audio",
    "pad_to_multiple",
    "wav_to_mel",
    "find_audio",
    "write_audio_list",
    "is_eval_run_folder",
    "MIN_SAMPLE_RATE",
]

#: File extensions :func:`find_audio` treats as audio (anything libsndfile reads).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")

#: Extensions :func:`find_audio` reads as a list of audio paths, one per line.
LIST_EXTENSIONS = (".lst",)

LOG_CLAMP = 1e-5

#: Lowest sample rate :func:`load_audio` accepts (Hz). Below it a file is almost surely mislabelled (a 1 Hz header
#: would be resampled to 16000 times its length: 50 samples become 50 s of audio).
MIN_SAMPLE_RATE = 4000


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Parameters of the log-mel front end.

    Defaults are AudioLDM2's 16 kHz configuration (docs/reference.md §1). Use :meth:`audioldm2` or :meth:`audioldm_48k`
    for the named presets.

    Attributes
    ----------
    sr : int
        Sample rate in Hz.
    n_fft, win_length, hop_length : int
        STFT size, window length and hop in samples.
    n_mels : int
        Number of mel bins.
    fmin, fmax : float
        Mel filter bank range in Hz (``fmax <= sr / 2``).
    time_multiple : int
        Number of frames must be a multiple of this (the VAE downsamples time twice by 2 → 4).
    """

    sr: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    time_multiple: int = 4

    def __post_init__(self):
        problems = []
        for name in ("sr", "n_fft", "win_length", "hop_length", "n_mels", "time_multiple"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer (got {value!r})")
        if not problems:
            if self.win_length > self.n_fft:
                problems.append(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
            if self.hop_length > self.win_length:
                problems.append(f"hop_length ({self.hop_length}) must be <= win_length ({self.win_length})")
            if not 0 <= self.fmin < self.fmax <= self.sr / 2:
                problems.append(f"need 0 <= fmin < fmax <= sr/2 (got fmin={self.fmin}, fmax={self.fmax}, sr={self.sr})")
        if problems:
            raise ValueError("invalid MelConfig: " + "; ".join(problems))

    @classmethod
    def audioldm2(cls) -> MelConfig:
        """AudioLDM2 16 kHz: n_fft 1024, hop 160, 64 mels, 0–8 kHz."""
        return cls()

    @classmethod
    def audioldm_48k(cls) -> MelConfig:
        """AudioLDM 48 kHz variant: n_fft 2048, hop 480, 256 mels, 0–24 kHz (16 latent channels)."""
        return cls(sr=48000, n_fft=2048, win_length=2048, hop_length=480, n_mels=256, fmin=0.0, fmax=24000.0)

    @property
    def pad(self) -> int:
        """Reflect padding on each side, ``(n_fft - hop) // 2`` (432 at 16 kHz)."""
        return (self.n_fft - self.hop_length) // 2

    def n_frames(self, n_samples: int) -> int:
        """Number of frames :func:`wav_to_mel` yields for ``n_samples`` samples (``n_samples // hop``)."""
        return (n_samples + 2 * self.pad - self.n_fft) // self.hop_length + 1

    def mel_frequencies(self) -> np.ndarray:
        """Centre frequency in Hz of each mel bin (Slaney scale), shape ``(n_mels,)``."""
        import librosa

        return librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=self.fmax, htk=False)[1:-1]

    def band_mask(self, lo: float, hi: float) -> np.ndarray:
        """Boolean mask of the mel bins whose centre frequency lies in ``[lo, hi)`` Hz."""
        f = self.mel_frequencies()
        return (f >= lo) & (f < hi)


def load_audio(path, sr: int = 16000, duration: float | None = None, min_samples: int = 1024) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr``.

    Any format libsndfile reads (wav, flac, ogg/vorbis, aiff, ...). Channels are averaged; other sample rates
    are resampled with ``librosa.resample`` (soxr, band-limited).

    Parameters
    ----------
    path : str or Path
        The audio file. It is only read, never written.
    sr : int
        Target sample rate in Hz.
    duration : float, optional
        Keep only the first ``duration`` seconds.
    min_samples : int
        Shortest acceptable clip after resampling (default: one STFT window, 1024 samples).

    Returns
    -------
    numpy.ndarray
        1-D float32 waveform.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        The file is not a regular file (a FIFO, a device: refused without being opened), is unreadable/corrupt,
        empty, declares a sample rate below :data:`MIN_SAMPLE_RATE`, has NaN/Inf samples or is shorter than
        ``min_samples``.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an audio file (use vaelib.find_audio to list a folder)")
    kind = _special_kind(path)
    if kind:  # never opened: reading a FIFO blocks until someone writes, a device may never end
        raise ValueError(f"{path.name} is {kind}, not a regular file; skipped without opening it")
    if duration is not None and not (isinstance(duration, (int, float)) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds or None (got {duration!r})")
    try:
        data, file_sr = sf.read(_os_path(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises RuntimeError / LibsndfileError / TypeError
        raise ValueError(
            f"cannot read {path.name}: not an audio file libsndfile understands ({_one_line(exc)}); "
            "convert it to WAV/FLAC/OGG"
        ) from None
    if data.shape[0] == 0:
        raise ValueError(f"{path.name} holds zero samples")
    if file_sr < MIN_SAMPLE_RATE:
        raise ValueError(f"{path.name} declares a sample rate of {file_sr} Hz (below {MIN_SAMPLE_RATE} Hz): its "
                         f"header is almost surely wrong ({data.shape[0]} samples would become "
                         f"{data.shape[0] / file_sr:.3g} s); re-export it with its real rate")
    if not np.isfinite(data).all():
        raise ValueError(f"{path.name} holds NaN or Inf samples; repair or re-export the file")
    x = data.mean(axis=1)
    if file_sr != sr:
        import librosa

        x = librosa.resample(x, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    if duration is not None:
        x = x[: int(round(duration * sr))]
    if x.shape[0] < min_samples:
        raise ValueError(
            f"{path.name} is too short: {x.shape[0]} samples at {sr} Hz, need at least {min_samples} "
            f"({min_samples / sr * 1000:.0f} ms, one STFT window)"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def normalize(x, peak: float = 0.5, eps: float = 1e-8):
    """Remove the mean and scale to a fixed peak, exactly as AudioLDM training did.

    ``y = (x - mean(x)) / (max|x - mean(x)| + eps) * peak`` (``normalize_wav`` in the training code,
    with ``peak = 0.5``).

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Waveform(s), normalised along the last axis.
    peak : float
        Target peak amplitude (0.5 in training).
    eps : float
        Guard for silent input.

    Returns
    -------
    y : same type as ``x``
        Normalised waveform.
    gain : float or numpy.ndarray
        The factor applied after mean removal, ``peak / (max|x - mean| + eps)``.
    """
    if isinstance(x, torch.Tensor):
        centred = x - x.mean(dim=-1, keepdim=True)
        gain = peak / (centred.abs().amax(dim=-1, keepdim=True) + eps)
        g = gain.squeeze(-1)
        return centred * gain, (g.item() if g.ndim == 0 else g.cpu().numpy())
    x = np.asarray(x, dtype=np.float32)
    centred = x - x.mean(axis=-1, keepdims=True)
    gain = peak / (np.abs(centred).max(axis=-1, keepdims=True) + eps)
    g = gain.squeeze(-1)
    return (centred * gain).astype(np.float32), (float(g) if g.ndim == 0 else g)


def save_audio(path, wave, sr: int = 16000, overwrite: bool = False) -> Path:
    """Write a mono waveform as 16-bit PCM (format from the suffix, e.g. ``.wav``/``.flac``).

    Refuses to overwrite an existing file unless ``overwrite=True`` (inputs are never written over).
    Values are clipped to [-1, 1].
    """
    import soundfile as sf

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite {path}; choose a new output folder")
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().float().cpu().numpy()
    wave = np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr, subtype="PCM_16")
    return path


def pad_to_multiple(wave, cfg: MelConfig | None = None):
    """Zero-pad a waveform at the end so its frame count is a multiple of ``cfg.time_multiple``.

    Works on the last axis of a numpy array or tensor. Padding the waveform (digital silence) rather than the
    log-mel avoids the original code's log-domain zero padding (magnitude 1, a loud floor).
    """
    cfg = cfg or MelConfig()
    n = wave.shape[-1]
    frames = math.ceil(n / cfg.hop_length)
    target_frames = max(cfg.time_multiple, math.ceil(frames / cfg.time_multiple) * cfg.time_multiple)
    extra = target_frames * cfg.hop_length - n
    if extra == 0:
        return wave
    if isinstance(wave, torch.Tensor):
        return torch.nn.functional.pad(wave, (0, extra))
    pad = [(0, 0)] * (np.ndim(wave) - 1) + [(0, extra)]
    return np.pad(wave, pad)


@lru_cache(maxsize=8)
def _mel_basis_np(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def mel_basis(cfg: MelConfig | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """The Slaney mel filter bank ``librosa.filters.mel(...)`` as a tensor ``(n_mels, n_fft // 2 + 1)``."""
    cfg = cfg or MelConfig()
    basis = _mel_basis_np(cfg.sr, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(cfg.fmax))
    return torch.from_numpy(basis).to(device=device, dtype=dtype)


def _as_batch(wave) -> torch.Tensor:
    if isinstance(wave, np.ndarray):
        wave = torch.from_numpy(np.ascontiguousarray(wave))
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"wave must be a numpy array or torch tensor, got {type(wave).__name__}")
    if wave.ndim == 1:
        wave = wave[None]
    elif wave.ndim == 3 and wave.shape[1] == 1:
        wave = wave[:, 0]
    if wave.ndim != 2:
        raise ValueError(f"wave must have shape (samples,), (batch, samples) or (batch, 1, samples); got "
                         f"{tuple(wave.shape)}")
    if not wave.is_floating_point():
        raise TypeError(f"wave must be floating point, got {wave.dtype}")
    return wave


def wav_to_mel(wave, cfg: MelConfig | None = None, pad: bool = True) -> torch.Tensor:
    """Log-mel spectrogram exactly as AudioLDM training computed it.

    ``M = log(max(B @ |STFT(reflect_pad(x, (n_fft-hop)//2))|, 1e-5))`` with a periodic Hann window,
    ``center=False``, ``B = librosa.filters.mel(...)`` (Slaney). No normalisation of the waveform happens
    here (call :func:`normalize` first to match training).

    Parameters
    ----------
    wave : numpy.ndarray or torch.Tensor
        ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)``, float, on any device.
    cfg : MelConfig, optional
        Front-end parameters; AudioLDM2 16 kHz by default.
    pad : bool
        Zero-pad the *waveform* so the number of frames is a multiple of ``cfg.time_multiple``.

    Returns
    -------
    torch.Tensor
        ``(batch, 1, frames, n_mels)`` natural-log mel magnitudes, on the input's device. ``frames`` is
        ``samples // hop`` (after padding).
    """
    cfg = cfg or MelConfig()
    x = _as_batch(wave)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if pad:
        x = pad_to_multiple(x, cfg)
    if x.shape[-1] <= cfg.pad:
        raise ValueError(f"wave too short for the front end: {x.shape[-1]} samples, need > {cfg.pad}")
    x = torch.nn.functional.pad(x[:, None], (cfg.pad, cfg.pad), mode="reflect")[:, 0]
    window = torch.hann_window(cfg.win_length, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                      center=False, return_complex=True).abs()
    mel = mel_basis(cfg, device=x.device, dtype=x.dtype) @ spec  # (B, n_mels, frames)
    return torch.log(torch.clamp(mel, min=LOG_CLAMP)).transpose(1, 2)[:, None]


def _os_path(path: Path):
    """``str(path)``, or its bytes when the name is not valid UTF-8 (libsndfile gets the file's real name)."""
    import os

    s = str(path)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return os.fsencode(s)


def _special_kind(path: Path) -> str | None:
    """``"a FIFO"``, ``"a device"``, ``"a socket"`` for a non-regular file (links followed), else None."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def is_eval_run_folder(folder) -> bool:
    """Whether ``folder`` is a ``vaelib eval`` run folder (``run.json`` with the run's hash and ``parts/``): its
    excerpts are outputs, never inputs, so :func:`find_audio` does not descend into it."""
    folder = Path(folder)
    run = folder / "run.json"
    if not (run.is_file() and (folder / "parts").is_dir()):
        return False
    try:
        got = json.loads(run.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(got, dict) and {"hash", "params", "format"} <= set(got)


def _walk_audio(folder: Path, skipped: list | None) -> list[Path]:
    """Audio files below ``folder`` (symlinked folders not followed, like ``Path.rglob``), skipping run folders and
    non-regular files (reported in ``skipped`` when given)."""
    import os

    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if is_eval_run_folder(here / d):
                if skipped is not None:
                    skipped.append((here / d, "a vaelib eval run folder: its outputs are never inputs"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            p = here / name
            if p.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            kind = _special_kind(p)
            if kind is None and p.is_file():
                found.append(p)
            elif skipped is not None and kind is not None:
                skipped.append((p, f"{kind}, not a regular file; skipped without opening it"))
    return sorted(found)


def find_audio(source, demo_split: str = "eval", *, skipped: list | None = None):
    """List audio files to process.

    Parameters
    ----------
    source : str or Path or list
        ``"demo"`` (the bundled eval clips), a file, a folder (searched recursively for
        :data:`AUDIO_EXTENSIONS`), a ``.lst`` list file (one file or folder per line; blank lines and
        lines starting with ``#`` are ignored; relative paths are resolved against the list file's folder),
        or a list of those.
    demo_split : str
        Which split of the bundled corpus ``"demo"`` means (``"eval"`` or ``"train"``).
    skipped : list, optional
        Receives ``(path, reason)`` for what a folder search passed over: non-regular files with an audio
        extension (FIFOs, devices: never opened) and ``vaelib eval`` run folders (outputs are never inputs; see
        :func:`is_eval_run_folder`). Without it they are passed over silently. A non-regular file named
        explicitly is returned; :func:`load_audio` refuses it without opening it.

    Returns
    -------
    list of Path
        Sorted, de-duplicated files.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        A folder or list file holds no audio files, a file has an unsupported extension, or a list file
        names another list file.
    """
    if isinstance(source, (list, tuple)):
        out = []
        for item in source:
            out.extend(find_audio(item, demo_split, skipped=skipped))
        return sorted(dict.fromkeys(out))
    if isinstance(source, str) and source == "demo":
        from .assets import demo_dir

        folder = demo_dir() / demo_split
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"bundled demo corpus missing in {folder}; run `python scripts/make_corpus.py`")
        return files
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"audio path not found: {path} (give a file, a folder, or 'demo')")
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        return _read_audio_list(path, demo_split, skipped)
    if path.is_dir():
        files = _walk_audio(path, skipped)
        if not files and not (skipped and any(Path(p).is_relative_to(path) for p, _ in skipped)):
            raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder {path}")
        return files
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise ValueError(f"{path.name}: unsupported extension {path.suffix!r}; accepted: {', '.join(AUDIO_EXTENSIONS)}")
    return [path]


def _list_entry(path) -> str:
    """One ``.lst`` line for ``path``: as is, or as a JSON string when it could be misread (a newline or other line
    break, leading/trailing spaces, a leading ``#`` or ``"``)."""
    text = str(path)
    plain = text == text.strip() and not text.startswith(("#", '"')) and "\n" not in text and "\r" not in text
    return text if plain else json.dumps(text, ensure_ascii=False)


def write_audio_list(list_file, paths) -> Path:
    """Write a ``.lst`` list file naming ``paths`` (refuses to overwrite); any file name survives the round trip
    through :func:`find_audio` (names with line breaks are written as JSON strings)."""
    list_file = Path(list_file)
    if list_file.exists():
        raise FileExistsError(f"refusing to overwrite {list_file}")
    list_file.write_text("".join(_list_entry(p) + "\n" for p in paths), encoding="utf-8")
    return list_file


def _read_audio_list(list_file: Path, demo_split: str, skipped: list | None = None) -> list[Path]:
    """Files named by a ``.lst`` list file (see :func:`find_audio`).

    One entry per line (``\\n``-separated); blank lines and ``#`` comments are skipped; an entry starting with
    ``"`` is a JSON string (how :func:`write_audio_list` writes names holding line breaks or edge spaces).
    """
    out = []
    for lineno, line in enumerate(list_file.read_text(encoding="utf-8").split("\n"), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith('"'):
            try:
                entry = json.loads(entry)
            except ValueError:
                entry = None
            if not isinstance(entry, str):
                raise ValueError(f"{list_file.name} line {lineno}: an entry starting with a double quote must be one "
                                 'JSON string, e.g. "my clip.wav"')
        item = Path(entry).expanduser()
        if not item.is_absolute():
            item = list_file.parent / item
        if item.suffix.lower() in LIST_EXTENSIONS:
            raise ValueError(f"{list_file.name} line {lineno}: list files cannot name other list files ({entry})")
        if not item.exists():
            raise FileNotFoundError(f"{list_file.name} line {lineno}: audio path not found: {item}")
        out.extend(find_audio(item, demo_split, skipped=skipped))
    if not out:
        raise ValueError(f"list file {list_file} names no audio files")
    return sorted(dict.fromkeys(out))
