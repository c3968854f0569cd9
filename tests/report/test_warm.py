"""Warm kernels (vaelib.report.warm): kernels forked from a zygote that imported the heavy modules once.

What must hold: a notebook sees the same process state as in a cold kernel (working directory, environment,
sys.path, thread count, a fresh namespace), errors and timeouts surface as with cold kernels, no kernel outlives
its run (kill -9 of the zygote takes its kernels along; the zygote leaves when its runner's socket closes), and a
zygote that is not there means cold kernels, not a failure.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from vaelib.report import warm

pytestmark = pytest.mark.skipif(not (sys.platform.startswith("linux") and hasattr(os, "fork")),
                                reason="warm kernels need Linux (fork)")

LIGHT = ("ipykernel.kernelapp", "ipykernel.ipkernel", "json")
PROBE = """
import json, os, sys
import torch
import matplotlib
state = {"backend": matplotlib.get_backend(),
         "cwd": os.getcwd(), "env": os.environ.get("VAELIB_TEST_MARK"), "threads": torch.get_num_threads(),
         "path": [p for p in sys.path if p], "ppid": os.getppid(), "pid": os.getpid(),
         "fresh": [k for k in ("state_from_before", "leftover") if k in globals()],
         "pgid_is_pid": os.getpgid(0) == os.getpid()}
leftover = 1
with open("probe.json", "w") as f:
    json.dump(state, f)
"""


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _run(nb, cwd, zygote=None, timeout=None):
    extra = {} if zygote is None else {"kernel_manager_class": warm.kernel_manager_class(zygote)}
    papermill.execute_notebook(str(nb), str(cwd / "out.ipynb"), kernel_name="python3", progress_bar=False,
                               cwd=str(cwd), execution_timeout=timeout, log_output=False, **extra)


def _assert_exits(pid, seconds, why):
    """Wait up to ``seconds`` for process ``pid`` to be gone; else kill it and fail with ``why``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(why)


@pytest.fixture(scope="module")
def zygote():
    with warm.Zygote(modules=("torch", "matplotlib.pyplot", *LIGHT)) as z:
        assert z.alive, z.error
        yield z


def test_a_forked_kernel_sees_what_a_cold_kernel_sees(tmp_path, zygote, monkeypatch):
    """Same cwd, environment (read when the kernel starts, not when the zygote did), sys.path, threads,
    matplotlib backend (pyplot imported in the zygote) and a fresh namespace; only the parent differs (the
    zygote), and the kernel leads its own process group."""
    monkeypatch.setenv("VAELIB_TEST_MARK", "set-after-the-zygote-started")
    nb = _notebook(tmp_path / "probe.ipynb", PROBE)
    states = {}
    for kind, z in (("cold", None), ("warm", zygote)):
        cwd = tmp_path / kind
        cwd.mkdir()
        _run(nb, cwd, z)
        states[kind] = json.loads((cwd / "probe.json").read_text())
    cold, hot = states["cold"], states["warm"]
    assert hot["ppid"] == zygote.pid and cold["ppid"] == os.getpid()
    assert hot["cwd"] == str(tmp_path / "warm") and cold["cwd"] == str(tmp_path / "cold")
    assert hot["env"] == cold["env"] == "set-after-the-zygote-started"
    assert hot["threads"] == cold["threads"]
    assert hot["backend"] == cold["backend"] == "module://matplotlib_inline.backend_inline"  # imported early, same
    assert [p for p in hot["path"] if "warm" not in p] == [p for p in cold["path"] if "cold" not in p]
    assert hot["fresh"] == cold["fresh"] == []
    assert hot["pgid_is_pid"] and cold["pgid_is_pid"]


def test_two_notebooks_in_a_row_get_fresh_processes(tmp_path, zygote):
    nb = _notebook(tmp_path / "probe.ipynb", PROBE)
    pids = []
    for i in range(2):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        _run(nb, cwd, zygote)
        state = json.loads((cwd / "probe.json").read_text())
        assert state["fresh"] == []
        pids.append(state["pid"])
    assert pids[0] != pids[1]
    for pid in pids:  # the zygote reaped them: gone, not zombies
        assert zygote.returncode(pid) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_an_error_in_a_forked_kernel_is_reported_like_a_cold_one(tmp_path, zygote):
    nb = _notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('bad gain 7')")
    with pytest.raises(PapermillExecutionError) as exc:
        _run(nb, tmp_path, zygote)
    assert exc.value.ename == "ValueError" and "bad gain 7" in exc.value.evalue


def test_a_timeout_interrupts_and_the_kernel_is_gone_afterwards(tmp_path, zygote):
    nb = _notebook(tmp_path / "slow.ipynb", "import os\nopen('pid', 'w').write(str(os.getpid()))",
                   "import time\ntime.sleep(60)")
    t0 = time.monotonic()
    with pytest.raises(Exception) as exc:
        _run(nb, tmp_path, zygote, timeout=2)
    assert "timed out" in str(exc.value).lower() or "timeout" in type(exc.value).__name__.lower()
    assert time.monotonic() - t0 < 30
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while zygote.returncode(pid) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zygote.returncode(pid) is not None


