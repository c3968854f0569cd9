"""The ``vaelib`` command line: one-line errors with exit status 2, a failing notebook with exit status 1,
``--list-params``, ``info``, and ``python -m vaelib``."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_notebooks, write_inputs

from vaelib.cli import main


def _hashes(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nbs = make_notebooks(tmp_path / "nbs")
    write_inputs(tmp_path / "in")
    (tmp_path / "empty").mkdir()
    return tmp_path, [str(p) for p in nbs]


@pytest.mark.parametrize("args, fragment", [
    (["--audio", "missing_dir"], "error: audio path not found"),
    (["--audio", "empty"], "error: no audio files"),
    (["--audio", "in/bad.wav"], "error: none of the 1 audio file(s)"),
    (["-p", "gain=abc"], "error: parameter gain must be a number >= 0 and <= 4, got 'abc'"),
    (["-p", "method=sharpen"], "error: parameter method must be one of none, frequency, noise"),
    (["-p", "foo=1"], "error: unknown parameter 'foo'; accepted: audio, model, vocoder"),
    (["-p", "gain"], "error: -p expects name=value (got 'gain')"),
    (["-p", "out_dir=x"], "error: parameter 'out_dir' cannot be set"),
    (["--vocoder", "hifigan"], "error: vocoder='hifigan' needs a vocoder/ folder"),
    (["--timeout", "0"], "error: --timeout must be a positive number"),
    (["--notebooks", "nope.ipynb"], "error: notebook not found"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_bad_inputs_give_one_line_and_exit_2(ws, capsys, args, fragment):
    root, nbs = ws
    before = _hashes(root)
    argv = ["report", "--notebooks", *nbs, "--audio", "in", "--out", "run", "--no-progress"] + args
    if args[0] == "--notebooks":
        argv = ["report", *args, "--out", "run"]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(fragment), err
    assert out == ""
    assert _hashes(root) == before and not (root / "run").exists()  # nothing written, inputs untouched


def test_list_params(ws, capsys):
    _, nbs = ws
    assert main(["report", "--notebooks", *nbs, "--list-params"]) == 0
    out = capsys.readouterr().out
    assert "gain" in out and "float = 1.5" in out and "# Laplacian gain" in out and "[01_tiny]" in out
    assert "fail" in out and "bool = False" in out


def test_missing_repo_notebooks_is_one_line(ws, capsys, monkeypatch):
    from vaelib import report

    monkeypatch.setattr(report.plan, "notebooks_dir", lambda: Path("/nonexistent/notebooks"))
    assert main(["report", "--list-params"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: report notebooks not found")


def test_info_and_version(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vaelib 0.") and "torch" in out and "model: " in out and "notebooks: " in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("vaelib ")
    assert main([]) == 2


def test_failing_cell_exits_1_naming_notebook_and_cell(ws):
    """A true CLI run (``python -m vaelib report --jobs 1``): 02_tiny fails, 03_tiny must not start."""
    root, nbs = ws
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "vaelib", "report", "--notebooks", nbs[1], nbs[2], "--out", "run", "-p", "fail=yes",
         "-p", "level=0.5", "--jobs", "1"],
        cwd=root, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "error: notebook 02_tiny failed at cell " in errors[0]
    assert "ValueError: deliberate failure" in errors[0] and "partial notebook kept" in errors[0]
    partial = root / "run" / "02_tiny.ipynb"
    assert partial.is_file() and str(partial) in errors[0]
    nb = json.loads(partial.read_text())
    failed = [c for c in nb["cells"] if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and f"at cell {failed[0]['execution_count']}:" in errors[0]
    assert not (root / "run" / "03_tiny.ipynb").exists()  # later notebooks are not run
    index = (root / "run" / "index.html").read_text()
    assert "failed at cell" in index and "not run" in index
    # no notebook finished: the folder is marked (plan.FAILED_MARK) so that the corrected rerun may replace it
    assert sorted(p.name for p in (root / "run").iterdir()) == [".vaelib-report-failed.json", ".vaelib.lock",
                                                               "02_tiny.ipynb", "index.html"]


def test_python_m_vaelib_help():
    proc = subprocess.run([sys.executable, "-m", "vaelib", "report", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for flag in ("--audio", "--model", "--vocoder", "--out", "-p NAME=VALUE", "--no-input", "--list-params",
                 "--timeout"):
        assert flag in proc.stdout


def test_disk_full_is_one_line_naming_path_and_free_space(tmp_path, capsys, monkeypatch):
    """An OS error from deep inside a run (here: ENOSPC while writing a page) ends in one line that names the path
    and the free space, for `vaelib report` and `vaelib train-restorer` alike."""
    import errno

    from vaelib import report
    from vaelib.restore import cli as restore_cli

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "01_baseline.html"))

    monkeypatch.setattr(report, "run_report", full)
    assert main(["report", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "01_baseline.html" in err and "free" in err and "No space left" in err
    monkeypatch.setattr(restore_cli, "train_restorer", full)
    monkeypatch.setattr("vaelib.models.load_vae", lambda *a, **k: None)
    assert main(["train-restorer", "--model", "bundled", "--audio", "demo-train", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err and "free" in err


@pytest.mark.parametrize("flag, expected", [([], None), (["--cold-kernels"], False)])
def test_cold_kernels_flag_reaches_the_runner(ws, monkeypatch, flag, expected):
    """--cold-kernels asks run_report for cold kernels; without it the runner decides (warm where supported)."""
    from vaelib import report

    root, nbs = ws
    seen = {}

    def fake_run_report(**kw):
        seen.update(kw)
        raise report.ReportError("stop here")

    monkeypatch.setattr(report, "run_report", fake_run_report)
    assert main(["report", "--notebooks", *nbs, "--audio", "in", "--out", "run", "--no-progress", *flag]) == 2
    assert seen["warm"] is expected
