"""Run the analysis notebooks headlessly and turn them into a self-contained HTML report (``vaelib report``).

What :func:`run_report` does, in order:

1. plans and validates everything before running anything (:func:`vaelib.report.plan.plan_report`: parameters
   from the one schema, :mod:`vaelib.report.params`; audio; model; run folder);
2. runs the notebooks with papermill (kernel ``python3``, working directory = the run folder; on Linux each
   kernel forked from one process that imported the heavy modules once, :mod:`vaelib.report.warm`), two at a time on
   2 cores (:func:`default_jobs`; :data:`RUN_AFTER` orders the ones that reuse another's output), stopping at
   the first failing cell (:class:`NotebookError`, the partial notebook is kept);
3. converts each executed notebook to an inert HTML page with its plots and audio players inline
   (:func:`vaelib.report.pages.export_html`) and writes ``index.html``, findings first
   (:func:`vaelib.report.pages.write_index`), from each ``<run>/<notebook stem>/metrics.json`` ``"summary"``.

Contract with the notebooks: parameters ``out_dir`` (set to the run folder) and ``interactive`` (set to
``False``: static plots instead of widgets) are owned by the runner; ``audio``, ``model`` and ``vocoder`` are passed
to every notebook that declares them, so all use the same inputs; any other parameter is passed only when given,
and only to the notebooks that declare it. Each notebook writes inside ``out_dir/<its stem>/``.

Nothing is written outside the run folder, and input files are only read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .._util import one_line as _one_line
from . import params as _params
from .pages import export_html, write_index
from .plan import AUDIO_LIST_NAME, CACHE_DIR, DEFAULT_NOTEBOOKS, FAILED_MARK, ReportError, ReportPlan, plan_report

__all__ = ["NotebookError", "ReportResult", "DEFAULT_TIMEOUT", "RUN_AFTER", "default_jobs", "run_report"]

#: Per-cell timeout default, in seconds.
DEFAULT_TIMEOUT = 1800.0
_KERNEL_ENV = {"TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
#: Thread-count variables a kernel inherits when several notebooks run at once (each gets cores // jobs);
#: a value the user set is kept.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
#: glibc malloc settings every kernel starts with (mallopt(3): read from the environment at process start; other
#: C libraries ignore them; a value the user set is kept). By default glibc serves blocks above a dynamic threshold
#: with a fresh ``mmap`` and gives freed heap memory back to the system beyond 128 KiB, so every tensor of a decode
#: or an STFT is new memory the kernel must fault in and zero: half of the report's system time. A fixed 32 MiB
#: threshold (glibc's maximum) and a 1 GiB trim threshold keep the kernels' freed memory for reuse instead: the
#: report's system time 6.7 -> 3.2 s, its wall time -2 s on 2 cores (benchmarks/README.md), the same numbers
#: (allocation never changes arithmetic). Cost: a kernel keeps up to 1 GiB of freed memory until it exits.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
#: Notebooks (stem -> stems) started only after these finished, when both are in the run: 03 reuses 02's
#: scores and 04 reuses 01's perceptual scores of the plain VAE from the run folder instead of recomputing them.
RUN_AFTER = {_params.NOTEBOOKS["analysis"][0]: (_params.NOTEBOOKS["enhance"][0],),
             _params.NOTEBOOKS["learned"][0]: (_params.NOTEBOOKS["baseline"][0],)}


class NotebookError(RuntimeError):
    """A notebook failed while running (exit status 1).

    Attributes
    ----------
    notebook : str
        Notebook stem, e.g. ``"02_latent_enhance"``.
    cell : int or None
        Execution count (``In [n]``) of the failing cell, when known.
    ename, evalue : str
        Exception name and message raised in the kernel.
    partial : Path
        The partially executed notebook, kept for inspection.
    """

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, partial: Path):
        self.notebook, self.cell, self.ename, self.evalue, self.partial = notebook, cell, ename, evalue, partial
        where = f" at cell {cell}" if cell is not None else ""
        super().__init__(f"notebook {notebook} failed{where}: {ename}: {_one_line(evalue, 300)}"
                         f" (partial notebook kept: {partial})")


# ----------------------------------------------------------------------------------------------- notebooks





@dataclasses.dataclass
class ReportResult:
    """What a run produced.

    Attributes
    ----------
    plan : ReportPlan
        The validated plan (run folder, notebooks, parameters, skipped files).
    index : Path
        ``index.html``.
    html : dict
        ``{stem: Path}`` of the HTML pages written.
    warnings : list of str
        Problems found in the pages (error outputs, remote resources).
    """

    plan: ReportPlan
    index: Path
    html: dict[str, Path]
    warnings: list[str]


def default_jobs(n_notebooks: int = len(DEFAULT_NOTEBOOKS)) -> int:
    """Notebooks run at once by default: one per two cores, at least one, at most ``n_notebooks``.

    On 2 cores two kernels with one thread each finish the report sooner than one kernel with two threads:
    most of a notebook is single-threaded (imports, plotting, metrics, Griffin-Lim one clip at a time).
    """
    cores = os.cpu_count() or 1
    return max(1, min(n_notebooks, cores if cores <= 2 else cores // 2))


class _KernelEnv:
    """Temporarily set environment variables the kernels inherit (no progress bars inside notebooks; the
    :data:`_MALLOC_ENV` settings the user did not set; with ``threads``, the thread-count variables the user did
    not set)."""

    def __init__(self, threads: int | None = None):
        self.env = dict(_KERNEL_ENV)
        self.env.update({k: v for k, v in _MALLOC_ENV.items() if k not in os.environ})
        if threads is not None:
            self.env.update({k: str(threads) for k in _THREAD_VARS if k not in os.environ})

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed_cell(ipynb: Path) -> int | None:
    """Execution count of the cell papermill marked failed/running in a partial notebook."""
    try:
        nb = json.loads(ipynb.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("failed", "running"):
            return cell.get("execution_count")
    return None


def _execute(nb: Path, out_nb: Path, parameters: dict, cwd: Path, timeout: float | None, progress,
             kernel_manager=None) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    extra = {} if kernel_manager is None else {"kernel_manager_class": kernel_manager}
    try:
        papermill.execute_notebook(
            str(nb), str(out_nb), parameters=parameters, kernel_name="python3", progress_bar=progress,
            cwd=str(cwd), execution_timeout=timeout, log_output=False, report_mode=False,
            extra_arguments=["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"], **extra,
        )
    except PapermillExecutionError as exc:
        raise NotebookError(nb.stem, exc.exec_count, exc.ename, exc.evalue, out_nb) from None
    except Exception as exc:  # timeout, dead kernel, missing kernelspec
        raise NotebookError(nb.stem, _failed_cell(out_nb), type(exc).__name__, str(exc), out_nb) from None


def _schedule(notebooks: Sequence[Path], run_one: Callable[[Path, int], list[str]], jobs: int):
    """Run ``run_one(nb, slot)`` for each notebook, ``jobs`` at a time, yielding ``(nb, result, error)``.

    A notebook starts when a slot is free and the notebooks :data:`RUN_AFTER` names for it (those in this run)
    have finished; the first such notebook in the given order goes first. After a :class:`NotebookError` no
    new notebook starts; the running ones finish.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stems = {nb.stem for nb in notebooks}
    waiting = list(notebooks)
    done: set[str] = set()

    def ready(nb: Path) -> bool:
        return all(d in done or d not in stems for d in RUN_AFTER.get(nb.stem, ()))

    if jobs == 1:  # in this thread: Ctrl-C reaches papermill directly
        while waiting:
            nb = next((nb for nb in waiting if ready(nb)), waiting[0])
            waiting.remove(nb)
            try:
                found = run_one(nb, 0)
            except NotebookError as exc:
                yield nb, [], exc
                return
            done.add(nb.stem)
            yield nb, found, None
        return
    running: dict = {}
    free = list(range(jobs))
    failed = False
    with ThreadPoolExecutor(jobs) as pool:
        while waiting or running:
            while free and waiting and not failed:
                nb = next((nb for nb in waiting if ready(nb)), None)
                if nb is None:
                    break
                slot = free.pop(0)
                waiting.remove(nb)
                running[pool.submit(run_one, nb, slot)] = (nb, slot)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: running[f][1]):
                nb, slot = running.pop(fut)
                free.append(slot)
                done.add(nb.stem)
                try:
                    yield nb, fut.result(), None
                except NotebookError as exc:
                    failed = True
                    yield nb, [], exc


