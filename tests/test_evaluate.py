"""vaelib eval: rows and bad files, the same numbers as the report path, refusals, kill -9 + resume, Ray."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from vaelib.evaluate import EvalError, _items, evaluate, parse_enhancer_spec

SR = 16000
FAST = dict(model="bundled", vocoder="griffinlim", griffinlim_iters=4, device="cpu", progress=False,
            echo=lambda s: None, keep_worst=0)


def _tone(seconds, f0, seed, sr=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five good clips in two category folders (one at 22.05 kHz stereo), a corrupt file, a too-short file."""
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    (root / "speech").mkdir(parents=True)
    (root / "music").mkdir()
    sf.write(root / "speech" / "a.wav", _tone(1.0, 220, 0), SR)
    sf.write(root / "speech" / "b.flac", _tone(1.3, 440, 1), SR)
    sf.write(root / "music" / "c.wav", np.stack([_tone(1.1, 330, 2, 22050)] * 2, axis=1), 22050)
    sf.write(root / "music" / "d.wav", _tone(0.9, 880, 3), SR)
    sf.write(root / "e.wav", _tone(1.2, 110, 4), SR)
    (root / "music" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(root / "tiny.wav", np.zeros(200, np.float32), SR)
    return root


def _cmd(audio, out, *extra):
    return [sys.executable, "-m", "vaelib", "eval", "--audio", str(audio), "--out", str(out), "--model", "bundled",
            "--vocoder", "griffinlim", "--griffinlim-iters", "4", "--device", "cpu", "--no-progress",
            "--keep-worst", "0", *extra]


# ------------------------------------------------------------------------------------------------------
def test_parse_enhancer_spec():
    got = parse_enhancer_spec("seed_hybrid, contrast:factor=1.2,frequency:gain=2")
    assert list(got) == ["seed_hybrid", "contrast:factor=1.2", "frequency:gain=2"]
    assert got["contrast:factor=1.2"] == ("contrast", {"factor": 1.2})
    assert got["seed_hybrid"][0] == "hybrid"
    assert parse_enhancer_spec(None) == {} and parse_enhancer_spec("") == {}
    for bad, msg in (("contrast:factor", "key=value"), ("nosuch", "nosuch"), ("contrast:factor=99", "range"),
                     ("contrast,contrast", "twice"), ("contrast:bogus=1", "bogus")):
        with pytest.raises(EvalError, match=msg):
            parse_enhancer_spec(bad)


def test_categories_from_manifest_and_folders(corpus):
    from vaelib.audio import find_audio

    demo = {it["clip"]: it["category"] for it in _items([p.resolve() for p in find_audio("demo")])}
    # the one rule of vaelib.categories: file-name words first (drums_* is percussion, though the demo manifest's
    # descriptive kind says music), then folder names, then the manifest's kind (synthetic -> other)
    assert demo["speech_en_us_f4.flac"] == "speech" and demo["drums_hats16.flac"] == "percussion"
    assert demo["chirp_log_50_8000.flac"] == "other"
    items = {it["clip"]: it["category"] for it in _items(sorted(p.resolve() for p in corpus.rglob("*.wav")))}
    assert items == {"e.wav": "other", "tiny.wav": "other", "music/broken.wav": "music", "music/c.wav": "music",
                     "music/d.wav": "music", "speech/a.wav": "speech"}


def test_eval_rows_bad_files_and_report_numbers(corpus, tmp_path):
    """One row per (clip, stage) with every metric of the report path's score_stages; broken files listed with a
    one-line reason; CSV = Parquet; a clip's numbers equal pipeline.reconstruct + metrics.score exactly."""
    from vaelib import load_vae, load_vocoder, metrics
    from vaelib.audio import load_audio
    from vaelib.pipeline import reconstruct

    out = tmp_path / "run"
    res = evaluate(corpus, out=out, enhancers="seed_contrast", workers=2, batch_size=3, **{**FAST, "keep_worst": 1})
    df = pd.read_parquet(res.results)
    bad = pd.read_parquet(res.bad_files)
    assert res.n_clips == 5 and res.n_bad == 2 and len(df) == 15
    assert sorted(bad["clip"]) == ["music/broken.wav", "tiny.wav"]
    assert all("\n" not in r and len(r) < 400 for r in bad["reason"])
    assert "too short" in bad.set_index("clip").loc["tiny.wav", "reason"]
    assert not df.duplicated(["clip", "stage"]).any()
    assert list(df["stage"][:3]) == ["mel_projection", "vae", "seed_contrast"]
    csv = pd.read_csv(res.results_csv, keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(df.columns)
    np.testing.assert_allclose(csv["dec_mel_lsd_hf"], df["dec_mel_lsd_hf"], rtol=1e-12)
    summary = json.loads(res.summary.read_text())
    assert summary["n_clips"] == 5 and summary["n_bad"] == 2 and set(summary["stages"]) == {
        "mel_projection", "vae", "seed_contrast"}
    assert summary["worst"] and all((out / "audio" / f).is_file() for f in summary["worst"][0]["files"].values())
    # the report path on one clip: reconstruct + score / score_mel (score_stages' columns)
    row = df[(df["clip"] == "music/c.wav")].set_index("stage")
    assert row.loc["vae", "category"] == "music" and row.loc["vae", "duration_s"] == pytest.approx(1.1, abs=1e-3)
    rec = reconstruct(load_audio(corpus / "music" / "c.wav"), load_vae("bundled", device="cpu"),
                      load_vocoder("griffinlim", n_iter=4), enhancers=["seed_contrast"])
    for stage in ("mel_projection", "vae", "seed_contrast"):
        want = metrics.score(rec.wave, rec[stage].wave)
        want.update({f"dec_{k}": v for k, v in metrics.score_mel(rec.input_mel, rec[stage].mel).items()})
        for k, v in want.items():
            assert row.loc[stage, k] == v or (np.isnan(v) and np.isnan(row.loc[stage, k])), (stage, k)
    # inputs untouched, nothing written beside them
    assert sorted(p.name for p in corpus.rglob("*")) == sorted(
        ["speech", "music", "a.wav", "b.flac", "c.wav", "d.wav", "e.wav", "broken.wav", "tiny.wav"])


def test_refusals(corpus, tmp_path):
    out = tmp_path / "run"
    evaluate(corpus / "speech" / "a.wav", out=out, **FAST)
    with pytest.raises(EvalError, match="other parameters.*seed"):
        evaluate(corpus / "speech" / "a.wav", out=out, seed=1, **FAST)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("keep me")
    with pytest.raises(EvalError, match="not a vaelib eval run"):
        evaluate(corpus / "speech" / "a.wav", out=tmp_path / "other", **FAST)
    with pytest.raises(EvalError, match="inside the input folder"):
        evaluate(corpus, out=corpus / "results", **FAST)
    with pytest.raises(EvalError, match="bfloat16"):
        evaluate(corpus, out=tmp_path / "bf", dtype="bfloat16", **FAST)
    with pytest.raises(EvalError, match="matches no file"):
        evaluate(str(tmp_path / "*.nope"), out=tmp_path / "g", **FAST)
    assert not (corpus / "results").exists() and not (tmp_path / "bf").exists()


def test_cli_bad_input_is_one_line(tmp_path):
    p = subprocess.run(_cmd(tmp_path / "missing", tmp_path / "o"), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_kill_9_then_same_command_equals_uninterrupted(corpus, tmp_path):
    """SIGKILL mid-run, then the same command: same rows, no duplicates, identical numbers."""
    killed = tmp_path / "killed"
    cmd = _cmd(corpus, killed, "--batch-size", "1")
    proc = subprocess.Popen([*cmd, "--pause-after-batch", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not list((killed / "parts").glob("rows-*.parquet")) and time.time() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    parts = list((killed / "parts").glob("*.parquet"))
    assert len(parts) == 1 and not (killed / "results.parquet").exists()  # killed after the first batch
    first = pd.read_parquet(parts[0]).drop_duplicates("path")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr
    assert "1 already done, 6 to do" in p.stdout
    inv = json.loads((killed / "summary.json").read_text())["this_invocation"]
    total = pd.read_parquet(killed / "results.parquet").drop_duplicates("path")["duration_s"].sum()
    assert inv["audio_s"] == pytest.approx(total - first["duration_s"].sum())  # speed counts this run's audio only
    assert 0 < inv["model_load_s"] < inv["seconds"]
    fresh = evaluate(corpus, out=tmp_path / "fresh", batch_size=4, **FAST)
    a = pd.read_parquet(killed / "results.parquet")
    b = pd.read_parquet(fresh.results)
    assert not a.duplicated(["path", "stage"]).any()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "bad_files.parquet"), pd.read_parquet(fresh.bad_files))


def test_ray_engine_matches_local(tmp_path):
    """--engine ray (Ray Data map_batches, one actor loading the models once) writes the same table as the local
    engine, to 1e-5 on every metric, on two demo clips."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'vaelib[ray]')")
    from vaelib.assets import demo_dir

    clips = [str(demo_dir() / "eval" / n) for n in ("noise_bursts_mixed.flac", "speech_en_us_f4.flac")]
    local = pd.read_parquet(evaluate(clips, out=tmp_path / "local", **FAST).results)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = pd.read_parquet(evaluate(clips, out=tmp_path / "ray", engine="ray", batch_size=1, **FAST).results)
    finally:
        ray.shutdown()
    assert list(remote.columns) == list(local.columns) and len(remote) == len(local) == 4
    num = [c for c in local.columns if local[c].dtype.kind == "f"]
    assert len(num) > 30
    pd.testing.assert_frame_equal(remote.drop(columns=num), local.drop(columns=num))
    np.testing.assert_allclose(remote[num].to_numpy(), local[num].to_numpy(), rtol=1e-5, atol=1e-5)


def test_foreign_restorer_is_a_one_line_run_error(corpus, tmp_path):
    """The bundled restorers belong to the bundled VAE: on another VAE eval stops in one line before any clip
    (not a bad file per clip), and --allow-foreign-restorer runs it anyway."""
    from conftest import write_tiny_snapshot

    snap = write_tiny_snapshot(tmp_path / "other-vae")
    cmd = [*_cmd(corpus / "speech" / "a.wav", tmp_path / "run"), "--enhancers", "learned"]
    cmd[cmd.index("bundled")] = str(snap)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "trained for VAE" in done.stderr and "--allow-foreign-restorer" in done.stderr
    ok = subprocess.run([*cmd, "--allow-foreign-restorer"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
