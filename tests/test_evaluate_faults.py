"""vaelib eval under faults and hostile input: two writers, kill -9, crashes inside a part write, damaged parts,
full disks, non-UTF-8 names, FIFOs, NaN-producing models, per-clip failures, outputs inside inputs, excerpts that
follow their clip. Every test checks that no input file changed (SHA-256 before and after)."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vaelib.evaluate import EvalError, clip_id, column_path, evaluate, path_of

SR = 16000
FAST = dict(model="bundled", vocoder="griffinlim", griffinlim_iters=4, device="cpu", progress=False, keep_worst=0)


def _tone(seconds, f0, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _corpus(root: Path, n=3) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        sf.write(root / f"c{i}.wav", _tone(0.5 + 0.1 * i, 220 * (i + 1), i), SR)
    return root


def _hashes(root: Path) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _cmd(audio, out, *extra, model="bundled"):
    return [sys.executable, "-m", "vaelib", "eval", "--audio", str(audio), "--out", str(out), "--model", model,
            "--vocoder", "griffinlim", "--griffinlim-iters", "4", "--device", "cpu", "--no-progress",
            "--keep-worst", "0", *extra]


def _lines():
    got = []
    return got, got.append


def _wait_for_part(proc, out, n=1, timeout=240):
    deadline = time.time() + timeout
    while len(list((out / "parts").glob("rows-*.parquet"))) < n and time.time() < deadline:
        time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
    assert len(list((out / "parts").glob("rows-*.parquet"))) >= n


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The reference: an uninterrupted run of a 3-clip corpus."""
    base = tmp_path_factory.mktemp("fresh")
    corpus = _corpus(base / "corpus")
    res = evaluate(corpus, out=base / "run", echo=lambda s: None, **FAST)
    return corpus, pd.read_parquet(res.results)