def _remove_cache(run_dir: Path) -> None:
    """Remove the notebooks' shared :data:`~vaelib.report.plan.CACHE_DIR` (a real folder inside ``run_dir`` only)."""
    import shutil

    cache = run_dir / CACHE_DIR
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache, ignore_errors=True)


def _mark_failed_run(run_dir: Path) -> None:
    """Record what a run that finished no notebook wrote (:data:`~vaelib.report.plan.FAILED_MARK`), so that the
    corrected rerun into the same folder is not refused; the partial notebooks stay until then, for inspection."""
    from ..runlock import LOCK_NAME

    written = sorted(p.name for p in run_dir.iterdir() if p.name not in (LOCK_NAME, FAILED_MARK))
    (run_dir / FAILED_MARK).write_text(json.dumps({"written": written}), encoding="utf-8")


def _clear_failed_run(run_dir: Path) -> None:
    """Remove what a failed run listed in its marker (only those names, inside ``run_dir``), then the marker."""
    import shutil

    mark = run_dir / FAILED_MARK
    if not mark.is_file():
        return
    try:
        written = json.loads(mark.read_text(encoding="utf-8")).get("written", [])
    except (OSError, ValueError, AttributeError):
        return
    for name in written:
        target = run_dir / Path(str(name)).name  # a bare name: never outside the run folder
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    mark.unlink()


