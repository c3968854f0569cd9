"""Command line: ``vaelib report`` (run the notebooks into an HTML report), ``vaelib eval`` (score a corpus),
``vaelib train-restorer`` (train a learned high-band restorer), ``vaelib generate`` (text-to-audio, plain and
enhanced from the same latents) and ``vaelib info``.

Subcommands other than ``report`` and ``info`` live beside the code they run: each module of
:data:`SUBCOMMAND_MODULES` has ``add_parser(subparsers, parser_class)`` which registers its parser with
``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.

Also reachable as ``python -m vaelib``. User errors print one ``error: ...`` line on stderr and exit with
status 2; a failing notebook exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

#: Modules that register a subcommand (``add_parser(subparsers, parser_class)``).
SUBCOMMAND_MODULES = ("vaelib.evaluate", "vaelib.restore.cli", "vaelib.generate.cli")

_REPORT_EPILOG = """\
Any notebook parameter can be set with -p name=value (see --list-params); values are checked against the
type declared in the notebooks before anything runs. Examples:
  vaelib report --audio demo
  vaelib report --audio my_clips/ --model cvssp/audioldm2 -p method=noise -p level=0.05 --no-input
exit status: 0 ok, 1 a notebook failed (the partial notebook is kept), 2 bad input.
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are a single ``error: ...`` line (exit status 2)."""

    def error(self, message):  # noqa: D102 - argparse API
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The ``vaelib`` argument parser (subcommands ``report`` and ``info``)."""
    parser = _Parser(prog="vaelib", description="Measure (and try to enhance) what the AudioLDM2 VAE round trip "
                                                "loses; run the analysis notebooks into an HTML report.")
    parser.add_argument("--version", action="store_true", help="print the vaelib version and exit")
    sub = parser.add_subparsers(dest="command", metavar="{report,eval,train-restorer,generate,info}",
                                parser_class=_Parser)

    rep = sub.add_parser("report", help="run the notebooks and write an HTML report",
                         description="Run the report notebooks headlessly (papermill) and write self-contained\n"
                                     "HTML pages plus an index.html into a new run folder.",
                         epilog=_REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    rep.add_argument("--audio", metavar="PATH|demo",
                     help="audio file, folder (searched recursively), .lst list file, or 'demo' (bundled clips); "
                          "default: the notebooks' default")
    rep.add_argument("--model", metavar="auto|bundled|ID|PATH",
                     help="VAE source: 'auto' (local AudioLDM2 weights, else the bundled tiny VAE), 'bundled', a "
                          "Hugging Face repo id or a local snapshot folder")
    rep.add_argument("--vocoder", metavar="auto|hifigan|griffinlim|PATH", help="vocoder (default: auto)")
    rep.add_argument("--out", metavar="DIR",
                     help="new run folder (default: reports/<YYYYmmdd-HHMMSS>); an existing non-empty folder is "
                          "refused")
    rep.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a notebook parameter (repeatable)")
    rep.add_argument("--no-input", action="store_true", help="hide code cells in the HTML pages")
    rep.add_argument("--list-params", action="store_true",
                     help="list the notebooks' parameters (type, default, help) and exit")
    rep.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="per-cell timeout in seconds (default: 1800)")
    rep.add_argument("--notebooks", nargs="+", metavar="NB", default=None,
                     help="run these notebooks (files or folders, in order) instead of the report notebooks shipped "
                          "with vaelib ('vaelib info' shows where)")
    rep.add_argument("--from-eval", metavar="EVAL_DIR", default=None,
                     help="build the corpus view (distributions per metric and category, worst clips with players) "
                          "from a 'vaelib eval' output folder instead of running the notebooks; nothing is "
                          "recomputed. Written to --out (default EVAL_DIR/report)")
    rep.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                     help="notebooks run at once (default: 2 on a 2-core machine, one per two cores above that)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")
    rep.add_argument("--cold-kernels", action="store_true",
                     help="start every notebook's kernel from scratch (python -m ipykernel_launcher) instead of "
                          "forking it from one process that imported torch, diffusers and vaelib once (the "
                          "default on Linux; same results, ~5 s of CPU less per notebook; also "
                          "VAELIB_WARM_KERNELS=0)")

    sub.add_parser("info", help="print versions, device and the model 'auto' resolves to",
                   description="Print the vaelib and torch versions, the compute device, the model and vocoder "
                               "that 'auto' resolves to, and where the report notebooks are.")
    import importlib

    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub, _Parser)
    return parser


def _err(message: str) -> None:
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")


def _report(args) -> int:
    from . import report

    if args.from_eval is not None:
        return _report_from_eval(args)
    if args.list_params:
        try:
            nbs = report.plan.resolve_notebooks(args.notebooks)
            per, _ = report.inspect_params(nbs)
        except report.ReportError as exc:
            _err(exc)
            return 2
        print(report.format_params(per))
        return 0
    timeout = report.run.DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if not timeout > 0:
        _err(f"--timeout must be a positive number of seconds (got {args.timeout:g})")
        return 2
    try:
        params = report.parse_assignments(args.param)
        result = report.run_report(
            audio=args.audio, model=args.model, vocoder=args.vocoder, params=params, out=args.out,
            notebooks=args.notebooks, no_input=args.no_input, timeout=timeout, progress=not args.no_progress,
            jobs=args.jobs, warm=False if args.cold_kernels else None, echo=print,
            warn=lambda s: print(s, file=sys.stderr),
        )
    except report.ReportError as exc:
        _err(exc)
        return 2
    except report.NotebookError as exc:
        _err(exc)
        return 1
    except OSError as exc:  # disk full, permissions: one line naming the path and the free space
        from .runlock import storage_error

        _err(storage_error(exc.filename or args.out or ".", exc))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; whatever ran so far is in the run folder")
        return 130
    print(f"report: {result.index}")
    for stem, page in result.html.items():
        print(f"  {stem}: {page}")
    return 0


def _report_from_eval(args) -> int:
    from .report.evalpage import write_eval_report

    ignored = [flag for flag, v in (("--audio", args.audio), ("--model", args.model), ("--vocoder", args.vocoder),
                                    ("-p", args.param), ("--notebooks", args.notebooks)) if v]
    if ignored:
        _err(f"--from-eval reads a finished eval table; {', '.join(ignored)} cannot be combined with it")
        return 2
    try:
        page = write_eval_report(args.from_eval, args.out)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        _err(exc)
        return 2
    print(f"report: {page}")
    return 0


def _info() -> int:
    import torch

    from . import __version__
    from .models import ModelLoadError, resolve_models
    from .report import notebooks_dir

    print(f"vaelib {__version__}")
    cuda = torch.cuda.is_available()
    dev = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu (CUDA not available)"
    print(f"torch {torch.__version__}; device: {dev}")
    try:
        print(resolve_models("auto").describe())
    except ModelLoadError as exc:
        print(f"model: cannot resolve 'auto': {exc}")
    folder = notebooks_dir()
    where = "shipped with the package" if (folder.parent / "__init__.py").is_file() else "source checkout"
    print(f"notebooks: {folder} ({where})" if folder.is_dir() else f"notebooks: {folder} (missing: reinstall vaelib)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vaelib`` console script; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"vaelib {__version__}")
        return 0
    if args.command == "report":
        return _report(args)
    if args.command == "info":
        return _info()
    if getattr(args, "func", None) is not None:
        return int(args.func(args))
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