def test_kill_9_of_the_zygote_takes_its_kernel_along(tmp_path):
    """The kernel watches its parent (IPKernelApp.parent_handle): orphaned, it exits, and the run fails instead
    of hanging."""
    z = warm.Zygote(modules=LIGHT)
    assert z.alive, z.error
    nb = _notebook(tmp_path / "slow.ipynb", "import os\nopen('pid', 'w').write(str(os.getpid()))",
                   "import time\ntime.sleep(120)")
    errors = []

    def run():
        try:
            _run(nb, tmp_path, z)
        except BaseException as exc:  # noqa: BLE001 - the run must fail, whatever the exception
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((tmp_path / "pid").read_text())
    os.kill(z.pid, signal.SIGKILL)
    t.join(90)
    assert not t.is_alive() and errors
    _assert_exits(pid, 10, "the orphaned kernel kept running")
    z.close()


def test_the_zygote_leaves_when_its_runner_does(tmp_path):
    """A runner killed with -9 closes its end of the socket: the zygote reads EOF and exits."""
    code = ("import sys, time; from vaelib.report import warm\n"
            f"z = warm.Zygote(modules={LIGHT!r})\nprint(z.pid, flush=True)\ntime.sleep(120)\n")
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    zpid = int(runner.stdout.readline())
    os.kill(zpid, 0)
    runner.kill()
    runner.wait()
    _assert_exits(zpid, 20, "the zygote outlived its runner")


def test_without_a_zygote_kernels_start_cold(tmp_path):
    """A closed (or failed) zygote: the manager launches jupyter_client's own way; the notebook still runs."""
    z = warm.Zygote(modules=LIGHT)
    z.close()
    assert not z.alive
    nb = _notebook(tmp_path / "probe.ipynb", PROBE)
    _run(nb, tmp_path, z)
    assert json.loads((tmp_path / "probe.json").read_text())["ppid"] == os.getpid()


def test_a_zygote_that_cannot_import_says_why(monkeypatch):
    """No answer in time (here: a module that blocks) leaves ``alive`` False with the reason, not a hang."""
    z = warm.Zygote(modules=("vaelib_no_such_module", *LIGHT), ready_timeout=60)
    assert z.alive  # a missing optional module is skipped
    z.close()
    monkeypatch.setattr(warm.sys, "executable", "/nonexistent/python")
    z = warm.Zygote(modules=LIGHT)
    assert not z.alive and "did not start" in z.error


def test_the_switch_turns_warm_kernels_off(monkeypatch):
    monkeypatch.setattr(warm, "_nvidia_visible", lambda: False)
    monkeypatch.setenv(warm.ENV_SWITCH, "0")
    assert warm.warm_supported() is False
    monkeypatch.setenv(warm.ENV_SWITCH, "1")
    assert warm.warm_supported() is True


def test_only_vaelib_notebooks_get_the_heavy_imports(tmp_path):
    plain = _notebook(tmp_path / "plain.ipynb", "%matplotlib inline\nimport json", "x = (")  # unparsable cell
    uses = _notebook(tmp_path / "uses.ipynb", "from vaelib import study", "import pandas")
    assert warm.modules_for([plain]) == warm.KERNEL_MODULES
    assert warm.modules_for([plain, uses]) == warm.WARM_MODULES
    assert warm.modules_for([tmp_path / "missing.ipynb"]) == warm.KERNEL_MODULES
    assert {"torch", "diffusers.models.autoencoders", "vaelib.study"} <= set(warm.WARM_MODULES)


def test_a_zygote_whose_imports_start_a_thread_is_refused(tmp_path, monkeypatch):
    """Fork would copy a running thread half-way: the zygote says so and the runner uses cold kernels."""
    (tmp_path / "threadmod.py").write_text("import threading, time\n"
                                           "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    z = warm.Zygote(modules=(*LIGHT, "threadmod"))
    assert not z.alive and "started a thread" in z.error


def test_a_visible_gpu_means_cold_kernels_by_default(monkeypatch):
    """Caution on GPU machines (a CUDA driver initialised before a fork is unusable in the child)."""
    monkeypatch.delenv(warm.ENV_SWITCH, raising=False)
    monkeypatch.setattr(warm, "_nvidia_visible", lambda: True)
    assert warm.warm_supported() is False


def test_nvidia_visibility_follows_cuda_visible_devices(monkeypatch):
    import glob

    monkeypatch.setattr(glob, "glob", lambda pattern: ["/dev/nvidia0"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert warm._nvidia_visible() is True
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert warm._nvidia_visible() is False
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert warm._nvidia_visible() is False


def test_a_zygote_whose_imports_initialise_cuda_is_refused(tmp_path, monkeypatch):
    """Simulated: a module that marks torch.cuda initialised at import (no GPU needed)."""
    (tmp_path / "cudamod.py").write_text("import torch.cuda\ntorch.cuda.is_initialized = lambda: True\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    z = warm.Zygote(modules=(*LIGHT, "torch", "cudamod"))
    assert not z.alive and "initialised CUDA" in z.error


def test_a_zygote_closed_before_anyone_waited_is_killed_not_awaited():
    """``vaelib report`` starts the zygote before its checks; a run whose checks fail closes it at once (it has
    forked nothing yet) instead of waiting for its imports to end."""
    z = warm.Zygote(modules=warm.WARM_MODULES, wait=False)
    z.close()
    assert z._proc.returncode == -signal.SIGKILL
    assert not z.alive
    ready = warm.Zygote(modules=LIGHT)  # one that answered is asked to quit and exits by itself
    assert ready.alive
    ready.close()
    assert ready._proc.returncode == 0
