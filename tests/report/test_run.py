"""vaelib.report.run: the environment the report's kernels inherit."""

import os

from vaelib.report import run


def test_kernel_env_sets_malloc_and_threads_unless_the_user_did(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")  # the user's choice is kept
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with run._KernelEnv(threads=1):
        assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(32 * 2**20)
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "12345"
        assert os.environ["OMP_NUM_THREADS"] == "1"
        assert os.environ["TQDM_DISABLE"] == "1"
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ  # restored afterwards
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "12345"
    assert "OMP_NUM_THREADS" not in os.environ


def test_kernel_env_without_threads_leaves_thread_counts_alone(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with run._KernelEnv():
        assert "OMP_NUM_THREADS" not in os.environ
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(2**30)


def test_the_notebooks_shared_cache_is_removed_and_a_symlink_is_not_followed(tmp_path):
    from vaelib.report import run
    from vaelib.report.plan import CACHE_DIR

    (tmp_path / "run" / CACHE_DIR).mkdir(parents=True)
    (tmp_path / "run" / CACHE_DIR / "x.enc.pt").write_bytes(b"0")
    (tmp_path / "run" / "keep.txt").write_text("kept")
    run._remove_cache(tmp_path / "run")
    assert not (tmp_path / "run" / CACHE_DIR).exists() and (tmp_path / "run" / "keep.txt").is_file()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "data.txt").write_text("not the run's")
    (tmp_path / "run" / CACHE_DIR).symlink_to(tmp_path / "elsewhere")
    run._remove_cache(tmp_path / "run")  # a link planted there: its target is left alone
    assert (tmp_path / "elsewhere" / "data.txt").read_text() == "not the run's"


def test_a_session_shares_one_cache_folder_per_run(tmp_path):
    from types import SimpleNamespace

    from vaelib.pipeline import RoundTripCache
    from vaelib.report.plan import CACHE_DIR
    from vaelib.study.session import Session

    s = Session("baseline", {}, tmp_path / "run" / "01_baseline", SimpleNamespace(), [], [])
    t = Session("learned", {}, tmp_path / "run" / "04_learned_enhance", SimpleNamespace(), [], [])
    assert isinstance(s.cache, RoundTripCache) and s.cache is s.cache
    assert s.cache.folder == t.cache.folder == tmp_path / "run" / CACHE_DIR
