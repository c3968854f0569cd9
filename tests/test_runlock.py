"""vaelib.runlock: one writer per folder (real processes, kill -9), atomic files and directories under injected
crashes and full disks."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vaelib import runlock
from vaelib.runlock import FolderLocked, StorageError, atomic_write, lock_folder, recover_dir, replace_dir

HOLD = textwrap.dedent("""
    import sys, time
    from vaelib.runlock import lock_folder
    lock = lock_folder(sys.argv[1], what="run folder")
    print("locked", flush=True)
    time.sleep(600)
""")


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_naming_the_pid_and_kill_9_frees_it(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(FolderLocked) as e:
            lock_folder(tmp_path, what="run folder")
        msg = str(e.value)
        assert e.value.pid == proc.pid and f"process {proc.pid}" in msg and "\n" not in msg
        assert msg.startswith(f"run folder {tmp_path} is in use")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the dead holder's lock file (with its PID) is still there, and blocks no one
    assert (tmp_path / runlock.LOCK_NAME).read_text().split() == [str(proc.pid)]
    with lock_folder(tmp_path) as lock:
        assert lock.held and (tmp_path / runlock.LOCK_NAME).read_text().split() == [str(os.getpid())]
    assert not lock.held


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    lock = lock_folder(tmp_path)
    with pytest.raises(FolderLocked, match=r"\(this process\)"):
        lock_folder(tmp_path)
    lock.release()
    lock_folder(tmp_path).release()


def test_lock_in_unwritable_place_is_one_line(tmp_path):
    with pytest.raises(StorageError) as e:
        lock_folder(tmp_path / "missing")
    assert "cannot create the lock file" in str(e.value) and "free of" in str(e.value)


# ------------------------------------------------------------------------------------------------------
def test_atomic_write_keeps_old_content_and_cleans_up_on_any_error(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    def enospc(p):
        p.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError) as e:
        atomic_write(target, enospc)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and "\n" not in msg
    assert str(target) in msg and "No space left on device" in msg and "free of" in msg and "free some space" in msg
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["state.json"]

    def bug(p):
        p.write_text("half")
        raise KeyError("not an OS error")

    with pytest.raises(KeyError):
        atomic_write(target, bug)
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["state.json"]
    atomic_write(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["state.json"]


def _tmpfs(path, size="64k"):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    return path


def test_atomic_write_on_a_really_full_disk(tmp_path):
    """A real ENOSPC from the kernel (a 64 KiB tmpfs): one line, old file intact, no temporary file left."""
    disk = _tmpfs(tmp_path / "disk")
    try:
        target = disk / "results.bin"
        runlock.write_bytes(target, b"x" * 1000)
        with pytest.raises(StorageError) as e:
            runlock.write_bytes(target, b"y" * 200_000)
        assert e.value.errno == errno.ENOSPC and "KiB free of 64.0 KiB" in str(e.value)
        assert target.read_bytes() == b"x" * 1000 and os.listdir(disk) == ["results.bin"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------------------------------------
def _files(folder: Path) -> dict:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def _build(step):
    def build(d):
        (d / "state.safetensors").write_text(f"weights {step}")
        (d / "state.json").write_text(f"counters {step}")
    return build


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_swaps_whole_versions(tmp_path, exchange):
    ck = tmp_path / "checkpoint"
    replace_dir(ck, _build(500), exchange=exchange)
    replace_dir(ck, _build(750), exchange=exchange)
    assert _files(ck) == {"state.json": "counters 750", "state.safetensors": "weights 750"}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]

    def failing(d):
        (d / "state.safetensors").write_text("weights 1000")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match="No space left"):
        replace_dir(ck, failing, exchange=exchange)
    assert _files(ck) == {"state.json": "counters 750", "state.safetensors": "weights 750"}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


CRASH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from vaelib import runlock
    target, step, kill_at, exchange = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    calls = {"n": 0}
    real_rename = os.rename

    def rename(a, b):  # the crash is injected at the kill_at-th rename of replace_dir
        calls["n"] += 1
        if calls["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(a, b)

    os.rename = rename
    if not exchange:
        runlock._exchange = lambda a, b: False

    def build(d):
        (d / "state.safetensors").write_text("weights " + step)
        if kill_at == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # in the middle of the build: one file of two written
        (d / "state.json").write_text("counters " + step)

    runlock.replace_dir(target, build, exchange=exchange)
""")


@pytest.mark.parametrize("exchange", [False, True])
@pytest.mark.parametrize("kill_at", [0, 1, 2, 3])
def test_kill_9_anywhere_in_replace_dir_leaves_one_complete_version(tmp_path, kill_at, exchange):
    """SIGKILL injected mid-build and before each rename of a real process: afterwards recover_dir yields
    the old or the new version, each complete (weights and counters of the same step), never a mix."""
    ck = tmp_path / "checkpoint"
    replace_dir(ck, _build(500))
    p = subprocess.run([sys.executable, "-c", CRASH, str(ck), "750", str(kill_at), "1" if exchange else "0"],
                       capture_output=True, text=True, timeout=60)
    killed = p.returncode == -signal.SIGKILL
    if not killed:  # fewer renames than kill_at on this path: it completed
        assert p.returncode == 0, p.stderr
    assert recover_dir(ck) == ck
    got = _files(ck)
    assert got in ({"state.json": "counters 500", "state.safetensors": "weights 500"},
                   {"state.json": "counters 750", "state.safetensors": "weights 750"}), got
    if kill_at == 0:
        assert got["state.json"] == "counters 500"
    if not killed or (kill_at == 3 and not exchange):  # once the old version was moved aside, the new wins
        assert got["state.json"] == "counters 750"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    if kill_at == 3 and not exchange:
        assert killed  # the crash really hit the window between the two renames


def test_recover_dir_without_any_version(tmp_path):
    assert recover_dir(tmp_path / "none") is None


def test_lock_holder_during_slow_start(tmp_path):
    """A lock file whose holder has not written its PID yet still refuses, without a PID."""
    import fcntl

    fd = os.open(tmp_path / runlock.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t = time.time()
        with pytest.raises(FolderLocked, match="in use by another process") as e:
            lock_folder(tmp_path)
        assert e.value.pid is None and time.time() - t < 5
    finally:
        os.close(fd)