def _require_report_extra() -> None:
    """Refuse in one line when the ``report`` extra is missing (a core ``pip install vaelib``)."""
    import importlib.util

    missing = [m for m in ("papermill", "nbconvert", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        raise ReportError(f"`vaelib report` needs the report extra ({', '.join(missing)} not installed): "
                          "pip install -c constraints.txt 'vaelib[report]'")


def run_report(audio=None, model=None, vocoder=None, params: Mapping | None = None, out=None, *,
               notebooks: Iterable[str | os.PathLike] | None = None, no_input: bool = False,
               timeout: float | None = DEFAULT_TIMEOUT, progress: bool = True, jobs: int | None = None,
               warm: bool | None = None, echo: Callable[[str], None] | None = print,
               warn: Callable[[str], None] | None = None) -> ReportResult:
    """Validate, run the notebooks, and write the HTML report into a new run folder.

    Parameters
    ----------
    audio, model, vocoder, params, out, notebooks
        See :func:`plan_report`.
    no_input : bool
        Hide code cells in the HTML.
    timeout : float or None
        Per-cell execution timeout in seconds (None: no limit).
    progress : bool
        Show a per-cell progress bar for each notebook (tqdm, on stderr).
    jobs : int, optional
        Notebooks run at once (default :func:`default_jobs`: 2 on a 2-core machine). With more than one, each
        kernel gets ``cores // jobs`` threads (``OMP_NUM_THREADS`` and friends, unless set) and a notebook
        that reuses another's output (:data:`RUN_AFTER`) starts after it.
    warm : bool, optional
        Fork each kernel from one process that has imported the heavy modules once
        (:mod:`vaelib.report.warm`; about 5 s of CPU less per notebook); default: where supported
        (:func:`~vaelib.report.warm.warm_supported`: Linux, ``VAELIB_WARM_KERNELS`` not ``0``). False: a cold
        ``python -m ipykernel_launcher`` per notebook. The notebooks' results are the same either way.
    echo, warn : callable, optional
        Where progress lines (``print``) and warnings go; None silences them.

    Returns
    -------
    ReportResult

    Raises
    ------
    ReportError
        A bad input, before anything ran or was written.
    NotebookError
        A notebook failed; the partial notebook and an ``index.html`` are kept in the run folder, notebooks
        not yet started are not run (those already running finish).
    """
    _require_report_extra()
    echo = echo or (lambda s: None)
    warn = warn or echo
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ReportError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ReportError(f"jobs must be a positive integer (got {jobs!r})")
    started = _dt.datetime.now()
    from . import warm as _warm
    from .plan import resolve_notebooks

    nbs = resolve_notebooks(notebooks)  # known before the checks, so the zygote can start first (plan re-checks)
    n = len(nbs)
    jobs = min(default_jobs(n) if jobs is None else jobs, n)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    kernel_manager = None
    failure = None
    status: dict[str, str] = {}
    pages: dict[str, Path] = {}
    warnings: list[str] = []
    with _KernelEnv(threads), contextlib.ExitStack() as stack:
        zygote = None
        if _warm.warm_supported() if warm is None else warm:  # its imports (~4 s) overlap the plan's checks
            zygote = stack.enter_context(_warm.Zygote(modules=_warm.modules_for(nbs), wait=False))
        plan = plan_report(audio, model, vocoder, params, out, notebooks=nbs, now=started)
        run_dir = plan.run_dir
        if plan.model_line:
            echo(plan.model_line)
        if plan.audio_source is not None:
            echo(f"audio: {plan.audio_source} ({len(plan.audio_files)} file(s))")
        for path, why in plan.skipped:
            warn(f"warning: skipping unreadable audio file {path}: {why}")

        run_dir.mkdir(parents=True, exist_ok=True)
        from ..runlock import FolderLocked, StorageError, lock_folder

        try:  # one writer per report folder, for the whole run (released by the OS even on kill -9)
            lock = lock_folder(run_dir, what="report folder")
        except (FolderLocked, StorageError) as exc:
            raise ReportError(_one_line(exc)) from None
        _clear_failed_run(run_dir)
        if plan.skipped:
            from ..audio import write_audio_list

            write_audio_list(run_dir / AUDIO_LIST_NAME, plan.audio_files)
        echo(f"run folder: {run_dir}")
        number = {nb.stem: i for i, nb in enumerate(plan.notebooks, start=1)}

        def run_one(nb: Path, slot: int) -> list[str]:
            i = number[nb.stem]
            bar = {"desc": f"[{i}/{n}] {nb.stem}", "leave": True, "position": slot} if progress else False
            if not progress:
                echo(f"[{i}/{n}] running {nb.name}")
            out_nb = run_dir / nb.name
            _execute(nb, out_nb, plan.parameters[nb.stem], run_dir, timeout, bar, kernel_manager)
            page = run_dir / f"{nb.stem}.html"
            found = export_html(out_nb, page, no_input=no_input)
            pages[nb.stem] = page
            return found

        if zygote is not None:
            # the page export's imports (~2 s) and the index figure's (~0.5 s; no backend is chosen), on the core
            # the zygote leaves free
            import matplotlib.figure  # noqa: F401
            import nbconvert  # noqa: F401
            import papermill  # noqa: F401

            if zygote.wait_ready():
                kernel_manager = _warm.kernel_manager_class(zygote)
            else:
                warn(f"warning: cold kernels ({zygote.error})")
        for nb, found, exc in _schedule(plan.notebooks, run_one, jobs):
            if exc is None:
                status[nb.stem] = "ok"
                for w in found:
                    warn(f"warning: {w}")
                warnings += found
            else:
                status[nb.stem] = f"failed at cell {exc.cell}" if exc.cell is not None else "failed"
                failure = failure or exc
    _remove_cache(run_dir)
    if failure is not None:
        write_index(run_dir / "index.html", plan, status, started, warnings)
        if not any(v == "ok" for v in status.values()):  # nothing finished: the rerun into this --out may start over
            _mark_failed_run(run_dir)
        lock.release()
        raise failure
    pages = {nb.stem: pages[nb.stem] for nb in plan.notebooks}
    index = write_index(run_dir / "index.html", plan, status, started, warnings)
    from .pages import findings_mismatches

    for problem in findings_mismatches(index.read_text(encoding="utf-8")):  # a finding that disagrees with its table
        w = f"index.html: a finding's number is not in the table it cites: {problem}"
        warn(f"warning: {w}")
        warnings.append(w)
    lock.release()
    return ReportResult(plan=plan, index=index, html=pages, warnings=warnings)
