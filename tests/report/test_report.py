"""The report runner (vaelib.report): parameter validation, bad inputs, an end-to-end run of tiny notebooks,
self-contained HTML rendered by headless Chromium, and nothing written outside the run folder.

The notebooks here are tiny stand-ins built in a temp dir (no model is loaded), so the runner is tested
independently of the real notebooks in ``notebooks/``.
"""

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import lock_held_elsewhere, make_notebooks, write_inputs

from vaelib import report
from vaelib.audio import find_audio
from vaelib.cli import main
from vaelib.report import ReportError, parse_assignments, plan_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

def snapshot(root):
    """``{relative path: sha256}`` of every file under ``root`` (folders as ``"dir"``)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def one_line(msg):
    assert msg and "\n" not in msg.strip(), msg
    return msg


# ---------------------------------------------------------------------------------------------- unit tests


@pytest.mark.parametrize("value, type_name, expected", [
    ("2", "int", 2), (" 7 ", "int", 7), ("2", "float", 2.0), ("1e-3", "float", 1e-3), (3, "float", 3.0),
    ("yes", "bool", True), ("0", "bool", False), ("False", "bool", False), ("demo", "str", "demo"),
    ("none", "Optional[int]", None), ("5", "int | None", 5), ("[1, 2]", "list", [1.0, 2.0]),
])
def test_foreign_notebook_parameters_follow_the_schema_rules(value, type_name, expected):
    """A notebook outside the schema (--notebooks) gets specs from its cell, coerced by vaelib.report.params' rules."""
    spec = report.plan._spec_from_papermill("x", {"inferred_type_name": type_name, "default": "None", "help": ""})
    out = report.plan._coerce(spec, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value, type_name, fragment", [
    ("abc", "float", "parameter gain must be a number, got 'abc'"),
    ("2.5", "int", "must be an integer"), ("maybe", "bool", "must be true or false"), ("nan", "float", "number"),
    (True, "float", "must be a number"),
])
def test_foreign_notebook_parameters_reject_in_one_line(value, type_name, fragment):
    spec = report.plan._spec_from_papermill("gain", {"inferred_type_name": type_name, "default": "1.5", "help": ""})
    with pytest.raises(ReportError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        report.plan._coerce(spec, value)


def test_parse_assignments():
    assert parse_assignments(["gain=2", "method=noise", "audio=a=b.wav"]) == {"gain": "2", "method": "noise",
                                                                            "audio": "a=b.wav"}
    for bad, fragment in ((["gain"], "expects name=value"), (["=2"], "expects name=value"),
                          (["gain=1", "gain=2"], "given twice")):
        with pytest.raises(ReportError, match=fragment):
            parse_assignments(bad)


def test_find_audio_list_file(tmp_path):
    write_inputs(tmp_path / "in")
    lst = tmp_path / "in" / "pick.lst"
    lst.write_text("# chosen clips\n\na.wav\n  sub  \n" + str(tmp_path / "in" / "b.flac") + "\n")
    assert [p.name for p in find_audio(lst)] == ["a.wav", "b.flac", "c.wav"]
    (tmp_path / "missing.lst").write_text("a.wav\nnope.wav\n")
    with pytest.raises(FileNotFoundError, match="line 1"):
        find_audio(tmp_path / "missing.lst")
    (tmp_path / "empty.lst").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no audio files"):
        find_audio(tmp_path / "empty.lst")
    (tmp_path / "nested.lst").write_text("in/pick.lst\n")
    with pytest.raises(ValueError, match="other list files"):
        find_audio(tmp_path / "nested.lst")


def test_inspect_params_and_format(tmp_path):
    nbs = make_notebooks(tmp_path / "nbs")
    per, union = report.inspect_params(nbs)
    assert list(per) == ["01_tiny", "02_tiny", "03_tiny"]
    assert union["gain"].type == "float" and union["gain"].default == 1.5
    assert union["gain"].help == "Laplacian gain"
    assert all("out_dir" in declared for declared in per.values())
    text = report.format_params(per)
    assert "gain" in text and "float = 1.5" in text and "set by the runner" in text
    assert "[01_tiny, 02_tiny, 03_tiny]" in text


def test_default_notebooks_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(report.plan, "notebooks_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(ReportError, match="report notebooks not found") as info:
        report.default_notebooks()
    one_line(str(info.value))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nbs = make_notebooks(tmp_path / "nbs")
    inputs = write_inputs(tmp_path / "in")
    (tmp_path / "empty").mkdir()
    return SimpleNamespace(root=tmp_path, nbs=nbs, inputs=inputs)


def _good_only(inputs):
    (inputs / "bad.wav").unlink()
    return inputs


@pytest.mark.parametrize("kwargs, fragment", [
    ({"params": {"foo": "1"}}, "unknown parameter 'foo'; accepted: audio, model, vocoder, duration_s"),
    ({"params": {"gain": "abc"}}, "parameter gain must be a number >= 0 and <= 4, got 'abc'"),
    ({"params": {"method": "sharpen"}}, "parameter method must be one of none, frequency"),
    ({"params": {"gain": "9"}}, "parameter gain must be a number >= 0 and <= 4, got '9'"),
    ({"params": {"seed": "1.5"}}, "parameter seed must be an integer"),
    ({"params": {"max_clips": "0"}}, "parameter max_clips must be an integer >= 1"),
    ({"params": {"duration_s": "-1"}}, "parameter duration_s must be a number >= 0.1"),
    ({"params": {"out_dir": "elsewhere"}}, "'out_dir' cannot be set"),
    ({"params": {"interactive": "true"}}, "'interactive' cannot be set"),
    ({"audio": "no/such/path"}, "audio path not found"),
    ({"audio": "empty"}, "no audio files"),
    ({"audio": "in/bad.wav"}, r"none of the 1 audio file\(s\) .* could be read: bad.wav"),
    ({"model": "no/such/folder/"}, "neither an existing folder nor a Hugging Face repo id"),
    ({"model": "cvssp/audioldm2"}, "not in the Hugging Face cache and HF_HUB_OFFLINE=1"),
    ({"vocoder": "hifigan"}, "vocoder='hifigan' needs a vocoder/ folder"),
    ({"audio": "demo", "params": {"audio": "in"}}, "'audio' given twice"),
])
def test_plan_rejects_bad_inputs_in_one_line(setup, kwargs, fragment):
    before = snapshot(setup.root)
    with pytest.raises(ReportError, match=fragment) as info:
        plan_report(notebooks=setup.nbs, out="run", **{"audio": "in", **kwargs})
    one_line(str(info.value))
    assert snapshot(setup.root) == before  # validation writes nothing


def test_plan_refuses_non_empty_out(setup):
    (setup.root / "run").mkdir()
    (setup.root / "run" / "keep.txt").write_text("mine")
    with pytest.raises(ReportError, match="not empty; choose a new --out"):
        plan_report(notebooks=setup.nbs, out="run", audio="in")
    (setup.root / "run" / "keep.txt").unlink()
    assert plan_report(notebooks=setup.nbs, out="run", audio="in").run_dir == setup.root / "run"  # empty is fine


def test_second_report_on_one_folder_stops_naming_the_first(setup):
    """One writer per report folder: while another process holds ``--out``, ``vaelib report`` into it stops in one
    line naming that process, before any notebook starts; a lock file alone (a run that wrote nothing) is no
    obstacle to planning."""
    run = setup.root / "run"
    run.mkdir()
    with lock_held_elsewhere(run) as pid:
        assert plan_report(notebooks=setup.nbs, out="run", audio="in").run_dir == run
        with pytest.raises(ReportError, match=rf"in use by process {pid}") as info:
            report.run_report(notebooks=setup.nbs, out="run", audio=_good_only(setup.inputs), echo=None,
                              progress=False)
        one_line(str(info.value))
        assert sorted(p.name for p in run.iterdir()) == [".vaelib.lock"]  # nothing else written


def test_plan_skips_corrupt_and_routes_parameters(setup):
    plan = plan_report(notebooks=setup.nbs, out="run", audio="in", params={"gain": "2", "level": "0.3"})
    assert [p.name for p in plan.audio_files] == ["a.wav", "b.flac", "c.wav"]
    assert [p.name for p, _ in plan.skipped] == ["bad.wav"] and "cannot read bad.wav" in plan.skipped[0][1]
    p1, p2, p3 = (plan.parameters[s] for s in ("01_tiny", "02_tiny", "03_tiny"))
    run = str(setup.root / "run")
    assert p1["audio"] == str(setup.root / "run" / report.plan.AUDIO_LIST_NAME)  # only the good files
    assert p1["gain"] == 2.0 and isinstance(p1["gain"], float)  # an int given for a float is fine
    assert p1["interactive"] is False and p1["out_dir"] == run and p1["model"] == "auto"
    assert "level" not in p1 and p2 == {"level": 0.3, "out_dir": run} and p3 == {"out_dir": run}
    assert "bundled tiny VAE" in plan.model_line
    good = plan_report(notebooks=setup.nbs, out="run2", audio=_good_only(setup.inputs))
    assert good.skipped == [] and good.parameters["01_tiny"]["audio"] == str(setup.inputs)  # absolute path


def test_default_out_folder_is_timestamped(setup):
    import datetime

    plan = plan_report(notebooks=setup.nbs, audio="in", now=datetime.datetime(2024, 5, 6, 7, 8, 9))
    assert plan.run_dir == setup.root / "reports" / "20240506-070809"
    assert not (setup.root / "reports").exists()


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """One real run of ``vaelib report`` on notebooks 01_tiny and 02_tiny (with a corrupt input among good ones)."""
    root = tmp_path_factory.mktemp("e2e")
    nbs = make_notebooks(root / "nbs")
    write_inputs(root / "in")
    (root / "work").mkdir()
    hf_cache = root / "hf_cache"
    hf_cache.mkdir()
    before = snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root / "work")
        mp.setenv("HF_HUB_CACHE", str(hf_cache))
        mp.delenv("VAELIB_MODEL", raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["report", "--notebooks", str(nbs[0]), str(nbs[1]), "--audio", "../in", "--out", "run",
                       "-p", "gain=2", "-p", "level=0.25", "--no-progress", "--timeout", "120"])
    return SimpleNamespace(root=root, run=root / "work" / "run", rc=rc, out=out.getvalue(), err=err.getvalue(),
                           before=before, after=snapshot(root))


def test_e2e_runs_and_prints_paths(e2e):
    assert e2e.rc == 0, e2e.err
    run = e2e.run
    for name in ("index.html", "01_tiny.ipynb", "01_tiny.html", "02_tiny.ipynb", "02_tiny.html",
                 "01_tiny/metrics.json", "02_tiny/metrics.json", report.plan.AUDIO_LIST_NAME):
        assert (run / name).is_file(), name
    assert f"report: {run / 'index.html'}" in e2e.out and str(run / "01_tiny.html") in e2e.out
    assert e2e.out.count("model: bundled tiny VAE") == 1  # the model line, printed once
    assert "warning: skipping unreadable audio file" in e2e.err and "bad.wav" in e2e.err
    assert not [line for line in e2e.err.splitlines() if line.startswith("error")]


def test_e2e_corrupt_file_skipped_and_listed(e2e):
    used = [Path(p).name for p in json.loads((e2e.run / "01_tiny" / "files.json").read_text())]
    assert used == ["a.wav", "b.flac", "c.wav"]
    index = (e2e.run / "index.html").read_text()
    assert "Skipped audio files (1)" in index and "bad.wav" in index


def test_e2e_index_has_links_and_key_numbers(e2e):
    index = (e2e.run / "index.html").read_text()
    assert 'href="01_tiny.html"' in index and 'href="02_tiny.html"' in index
    assert "n_clips" in index and ">3<" in index and "twice_level" in index and ">0.5<" in index
    assert "model: bundled tiny VAE" in index and "gain=2.0" in index
    assert "http://" not in index and "https://" not in index
    summary = json.loads((e2e.run / "01_tiny" / "metrics.json").read_text())["summary"]
    assert summary["gain"] == 2.0 and summary["interactive"] is False


def test_e2e_html_is_self_contained_without_errors(e2e):
    page = (e2e.run / "01_tiny.html").read_text()
    assert "data:image/png;base64" in page and "data:audio/wav;base64" in page
    assert "output_error" not in page and "Traceback" not in page
    assert "<script src=" not in page and 'src="http' not in page


def test_e2e_writes_only_inside_run_folder_and_keeps_inputs(e2e):
    new = {k: v for k, v in e2e.after.items() if k not in e2e.before}
    outside = [k for k in new if not k.startswith("work/run")]
    assert outside == []
    assert {k: v for k, v in e2e.after.items() if k in e2e.before} == e2e.before  # inputs byte-identical


def test_export_html_no_input_hides_code(e2e, tmp_path):
    page = tmp_path / "no_input.html"
    assert report.export_html(e2e.run / "01_tiny.ipynb", page, no_input=True) == []
    text = page.read_text()
    assert "find_audio(audio)" not in text and "data:image/png;base64" in text
    with_code = (e2e.run / "01_tiny.html").read_text()
    assert "find_audio" in with_code


@pytest.mark.skipif(CHROMIUM is None, reason="Debian `chromium` not installed (CI: apt-get install chromium)")
def test_html_renders_in_headless_chromium(e2e, tmp_path):
    import matplotlib.pyplot as plt

    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
           (e2e.run / "01_tiny.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    img = plt.imread(str(shot))[..., :3]
    assert img.shape[:2] == (900, 1200)
    assert img.std() > 0.02, "screenshot is blank"
    assert (img.min(axis=-1) < 0.6).mean() > 0.002, "screenshot shows (almost) nothing but white"
    blue = (img[..., 2] > 0.55) & (img[..., 0] < 0.35)  # the tab:blue waveform line
    assert blue.sum() > 200, "the inline plot did not render"


def _fake_runner(log, fail=()):
    import threading
    import time

    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def run_one(nb, slot):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            log.append(("start", nb.stem, slot))
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
            log.append(("end", nb.stem, slot))
        if nb.stem in fail:
            raise report.NotebookError(nb.stem, 3, "ValueError", "boom", nb)
        return [f"w-{nb.stem}"]

    return run_one, state


@pytest.mark.parametrize("jobs", [1, 2])
def test_schedule_runs_each_notebook_once_and_03_after_02(jobs):
    nbs = [Path(f"{s}.ipynb") for s in ("01_baseline", "03_analysis", "02_latent_enhance", "04_learned_enhance")]
    log = []
    run_one, state = _fake_runner(log)
    results = list(report.run._schedule(nbs, run_one, jobs))
    assert sorted(nb.stem for nb, _, _ in results) == sorted(nb.stem for nb in nbs)
    assert all(exc is None and found == [f"w-{nb.stem}"] for nb, found, exc in results)
    assert state["most"] == jobs  # never more kernels than jobs, and as many as allowed
    events = [e[:2] for e in log]
    assert events.index(("start", "03_analysis")) > events.index(("end", "02_latent_enhance"))


def test_schedule_starts_nothing_after_a_failure():
    nbs = [Path(f"{s}.ipynb") for s in ("01_baseline", "02_latent_enhance", "03_analysis", "04_learned_enhance")]
    log = []
    run_one, _ = _fake_runner(log, fail={"01_baseline"})
    results = list(report.run._schedule(nbs, run_one, 1))
    assert [(nb.stem, exc is not None) for nb, _, exc in results] == [("01_baseline", True)]
    assert [e[1] for e in log if e[0] == "start"] == ["01_baseline"]


def test_report_refuses_bad_jobs(tmp_path):
    with pytest.raises(ReportError, match="jobs must be a positive integer"):
        report.run_report(out=tmp_path / "run", jobs=0)
    assert not (tmp_path / "run").exists()


def test_a_run_that_finishes_no_notebook_does_not_block_the_corrected_rerun(setup):
    """issue 23 item 5: a report that fails before any notebook finished leaves its partial notebook for inspection
    and a marker; the corrected command into the same --out removes exactly what that run wrote and runs."""
    with pytest.raises(report.NotebookError, match="deliberate failure"):
        report.run_report(notebooks=[setup.nbs[1]], out="run", params={"fail": "true"}, echo=None,
                          progress=False, jobs=1)
    run = setup.root / "run"
    assert (run / "02_tiny.ipynb").is_file() and (run / report.plan.FAILED_MARK).is_file()
    res = report.run_report(notebooks=[setup.nbs[1]], out="run", echo=None, progress=False, jobs=1)
    assert res.index.is_file() and not (run / report.plan.FAILED_MARK).exists()
    assert json.loads((run / "02_tiny" / "metrics.json").read_text())["summary"]["twice_level"] > 0
    # a folder holding anything else (or a run that finished a notebook) is still refused
    (run / "keep.txt").write_text("mine")
    with pytest.raises(ReportError, match="not empty"):
        plan_report(notebooks=[setup.nbs[1]], out="run")
