"""The audio type of a clip: one taxonomy and one rule, used by ``vaelib eval``, the restorers and the reports.

The taxonomy is the one the conditional restorer is trained on, :data:`CATEGORIES` (speech, music, percussion,
other). :func:`category_of` decides a file's type, first match wins:

1. an explicit label: the ``category`` column of a ``manifest.csv`` (columns ``file`` + ``category``, ``file``
   relative to the manifest's folder) in the file's folder or one of the two above it;
2. the file name's first ``_``-separated word: ``speech*`` → speech, ``music*`` → music, ``drum*`` /
   ``percussion*`` → percussion (the demo corpus names its clips ``speech_…``, ``music_…``, ``drums_…``);
3. the name of a parent folder, by the same words (``/data/percussion/take1.wav`` → percussion);
4. the manifest's descriptive ``kind`` column (the demo corpus: ``speech``, ``music``, ``synthetic``), mapped by
   the same words;
5. otherwise ``other`` (the demo corpus' chirps, noise bursts and tones).

A manifest label that is not one of the four types (after :data:`SYNONYMS`) counts as ``other``.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["CATEGORIES", "SYNONYMS", "category_of", "category_index", "from_word"]

#: Audio types, in the conditional restorer's embedding order.
CATEGORIES = ("speech", "music", "percussion", "other")
#: Word prefixes that name a type (file names, folder names, manifest values).
SYNONYMS = {"speech": "speech", "music": "music", "drum": "percussion",
            "percussion": "percussion", "other": "other", "synthetic": "other"}
MANIFEST = "manifest.csv"


def from_word(word: str) -> str | None:
    """The type a word names (``"drums_rock"`` → percussion), or None when it names none."""
    w = str(word).strip().lower()
    for prefix, cat in SYNONYMS.items():
        if w.startswith(prefix):
            return cat
    return None


def _manifest(folder: Path, cache: dict) -> dict:
    """``{resolved path: (category, kind)}`` from ``folder/manifest.csv`` (empty when absent or unreadable)."""
    if folder not in cache:
        table = {}
        f = folder / MANIFEST
        if f.is_file():
            try:
                with f.open(newline="", encoding="utf-8") as fh:
                    for rec in csv.DictReader(fh):
                        if rec.get("file"):
                            table[(folder / rec["file"]).resolve()] = (rec.get("category") or "", rec.get("kind") or "")
            except (OSError, UnicodeDecodeError, csv.Error):
                table = {}
        cache[folder] = table
    return cache[folder]


def category_of(path, cache: dict | None = None) -> str:
    """Audio type of the file ``path``: one of :data:`CATEGORIES` (rule in the module docstring).

    ``cache`` (a dict the caller keeps) saves re-reading manifests over many files.
    """
    cache = {} if cache is None else cache
    p = Path(str(path))
    label = kind = ""
    try:
        rp = p.resolve()
    except (OSError, RuntimeError):
        rp = p
    for folder in (rp.parent, rp.parent.parent, rp.parent.parent.parent):
        label, kind = _manifest(folder, cache).get(rp, ("", ""))
        if label or kind:
            break
    if label:
        return from_word(label) or "other"
    for word in (p.stem.split("_")[0], *(q.name for q in p.parents)):
        cat = from_word(word) if word else None
        if cat and cat != "other":
            return cat
    return (from_word(kind) or "other") if kind else "other"


def category_index(path, categories=CATEGORIES, cache: dict | None = None) -> int:
    """Index of :func:`category_of` ``path`` in ``categories``; the last one ("other") when it is not listed."""
    c = category_of(path, cache)
    return categories.index(c) if c in categories else len(categories) - 1
