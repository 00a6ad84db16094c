"""The shape every msca-fast command line shares: a thin argparse parser over a plain function.

Every command is a module at the package top, ``msca_fast/<command>.py``: :mod:`msca_fast.train`
(also run by the repository's ``train.py``), :mod:`msca_fast.evaluate`,
:mod:`msca_fast.synthesize`, :mod:`msca_fast.ablation` and :mod:`msca_fast.demo`. Each has
``build_parser()``, ``config_from_args(args)`` (the parsed options -> the function's config;
the demo has no config) and ``main(argv)``, which is :func:`run_command` over the plain
function (``train(config)``, ``evaluate(config)``, ``synthesis.commands.synthesize_files(command,
config, ...)``, ``ablate(config)``, ``demo.run(out_dir)``). Python code calls those functions
with configs directly.

:func:`run_command` decides what an error looks like, for every command alike:

* a bad option or input (ValueError, OSError, :class:`msca_fast.errors.UserError` such as
  missing pretrained weights):
  ``<name>: error: <message>``, exit code 2;
* a run that could not go on (:class:`msca_fast.errors.RunFailed`, e.g. training diverged):
  ``<name>: error: <message>``, exit code 1;
* Ctrl-C: exit code 130;
* anything else: ``<name>: error: unexpected <type>: <message> (rerun with --debug for the
  traceback)``, exit code 1; with ``--debug`` the exception propagates.

``<name>`` is the command's short name: ``train.py``, ``evaluate``, ``synthesize``, ``ablation``, ``demo``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from collections.abc import Callable

from msca_fast.errors import RunFailed, UserError

# Errors that mean "the user's options or files are wrong or incomplete"; their messages say
# what was expected (and, for missing weights, where to put the file).
BAD_INPUT: tuple[type[BaseException], ...] = (ValueError, OSError, UserError)


def new_parser(prog: str, doc: str | None, epilog: str | None = None, **options) -> argparse.ArgumentParser:
    """An ArgumentParser with the module docstring as its description and the --debug option."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter, **options
    )
    add_debug_option(parser)
    return parser


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")


def options_of(args: argparse.Namespace) -> dict:
    """The parsed options as a dict, without --debug (the runner's, not the function's)."""
    return {name: value for name, value in vars(args).items() if name != "debug"}


def default_text(owner: object, name: str) -> str:
    """"default X" for the help of an option whose default is field ``name`` of the dataclass
    ``owner`` or keyword ``name`` of the function ``owner``: parsers that leave absent options
    out of the namespace (``argument_default=argparse.SUPPRESS``) keep a single default."""
    if dataclasses.is_dataclass(owner):
        found = {f.name: f for f in dataclasses.fields(owner)}[name]
        value = found.default_factory() if found.default is dataclasses.MISSING else found.default
    else:
        value = inspect.signature(owner).parameters[name].default
    if isinstance(value, (tuple, list)):
        value = " ".join(map(str, value))
    return f"default {value}"


def run_command(
    parser: argparse.ArgumentParser, argv: list[str] | None, action: Callable[[argparse.Namespace], object]
) -> int:
    """Parse ``argv`` and run ``action(args)``; the exit code, with errors reported as above."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage and the error, or the help
        return int(exit_.code or 0)
    debug = getattr(args, "debug", False)
    try:
        action(args)
        return 0
    except KeyboardInterrupt as stop:  # 128 + the signal, as a shell reports it: 130 Ctrl-C, 143 SIGTERM
        return getattr(stop, "exit_code", 130)
    except BAD_INPUT as error:
        report(short_name(parser.prog), str(error).strip() or type(error).__name__)
        return 2
    except RunFailed as error:
        report(short_name(parser.prog), str(error).strip())
        return 1
    except Exception as error:  # noqa: BLE001  (one line, never a traceback, unless --debug)
        if debug:
            raise
        message = " ".join(str(error).split())
        if len(message) > 300:
            message = message[:297].rstrip() + "..."
        report(
            short_name(parser.prog),
            f"unexpected {type(error).__name__}: {message} (rerun with --debug for the traceback)",
        )
        return 1


def short_name(prog: str) -> str:
    """"python -m msca_fast.evaluate" -> "evaluate"; "train.py" stays."""
    return prog.split()[-1].rsplit(".", 1)[-1] if prog.startswith("python -m ") else prog


def report(name: str, message: str) -> None:
    """``<name>: error: <message>`` on stderr."""
    print(f"{name}: error: {message}", file=sys.stderr)
