"""Copy the report notebooks into the package so a wheel / ``pip install .`` ships them.

The source of truth is the repository's top-level ``notebooks/``; ``vaelib/notebooks/`` holds byte-identical
copies that setuptools installs as package data (``vaelib report`` finds them there when vaelib is not run from a
checkout). ``tests/test_packaging.py`` fails when the copies drift.

Usage::

    python scripts/sync_notebooks.py           # copy notebooks/*.ipynb -> vaelib/notebooks/, drop stale copies
    python scripts/sync_notebooks.py --check   # exit 1 naming every file that differs, is missing or is extra
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
SHIPPED = ROOT / "vaelib" / "notebooks"


def differences(src: Path = SOURCE, dst: Path = SHIPPED) -> list[str]:
    """One line per notebook whose shipped copy is not byte-identical to its source.

    Parameters
    ----------
    src, dst : Path
        Folder of the source notebooks and folder of the shipped copies (only ``*.ipynb`` directly inside count).

    Returns
    -------
    list of str
        ``"<name>: differs"``, ``"<name>: missing in <dst>"`` or ``"<name>: extra in <dst> (no source)"``, sorted
        by name; empty when the copies are in sync.
    """
    sources = {p.name: p for p in sorted(src.glob("*.ipynb"))}
    copies = {p.name: p for p in sorted(dst.glob("*.ipynb"))} if dst.is_dir() else {}
    out = []
    for name in sorted(set(sources) | set(copies)):
        if name not in copies:
            out.append(f"{name}: missing in {dst}")
        elif name not in sources:
            out.append(f"{name}: extra in {dst} (no source in {src})")
        elif sources[name].read_bytes() != copies[name].read_bytes():
            out.append(f"{name}: differs from {src / name}")
    return out


def sync(src: Path = SOURCE, dst: Path = SHIPPED) -> list[str]:
    """Make ``dst`` hold exactly byte-identical copies of ``src/*.ipynb``; return what changed (as :func:`differences`).

    Only ``*.ipynb`` files directly in ``dst`` are written or removed; the sources are never touched.
    """
    changed = differences(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    for line in changed:
        name = line.split(":", 1)[0]
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
        else:
            (dst / name).unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a copy differs")
    ap.add_argument("--src", type=Path, default=SOURCE, help=f"source notebooks (default {SOURCE})")
    ap.add_argument("--dst", type=Path, default=SHIPPED, help=f"shipped copies (default {SHIPPED})")
    args = ap.parse_args(argv)
    if not args.src.is_dir() or not any(args.src.glob("*.ipynb")):
        print(f"error: no notebooks in {args.src}", file=sys.stderr)
        return 2
    if args.check:
        diff = differences(args.src, args.dst)
        for line in diff:
            print(line)
        if diff:
            print("error: shipped notebooks are out of date; run `python scripts/sync_notebooks.py`", file=sys.stderr)
            return 1
        print(f"{args.dst}: in sync with {args.src}")
        return 0
    changed = sync(args.src, args.dst)
    for line in changed:
        print(f"synced {line}")
    print(f"{args.dst}: {len(changed)} file(s) updated" if changed else f"{args.dst}: already in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
