"""``h0 nab``: score a detector's results on the Numenta Anomaly Benchmark.

``h0 nab score RESULTS_DIR --nab NAB_ROOT [--threshold-file FILE] [--profile P ...] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from h0._errors import UsageError

NAB_ROOT_ENV = "H0_NAB_ROOT"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``nab`` command group (``nab score``) with the ``h0`` parser.

    Args:
        subparsers: The top-level parser's subparsers.

    Returns:
        The ``nab`` parser, so that further subcommands (e.g. ``nab run``) can be added.

    Example:
        >>> parser = argparse.ArgumentParser(prog="h0")
        >>> nab = add_parser(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["nab", "score", "results/x", "--json"]).json
        True
    """
    nab = subparsers.add_parser(
        "nab",
        help="Numenta Anomaly Benchmark: score detector results",
        description="Numenta Anomaly Benchmark (NAB) tools.",
    )
    nab.set_defaults(func=lambda args: _missing_subcommand(nab))
    nab_sub = nab.add_subparsers(dest="nab_command", metavar="NAB_COMMAND")
    score = nab_sub.add_parser(
        "score",
        help="score a results directory, normalised like NAB's scoreboard",
        description=(
            "Score RESULTS_DIR/<folder>/<detector>_<file>.csv (columns timestamp, anomaly_score) "
            "against NAB's windows and profiles. Without --threshold-file, the best corpus-wide "
            "threshold is found per profile."
        ),
    )
    score.add_argument("results_dir", metavar="RESULTS_DIR", type=Path)
    score.add_argument(
        "--nab",
        metavar="NAB_ROOT",
        type=Path,
        default=None,
        help=f"NAB corpus root (data/, labels/, config/); default ${NAB_ROOT_ENV}",
    )
    score.add_argument(
        "--threshold-file",
        metavar="FILE",
        type=Path,
        default=None,
        help="thresholds JSON: NAB's config/thresholds.json or {profile: threshold}",
    )
    score.add_argument(
        "--profile",
        action="append",
        default=None,
        help="profile to score (repeatable); default all profiles in config/profiles.json",
    )
    score.add_argument(
        "--json", action="store_true", help="print one JSON object {profile: score} only"
    )
    score.set_defaults(func=_score_command)
    return nab


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _score_command(args: argparse.Namespace) -> int:
    from h0.evaluate import _nab

    root = args.nab
    if root is None:
        env = os.environ.get(NAB_ROOT_ENV)
        if not env:
            raise UsageError(f"no NAB corpus given: pass --nab NAB_ROOT or set ${NAB_ROOT_ENV}")
        root = Path(env)
    corpus = _nab.load_corpus(root)
    results = _nab.load_results(args.results_dir, corpus)
    profiles = args.profile or list(corpus.profiles)
    unknown = [p for p in profiles if p not in corpus.profiles]
    if unknown:
        raise UsageError(
            f"--profile {unknown[0]!r} is not a NAB profile; "
            f"choose from {', '.join(corpus.profiles)}"
        )
    thresholds = None
    if args.threshold_file is not None:
        thresholds = _nab.load_thresholds(args.threshold_file, results.detector)
        lacking = [p for p in profiles if p not in thresholds]
        if lacking:
            raise UsageError(
                f"threshold file {args.threshold_file} has no threshold for profile {lacking[0]!r}"
            )
    scored = _nab.score_corpus(results, corpus, thresholds=thresholds, profiles=profiles)
    if args.json:
        print(json.dumps({name: result.score for name, result in scored.items()}))
        return 0
    _print_table(results.detector, scored, optimised=thresholds is None)
    return 0


def _print_table(detector: str, scored: dict, optimised: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    source = "optimised" if optimised else "given"
    table = Table(title=f"NAB scores of {detector!r} (thresholds {source})")
    table.add_column("profile")
    table.add_column("score", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("raw score", justify="right")
    for name, result in scored.items():
        table.add_row(
            name, f"{result.score:.3f}", f"{result.threshold:.6g}", f"{result.raw_score:.3f}"
        )
    Console().print(table)
