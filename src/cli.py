"""What every entry script shares: logging set-up and turning user errors into one line.

The console gets one line per event; the run's log file (add_log_file) also gets what only a
later reader needs (the full params block: records logged with extra={"file_only": True}) and
the traceback of a crash, so the log the tuner points at explains every failure.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError

LOG_FORMAT = "%(asctime)s P%(process)d %(levelname)s %(message)s"
logger = logging.getLogger(__name__)


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def setup_logging() -> None:
    """INFO to stderr, without the records meant for the log file only."""
    console = logging.StreamHandler()
    console.addFilter(_NotFileOnly())
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=[console], force=True)


def add_log_file(log_file: Path | str, append: bool = False) -> logging.FileHandler:
    """Also log to log_file: appended to when a run resumes, else started afresh."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, mode="a" if append else "w")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def console_summary(text: str) -> None:
    logger.info(text)


def _file_handlers() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def exit_status(err: BaseException) -> int:
    """The exit status of a command that ended with err: 2 for a user error (bad input, a
    refused action), 130 for Ctrl-C (as a shell reports SIGINT), 1 for anything else (a bug).
    Every entry point and the tuner's in-process Ray trials use it."""
    if isinstance(err, UserError):
        return 2
    if isinstance(err, KeyboardInterrupt):
        return 130
    return 1


def run_main(main: Callable[..., Any], *args: Any) -> Any:
    """Run main(*args); a UserError prints `error: ...` and exits 2, Ctrl-C exits 130 (see
    exit_status); any other exception is a bug: its traceback goes to the log file too, and it
    exits 1."""
    try:
        return main(*args)
    except UserError as err:
        if _file_handlers():
            logger.error("error: %s", err, extra={"file_only": True})
        print(f"error: {err}", file=sys.stderr)
        sys.exit(exit_status(err))
    except KeyboardInterrupt as err:
        if _file_handlers():
            logger.warning("interrupted", extra={"file_only": True})
        print("interrupted", file=sys.stderr)
        sys.exit(exit_status(err))
    except Exception:
        if _file_handlers():
            logger.exception("crashed", extra={"file_only": True})
        raise


# --- --help -----------------------------------------------------------------------------------
# What --config names differs between scripts, so each script's help says it in these words.
CONFIG_FOLDER_HELP = ("grid folder the tuner wrote: the tuner YAML's path without .yaml "
                      "(config/X for config/X.yaml)")
TUNER_YAML_HELP = "tuner config file, with .yaml (its grid is written to the folder config/X)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, the description and examples as written. A
    default of None or a required option shows nothing: its help says what happens then."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if (action.default is None or action.required or action.default is argparse.SUPPRESS
                or "%(default)" in help_text or not action.option_strings):
            return action.help
        value = action.default
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))  # as typed on the command line: --gpu 0 1
        return f"{help_text} (default: {str(value).replace('%', '%%')})"


def make_parser(doc: str, examples: list[str], prog: str | None = None,
                **kwargs: Any) -> argparse.ArgumentParser:
    """The argument parser of an entry script: doc (its module docstring) as the description,
    each option's default, and an "Examples:" epilog of the given commands."""
    return argparse.ArgumentParser(prog=prog, description=doc.strip(),
                                   epilog=examples_epilog(examples),
                                   formatter_class=HelpFormatter, **kwargs)


def add_subcommand(subparsers: argparse._SubParsersAction, name: str, help: str,
                   examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand's parser (subparsers of make_parser's parser), with the same help layout."""
    return subparsers.add_parser(name, help=help, description=help, formatter_class=HelpFormatter,
                                 epilog=examples_epilog(examples))


def examples_epilog(examples: list[str]) -> str:
    return "Examples:\n" + "\n".join(f"  {command}" for command in examples)
