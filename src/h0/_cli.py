"""The ``h0`` command line: a thin layer that parses arguments and calls one library function.

Each subcommand lives beside the code it drives and registers itself with ``add_parser``;
a user mistake raises :class:`h0._errors.UsageError`, which becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from h0 import _compilecache
from h0._errors import UsageError
from h0.anomaly._cli import add_parser as add_detect_parser
from h0.evaluate._bench import add_parser as add_bench_parser
from h0.evaluate._cli import add_parser as add_nab_parser
from h0.evaluate._cli import add_study_parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("h0")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """Return the ``h0`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="h0",
        description="h0: initial states for Flax RNNs, and a GRU anomaly detector built on them.",
    )
    parser.add_argument("--version", action="version", version=f"h0 {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Subcommands register here, one line each.
    add_detect_parser(subparsers)
    add_nab_parser(subparsers)
    add_study_parser(subparsers)
    add_bench_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``h0`` command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    _compilecache.enable()  # a second run loads its compiled programs (see h0._compilecache)
    try:
        return int(func(args) or 0)
    except UsageError as error:
        print(f"h0 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("h0: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
