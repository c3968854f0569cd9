"""Checks on the bundled demo corpus (``vaelib/assets/demo``); fast, offline, no espeak-ng needed."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CORPUS = Path(__file__).resolve().parents[1] / "vaelib" / "assets" / "demo"
SR = 16000
MIN_S, MAX_S = 4.0, 10.0
MAX_BYTES = 5.5e6
COLUMNS = ["file", "split", "kind", "source", "duration_s", "sr", "licence", "description"]
KINDS = {"speech", "music", "synthetic"}

pytestmark = pytest.mark.skipif(not (CORPUS / "manifest.csv").is_file(),
                                reason="demo corpus not generated (python scripts/make_corpus.py)")


def read_manifest() -> list[dict[str, str]]:
    """Rows of ``manifest.csv``."""
    with open(CORPUS / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def flac_files() -> list[str]:
    """FLAC files below the corpus directory, as POSIX paths relative to it."""
    return sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.flac"))


def audio_hash(path: Path) -> str:
    """SHA-256 of the decoded int16 samples (independent of FLAC encoder settings)."""
    data, _ = sf.read(path, dtype="int16", always_2d=True)
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def test_manifest_columns():
    with open(CORPUS / "manifest.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == COLUMNS


def test_manifest_matches_files():
    rows = read_manifest()
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)), "duplicate manifest entries"
    assert sorted(files) == flac_files()
    for r in rows:
        assert r["file"].split("/")[0] == r["split"] in {"train", "eval"}
        assert r["kind"] in KINDS
        assert r["source"] and r["licence"] and r["description"]


@pytest.mark.parametrize("row", read_manifest() if (CORPUS / "manifest.csv").is_file() else [],
                         ids=lambda r: r["file"])
def test_clip_format(row):
    info = sf.info(CORPUS / row["file"])
    assert info.format == "FLAC" and info.subtype == "PCM_16"
    assert info.samplerate == SR == int(row["sr"])
    assert info.channels == 1
    assert MIN_S <= info.duration <= MAX_S
    assert abs(info.duration - float(row["duration_s"])) < 1e-2


def test_train_eval_disjoint():
    rows = read_manifest()
    names = {s: {Path(r["file"]).name for r in rows if r["split"] == s} for s in ("train", "eval")}
    assert names["train"] and names["eval"]
    assert not names["train"] & names["eval"]
    hashes = {s: {audio_hash(CORPUS / s / n) for n in names[s]} for s in names}
    assert not hashes["train"] & hashes["eval"], "identical audio in train and eval"
    assert len(hashes["train"]) + len(hashes["eval"]) == len(rows), "duplicate audio in the corpus"


def test_total_size():
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"corpus is {total / 1e6:.2f} MB"


def test_eval_covers_required_material():
    ev = [r for r in read_manifest() if r["split"] == "eval"]
    assert {r["kind"] for r in ev} == KINDS
    names = [Path(r["file"]).stem for r in ev]
    assert any(r["kind"] == "music" and "drums" in r["source"] for r in ev), "eval needs drums/cymbals"
    assert any(n.startswith("chirp_log_50_8000") for n in names), "eval needs the log chirp"
    assert any(n.startswith("tone_") and "noise" in n for n in names), "eval needs the tone + noisy high band"


def test_provenance_present():
    text = (CORPUS / "PROVENANCE.md").read_text(encoding="utf-8")
    for word in ("espeak-ng", "fluidsynth", "fluid-soundfont-gm", "make_corpus.py", "CC0"):
        assert word in text