def _same_table(out: Path, want: pd.DataFrame, corpus_from: Path, corpus_to: Path):
    got = pd.read_parquet(out / "results.parquet")
    assert not got.duplicated(["path", "stage"]).any()
    got["path"] = got["path"].str.replace(str(corpus_to), str(corpus_from), regex=False)
    num = [c for c in want.columns if want[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(got.drop(columns=num + ["run_hash"]), want.drop(columns=num + ["run_hash"]))
    np.testing.assert_array_equal(got[num].to_numpy(), want[num].to_numpy())


# ------------------------------------------------------------------------------------------------------
def test_two_evals_on_one_folder_second_refused_then_kill_9_leaves_no_stale_lock(tmp_path, fresh):
    """Process A holds the folder (paused after its first part); process B on the same --out exits 2 in one line
    naming A's PID and touches nothing; after kill -9 of A the same command resumes: no duplicate row."""
    corpus = _corpus(tmp_path / "corpus")
    before = _hashes(corpus)
    out = tmp_path / "run"
    a = subprocess.Popen([*_cmd(corpus, out, "--batch-size", "1"), "--pause-after-batch", "60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_part(a, out)
        parts = sorted(os.listdir(out / "parts"))
        b = subprocess.run(_cmd(corpus, out, "--batch-size", "1"), capture_output=True, text=True, timeout=120)
        assert b.returncode == 2
        assert b.stderr.count("\n") == 1 and "Traceback" not in b.stderr
        assert f"in use by process {a.pid}" in b.stderr and str(out) in b.stderr
        assert sorted(os.listdir(out / "parts")) == parts and a.poll() is None  # B deleted nothing; A lives
    finally:
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
    c = subprocess.run(_cmd(corpus, out, "--batch-size", "1"), capture_output=True, text=True, timeout=300)
    assert c.returncode == 0, c.stderr
    assert "1 already done, 2 to do" in c.stdout
    _same_table(out, fresh[1], fresh[0], corpus)
    assert _hashes(corpus) == before


def test_evaluate_in_process_refuses_a_held_folder_and_releases_its_own(tmp_path):
    from vaelib.runlock import lock_folder

    corpus = _corpus(tmp_path / "corpus", n=1)
    out = tmp_path / "run"
    out.mkdir()
    with lock_folder(out, name=".vaelib.lock"):
        with pytest.raises(EvalError, match=f"in use by process {os.getpid()}"):
            evaluate(corpus, out=out, echo=lambda s: None, **FAST)
    evaluate(corpus, out=out, echo=lambda s: None, **FAST)
    evaluate(corpus, out=out, echo=lambda s: None, **FAST)  # the first call released its lock


CRASH_IN_PART_WRITE = textwrap.dedent("""
    import os, signal, sys
    import pyarrow.parquet as pq
    from vaelib.cli import main

    real = pq.write_table
    calls = {"n": 0}

    def write_table(table, where, **kw):  # the 2nd part: half of its bytes reach the disk, then SIGKILL
        calls["n"] += 1
        real(table, where, **kw)
        if calls["n"] == 2:
            if hasattr(where, "flush"):  # eval hands Arrow an open file
                where.flush()
            name = getattr(where, "name", where)
            data = open(name, "rb").read()
            with open(name, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

    pq.write_table = write_table
    sys.exit(main(sys.argv[1:]))
""")


def test_crash_injected_in_the_middle_of_a_part_write(tmp_path, fresh):
    corpus = _corpus(tmp_path / "corpus")
    before = _hashes(corpus)
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", CRASH_IN_PART_WRITE, *_cmd(corpus, out, "--batch-size", "1")[3:]],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert len(list((out / "parts").glob("rows-*.parquet"))) == 1
    assert len(list((out / "parts").glob(".rows-*.tmp"))) == 1  # the half-written part, never renamed
    again = subprocess.run(_cmd(corpus, out, "--batch-size", "1"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1 already done, 2 to do" in again.stdout
    assert not list((out / "parts").glob(".*.tmp"))
    _same_table(out, fresh[1], fresh[0], corpus)
    assert _hashes(corpus) == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_part_is_moved_aside_with_a_warning_and_redone(tmp_path, fresh, damage):
    corpus = _corpus(tmp_path / "corpus")
    before = _hashes(corpus)
    out = tmp_path / "run"
    evaluate(corpus, out=out, batch_size=1, echo=lambda s: None, **FAST)
    part = sorted((out / "parts").glob("rows-*.parquet"))[1]
    data = part.read_bytes()
    part.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    lines, echo = _lines()
    res = evaluate(corpus, out=out, batch_size=1, echo=echo, **FAST)
    warn = [ln for ln in lines if ln.startswith("warning:")]
    assert len(warn) == 1 and part.name in warn[0] and "parts/damaged" in warn[0] and "redone" in warn[0]
    assert any("2 already done, 1 to do" in ln for ln in lines)
    assert (out / "parts" / "damaged" / part.name).read_bytes() != data
    assert res.n_clips == 3
    _same_table(out, fresh[1], fresh[0], corpus)
    assert _hashes(corpus) == before


def test_run_json_never_completed_and_mistyped_model_leave_nothing_that_blocks(tmp_path):
    corpus = _corpus(tmp_path / "corpus", n=1)
    quiet = dict(echo=lambda s: None, **FAST)
    # a crash (or full disk) while writing run.json: parts/ and a temporary file, no run.json
    out = tmp_path / "a"
    (out / "parts").mkdir(parents=True)
    (out / ".run.json.1234abcd.tmp").write_text('{"form')
    assert evaluate(corpus, out=out, **quiet).n_clips == 1
    # an empty run.json and nothing done
    out = tmp_path / "b"
    out.mkdir()
    (out / "run.json").write_text("")
    assert evaluate(corpus, out=out, **quiet).n_clips == 1
    # a model folder that does not exist: fails before the first clip; the corrected command is not refused
    out = tmp_path / "c"
    with pytest.raises(EvalError, match="neither an existing folder"):
        evaluate(corpus, out=out, **{**quiet, "model": str(tmp_path / "no_such_model")})
    assert evaluate(corpus, out=out, **quiet).n_clips == 1
    # but a folder with work done is still refused for other parameters
    with pytest.raises(EvalError, match="other parameters"):
        evaluate(corpus, out=out, **{**quiet, "seed": 3})


def _tmpfs(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    return path


def test_disk_full_is_one_line_naming_the_path_and_free_space_and_leaves_no_temporary_file(tmp_path, fresh):
    corpus = _corpus(tmp_path / "corpus")
    disk = _tmpfs(tmp_path / "disk", "40k")
    try:
        out = disk / "run"
        p = subprocess.run(_cmd(corpus, out, "--batch-size", "1"), capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stderr.startswith("error: cannot write ") and p.stderr.count("\n") == 1
        assert "No space left on device" in p.stderr and "free of 40.0 KiB" in p.stderr and str(out) in p.stderr
        leftovers = [str(q) for q in out.rglob(".*") if q.name != ".vaelib.lock"]
        assert leftovers == []
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        p = subprocess.run(_cmd(corpus, out, "--batch-size", "1"), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        _same_table(out, fresh[1], fresh[0], corpus)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------------------------------------
def test_non_utf8_file_names_are_stored_losslessly_and_resume(tmp_path):
    corpus = _corpus(tmp_path / "corpus", n=1)
    odd = Path(os.fsdecode(os.fsencode(str(corpus)) + b"/caf\xe9 \xff.wav"))
    sf.write(tmp_path / "x.wav", _tone(0.6, 500, 9), SR)
    os.rename(tmp_path / "x.wav", odd)
    broken = Path(os.fsdecode(os.fsencode(str(corpus)) + b"/bad\xfe.wav"))
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    before = _hashes(corpus)
    out = tmp_path / "run"
    res = evaluate(corpus, out=out, echo=lambda s: None, **{**FAST, "keep_worst": 3})
    df = pd.read_parquet(res.results)
    bad = pd.read_parquet(res.bad_files)
    assert res.n_clips == 2 and res.n_bad == 1
    row = df[df["clip"] == "caf\\xe9 \\xff.wav"]
    assert len(row) == 2 and path_of(row["path"].iloc[0]) == odd.resolve()
    assert row["path"].iloc[0] == column_path(odd.resolve()) and row["path"].iloc[0].startswith("hex:")
    assert list(bad["clip"]) == ["bad\\xfe.wav"] and path_of(bad["path"].iloc[0]) == broken.resolve()
    csv = pd.read_csv(res.results_csv)
    assert set(csv["clip"]) == {"c0.wav", "caf\\xe9 \\xff.wav"}
    summary = json.loads(res.summary.read_text())
    assert {w["clip"] for w in summary["worst"]} == {"c0.wav", "caf\\xe9 \\xff.wav"}
    lines, echo = _lines()
    again = evaluate(corpus, out=out, echo=echo, **{**FAST, "keep_worst": 3})
    assert any("3 already done, 0 to do" in ln for ln in lines)
    pd.testing.assert_frame_equal(pd.read_parquet(again.results), df)
    assert _hashes(corpus) == before


def test_fifo_is_skipped_with_a_reason_and_never_opened(tmp_path):
    from vaelib.audio import find_audio

    corpus = _corpus(tmp_path / "corpus", n=1)
    fifo = corpus / "pipe.wav"
    os.mkfifo(fifo)
    before = _hashes(corpus)
    skipped = []
    assert find_audio(corpus, skipped=skipped) == [corpus / "c0.wav"]
    assert skipped == [(fifo, "a FIFO (named pipe), not a regular file; skipped without opening it")]
    assert find_audio(corpus) == [corpus / "c0.wav"]
    # a folder, the FIFO itself, and a glob matching it: each ends (timeout = a hang) with the FIFO a bad file
    for i, audio in enumerate([corpus, fifo, corpus / "*.wav"]):
        out = tmp_path / f"run{i}"
        p = subprocess.run(_cmd(audio, out), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        bad = pd.read_parquet(out / "bad_files.parquet")
        assert list(bad["clip"]) == ["pipe.wav"] and "FIFO" in bad["reason"].iloc[0]
    assert _hashes(corpus) == before


def test_nan_producing_model_goes_to_bad_files_and_the_run_continues(tmp_path):
    """A copy of the bundled VAE whose decoder's last bias is NaN: every decoded mel is NaN; each clip is a bad file
    with a one-line reason naming the stage, the run ends with exit 0 and an empty, well-formed table. (A config
    with scaling_factor 0 is refused before the first clip: tests/test_models_faults.py.)"""
    from safetensors.torch import load_file, save_file

    from vaelib.assets import bundled_model_dir

    model = tmp_path / "nan_vae"
    shutil.copytree(bundled_model_dir() / "vae", model / "vae")
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["decoder.conv_out.bias"][:] = float("nan")
    save_file(state, weights)
    corpus = _corpus(tmp_path / "corpus", n=2)
    before = _hashes(corpus)
    out = tmp_path / "run"
    p = subprocess.run(_cmd(corpus, out, "--keep-worst", "2", model=str(model)), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    bad = pd.read_parquet(out / "bad_files.parquet")
    assert len(bad) == 2 and all("NaN/Inf (stage vae)" in r and "\n" not in r for r in bad["reason"])
    assert json.loads((out / "summary.json").read_text())["n_clips"] == 0
    assert _hashes(corpus) == before


def test_every_per_clip_failure_is_isolated(tmp_path, monkeypatch):
    """MemoryError while decoding, a RuntimeError in the round trip, an exception while scoring: each is that
    clip's bad file with a one-line reason; the other clips are scored (with and without worker threads)."""
    import vaelib.audio
    import vaelib.engine
    from vaelib import metrics

    corpus = _corpus(tmp_path / "corpus", n=4)
    real_load, real_ws, real_score = vaelib.audio.load_audio, vaelib.engine.window_stages, metrics.score_many

    def load(path, *a, **k):
        if Path(path).name == "c0.wav":
            raise MemoryError()
        return real_load(path, *a, **k)

    def window_stages(vae, segs, *a, **k):  # the model calls of the batched engine and of the one-window path
        if segs.shape[1] == int(0.6 * SR):  # c1 (60 frames, a multiple of 4: not padded)
            raise RuntimeError("CUDA out of memory.\nTried to allocate 18 GiB")
        return real_ws(vae, segs, *a, **k)

    def score_many(ref, waves, **k):
        if ref.shape[0] < int(0.75 * SR) and ref.shape[0] >= int(0.7 * SR):  # c2 (0.7 s, padded)
            raise ZeroDivisionError("boom")
        return real_score(ref, waves, **k)

    monkeypatch.setattr(vaelib.audio, "load_audio", load)
    monkeypatch.setattr(vaelib.engine, "window_stages", window_stages)
    monkeypatch.setattr(metrics, "score_many", score_many)
    for workers in (0, 2):
        res = evaluate(corpus, out=tmp_path / f"run{workers}", workers=workers, echo=lambda s: None, **FAST)
        bad = pd.read_parquet(res.bad_files).set_index("clip")["reason"]
        assert res.n_clips == 1 and sorted(pd.read_parquet(res.results)["clip"].unique()) == ["c3.wav"]
        assert bad["c0.wav"].startswith("out of memory (MemoryError)")
        assert bad["c1.wav"] == "round trip failed: RuntimeError: CUDA out of memory. Tried to allocate 18 GiB"
        assert bad["c2.wav"] == "scoring failed: ZeroDivisionError: boom"


# ------------------------------------------------------------------------------------------------------
def test_out_inside_any_input_folder_is_refused_for_every_form_of_audio(tmp_path):
    from vaelib.audio import write_audio_list

    corpus = _corpus(tmp_path / "corpus")
    (corpus / "sub").mkdir()
    sf.write(corpus / "sub" / "d.wav", _tone(0.5, 300, 7), SR)
    lst = write_audio_list(tmp_path / "list.lst", [corpus / "sub" / "d.wav", corpus / "c0.wav"])
    before = _hashes(corpus)
    quiet = dict(echo=lambda s: None, **FAST)
    for audio, out in [(corpus, corpus / "run"), (str(corpus / "*.wav"), corpus / "run"),
                       (str(corpus / "**" / "*.wav"), corpus / "sub" / "x" / "run"), (lst, corpus / "sub" / "run"),
                       (str(corpus / "**" / "d.wav"), corpus / "other" / "run"),
                       (lst, corpus / "run"), (corpus / "c0.wav", corpus / "run"), ([corpus / "sub"], corpus / "sub")]:
        with pytest.raises(EvalError, match="lies inside"):
            evaluate(audio, out=out, **quiet)
    assert _hashes(corpus) == before and sorted(p.name for p in corpus.iterdir()) == ["c0.wav", "c1.wav", "c2.wav",
                                                                                       "sub"]
    p = subprocess.run(_cmd(str(corpus / "*.wav"), corpus / "run"), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "lies inside" in p.stderr and p.stderr.count("\n") == 1


def test_eval_run_folders_are_never_listed_as_input(tmp_path):
    """An earlier run folder copied into the corpus: its excerpts are left out of a folder and of a glob."""
    from vaelib.audio import find_audio

    corpus = _corpus(tmp_path / "corpus", n=2)
    evaluate(corpus, out=tmp_path / "run", echo=lambda s: None, **{**FAST, "keep_worst": 2})
    shutil.copytree(tmp_path / "run", corpus / "old_run")
    sf.write(corpus / "c9.flac", _tone(0.5, 700, 9), SR)
    before = _hashes(corpus)
    assert len(list((corpus / "old_run" / "audio").glob("*.flac"))) == 6
    assert [p.name for p in find_audio(corpus)] == ["c0.wav", "c1.wav", "c9.flac"]
    for i, (audio, n) in enumerate([(corpus, 3), (str(corpus / "**" / "*.flac"), 1)]):
        lines, echo = _lines()
        res = evaluate(audio, out=tmp_path / f"again{i}", echo=echo, **FAST)
        assert res.n_clips == n and res.n_bad == 0
        assert any("left out" in ln and "old_run" in ln for ln in lines)
    with pytest.raises(EvalError, match="inside vaelib eval run folders"):
        evaluate(str(corpus / "old_run" / "**" / "*.flac"), out=tmp_path / "none", echo=lambda s: None, **FAST)
    assert _hashes(corpus) == before


def test_excerpts_follow_their_clip_when_the_ranking_changes(tmp_path):
    """keep_worst=1; the corpus grows by the clip that is worst overall, the run resumes: the summary names it and
    its excerpt files hold its audio; the previous worst clip's files are gone."""
    from vaelib.audio import load_audio, normalize

    corpus = _corpus(tmp_path / "corpus", n=3)
    keep = {**FAST, "keep_worst": 1, "echo": lambda s: None}
    scratch = pd.read_parquet(evaluate(corpus, out=tmp_path / "scratch", **FAST, echo=lambda s: None).results)
    vae = scratch[scratch["stage"] == "vae"].sort_values("dec_mel_lsd_hf", ascending=False)
    worst = Path(path_of(vae["path"].iloc[0]))
    growing = tmp_path / "growing"
    growing.mkdir()
    for p in sorted(corpus.iterdir()):
        if p != worst:
            shutil.copy(p, growing / p.name)
    out = tmp_path / "run"
    first = json.loads(evaluate(growing, out=out, **keep).summary.read_text())["worst"]
    assert first[0]["clip"] != worst.name
    old_files = set(first[0]["files"].values())
    shutil.copy(worst, growing / worst.name)
    second = json.loads(evaluate(growing, out=out, **keep).summary.read_text())["worst"]
    assert [w["clip"] for w in second] == [worst.name]
    cid = clip_id(column_path((growing / worst.name).resolve()))
    files = second[0]["files"]
    assert set(files.values()) == {f"clip-{cid}_{i}.flac" for i in range(3)}
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(files.values())
    assert not old_files & set(os.listdir(out / "audio"))
    excerpt, _ = sf.read(out / "audio" / files["input"], dtype="float32")
    ref = normalize(load_audio(growing / worst.name))[0][: excerpt.size]
    assert np.corrcoef(excerpt[: ref.size], ref)[0, 1] > 0.999


def test_non_utf8_out_folder_is_echoed_escaped(tmp_path):
    corpus = _corpus(tmp_path / "corpus", n=1)
    out = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xe9"))
    lines, echo = _lines()
    res = evaluate(corpus, out=out, echo=echo, **{**FAST, "keep_worst": 1})
    assert res.n_clips == 1 and out.is_dir() and len(os.listdir(out / "audio")) == 3
    assert lines and all(ln.encode("utf-8") for ln in lines) and any("run\\xe9" in ln for ln in lines)


def test_typo_model_online_fails_before_run_json_and_the_corrected_rerun_uses_the_folder(tmp_path, monkeypatch):
    """issue 23 item 5: the model is checked (here: the Hub says no such repo) before run.json is written."""
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    def no_repo(url, timeout=None, **kw):
        import httpx

        req = httpx.Request("HEAD", url)
        raise RepositoryNotFoundError("404", response=httpx.Response(404, request=req))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", no_repo)
    out = tmp_path / "ev"
    with pytest.raises(EvalError, match="not a model repo on the Hugging Face Hub"):
        evaluate("demo", model="cvssp/audioldm2-musik", out=out, progress=False, echo=lambda s: None)
    assert not (out / "run.json").exists()
