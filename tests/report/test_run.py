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
