"""vaelib.audio against hostile files: absurd sample rates, FIFOs and devices (never opened), non-UTF-8 names."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaelib.audio import MIN_SAMPLE_RATE, find_audio, load_audio


def test_absurd_sample_rate_refused_in_one_line(tmp_path):
    sf.write(tmp_path / "one_hz.wav", np.zeros(50, np.float32) + 0.1, 1)
    with pytest.raises(ValueError, match="sample rate of 1 Hz") as e:
        load_audio(tmp_path / "one_hz.wav")
    assert "50 s" in str(e.value) and "\n" not in str(e.value)
    sf.write(tmp_path / "ok.wav", 0.1 * np.sin(np.arange(4000) / 3).astype(np.float32), MIN_SAMPLE_RATE)
    assert load_audio(tmp_path / "ok.wav").shape == (16000,)


def test_fifo_and_device_refused_without_being_opened(tmp_path):
    """In a real process with a timeout: opening the FIFO for reading would block forever."""
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    dev = tmp_path / "zero.wav"
    dev.symlink_to("/dev/zero")
    code = textwrap.dedent(f"""
        from vaelib.audio import load_audio
        for p in ({str(fifo)!r}, {str(dev)!r}):
            try:
                load_audio(p)
            except ValueError as exc:
                print(exc)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["pipe.wav is a FIFO (named pipe), not a regular file; skipped without opening it",
                                     "zero.wav is a device, not a regular file; skipped without opening it"]
    skipped = []
    assert find_audio(tmp_path, skipped=skipped) == [] and sorted(p for p, _ in skipped) == [fifo, dev]
    with pytest.raises(ValueError, match="no audio files"):
        find_audio(tmp_path)


def test_non_utf8_name_reads(tmp_path):
    sf.write(tmp_path / "x.wav", 0.1 * np.sin(np.arange(4000) / 3).astype(np.float32), 16000)
    odd = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xe9t\xe9.wav"))
    os.rename(tmp_path / "x.wav", odd)
    assert find_audio(tmp_path) == [odd] and load_audio(odd).shape == (4000,)
