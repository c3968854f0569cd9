"""Packaging: the report notebooks ship inside the package, a built wheel holds them with the bundled model and
demo corpus, and a fresh venv with only that wheel runs ``vaelib report`` from an empty folder.

The last test installs the wheel and its dependencies into a new venv (pip's index or cache: 4-8 min on 2 busy cores)
and is marked ``slow``; it is part of the README test command and of CI (``-m "not slow"`` deselects it offline).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vaelib import report

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
DEMO = ROOT / "vaelib" / "assets" / "demo"
TINY_VAE = ROOT / "vaelib" / "assets" / "tiny_vae"
# Extras that a core install must not need (nor pull in).
NOT_CORE = ("papermill", "nbconvert", "nbclient", "ipywidgets", "ipykernel", "jupyterlab", "ray")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.ipynb"))


# ------------------------------------------------------------------------------------------ notebooks, once


def test_notebooks_exist_once_in_the_repository():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    names = [Path(n) for n in tracked.stdout.split()]
    assert names and all(n.parent == Path("notebooks") for n in names), names
    assert len({n.name for n in names}) == len(names)


def test_notebooks_dir_is_the_package_data_and_the_checkout_under_an_editable_install():
    assert report.notebooks_dir() == SOURCE  # pip install -e .: vaelib.report.notebooks is notebooks/
    assert report.default_notebooks() == [SOURCE / name for name in report.DEFAULT_NOTEBOOKS]
    for name in report.DEFAULT_NOTEBOOKS:
        assert (SOURCE / name).is_file(), name


def test_every_package_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vaelib").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found | {"vaelib.report.notebooks"} == listed, "add new packages to [tool.setuptools] packages"


def test_default_notebooks_missing_is_one_line(tmp_path, monkeypatch):
    from vaelib.report import plan

    monkeypatch.setattr(plan, "notebooks_dir", lambda: tmp_path)
    with pytest.raises(report.ReportError, match=r"report notebooks not found: .*01_baseline\.ipynb"):
        report.default_notebooks()


# ------------------------------------------------------------------------------------------ the wheel


def _copy_source(dest: Path) -> Path:
    """What a build needs from the checkout (no .venv, .git, reports, caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "vaelib", dest / "vaelib", ignore=ignore)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the checkout (the repo itself gets no build/ folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_source(tmp / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(tmp / "dist")]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.insert(5, "--no-build-isolation")  # build offline with this environment's setuptools
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("vaelib-*.whl")
    return whl


def test_wheel_holds_the_notebooks_the_tiny_vae_and_the_demo_corpus(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = "vaelib/report/notebooks/"
        assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(shipped) and n.endswith(".ipynb")) \
            == _names(SOURCE)
        for name in _names(SOURCE):  # notebooks/ mapped into the package (pyproject.toml)
            assert zf.read(f"{shipped}{name}") == (SOURCE / name).read_bytes(), name
        for path in [*TINY_VAE.rglob("*"), *DEMO.rglob("*")]:
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(ROOT).as_posix() in names, path
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("torch") for r in core)
    assert not [r for r in core if r.split(">")[0].split("[")[0].split("=")[0].strip() in NOT_CORE], core
    assert any(r.startswith("papermill") and 'extra == "report"' in r for r in requires)


# ------------------------------------------------------------------------------------------ a fresh venv

CORE_CHECK = """
import importlib, importlib.util, json, pkgutil
import numpy as np
import vaelib
from vaelib import metrics
# every module but the ipywidgets explorer imports without the report/lab extras
modules = [m.name for m in pkgutil.walk_packages(vaelib.__path__, "vaelib.")
           if m.name not in ("vaelib.__main__", "vaelib.widgets")]
for name in modules:
    importlib.import_module(name)
t = np.arange(16000) / 16000
x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
vae, vocoder = vaelib.load_vae("bundled", device="cpu"), vaelib.load_vocoder("griffinlim")
rec = vaelib.reconstruct(x, vae, vocoder, enhancers=["seed_frequency"])
print(json.dumps({
    "file": vaelib.__file__,
    "modules": modules,
    "stages": list(rec.stages),
    "vae_len": int(rec["vae"].wave.shape[-1]),
    "in_len": int(rec.wave.shape[-1]),
    "lsd": float(metrics.score(rec.wave, rec["vae"].wave)["lsd"]),
    "importable": {m: importlib.util.find_spec(m) is not None for m in %r},
}))
"""


def _venv_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(cmd, cwd, env, timeout=900):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done, f"{' '.join(map(str, cmd))} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-4000:]}"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="venv layout (bin/) of POSIX")
def test_fresh_venv_with_only_the_wheel_runs_the_library_then_the_report_from_an_empty_folder(wheel, tmp_path):
    venv, empty = tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)  # no system site-packages
    env = _venv_env(venv)
    py, pip = str(venv / "bin" / "python"), [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                                             "--no-compile", "-c", str(ROOT / "constraints.txt")]

    # Core install: metrics and round trips work, without the report/lab stack.
    done, log = _run([*pip, str(wheel)], empty, env)
    assert done.returncode == 0, log
    done, log = _run([py, "-c", CORE_CHECK % (NOT_CORE,)], empty, env)
    assert done.returncode == 0, log
    core = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(core["file"]).is_relative_to(venv), core["file"]  # the installed copy, not this checkout
    assert {"vaelib.metrics", "vaelib.pipeline", "vaelib.study", "vaelib.report"} <= set(core["modules"])
    assert core["stages"] == ["input", "mel_projection", "vae", "seed_frequency"]
    assert core["vae_len"] == core["in_len"] and 0 < core["lsd"] < 10
    assert not any(core["importable"].values()), core["importable"]
    # ... and `vaelib report` says in one line which extra it needs, before it creates anything.
    done, log = _run([str(venv / "bin" / "vaelib"), "report", "--audio", "demo", "--out", "run0"], empty, env)
    assert done.returncode == 2 and "vaelib[report]" in done.stderr and "Traceback" not in done.stderr, log
    assert len(done.stderr.strip().splitlines()) == 1 and not (empty / "run0").exists(), log

    # With the report extra: `vaelib report` from an empty folder, notebooks shipped in the package.
    done, log = _run([*pip, f"{wheel}[report]"], empty, env)
    assert done.returncode == 0, log
    done, log = _run([str(venv / "bin" / "vaelib"), "info"], empty, env)
    assert done.returncode == 0 and "shipped with the package" in done.stdout, log
    cmd = [str(venv / "bin" / "vaelib"), "report", "--audio", "demo", "-p", "max_clips=1", "-p", "duration_s=2",
           "--out", "run", "--no-progress"]
    done, log = _run(cmd, empty, env, timeout=1200)
    assert done.returncode == 0, log
    run = empty / "run"
    assert (run / "index.html").stat().st_size > 0
    index = (run / "index.html").read_text(encoding="utf-8")
    for name in report.DEFAULT_NOTEBOOKS:
        stem = Path(name).stem
        assert (run / f"{stem}.html").stat().st_size > 0, stem
        assert f"{stem}.html" in index
    assert sorted(p.name for p in empty.iterdir()) == ["run"]  # nothing written beside the run folder
