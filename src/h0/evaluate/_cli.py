"""``h0 nab``: score a detector's results on the Numenta Anomaly Benchmark.

``h0 nab score RESULTS_DIR --nab NAB_ROOT [--threshold-file FILE] [--profile P ...] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from h0._errors import UsageError
from h0.evaluate._nab import load_corpus

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
    score.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        type=Path,
        help="NAB's results layout: RESULTS_DIR/<folder>/<detector>_<file>.csv",
    )
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

    run = nab_sub.add_parser(
        "run",
        help="run a detector on every NAB series as NAB requires, write NAB's layout, score it",
        description=(
            "Train on each series' probationary period only, score every row causally, write "
            "OUT/results/<detector>/<folder>/<detector>_<file>.csv in NAB's layout and score it "
            "with thresholds optimised over the corpus. h0-gru, h0-untrained and zscore write one "
            "results folder per variant from one trained network per series: dense (the "
            "library's score) and nab (shaped for NAB's cost model: relative to the previous "
            "2000 scores, the running range rule, kept where it beats the previous 400, one "
            "detection per run of such onsets, written 5 rows after the run)."
        ),
    )
    run.add_argument(
        "--detector",
        default="h0-gru",
        help="one of: " + ", ".join(_DETECTORS) + " (default h0-gru)",
    )
    run.add_argument(
        "--initial-state", default="learned", help="h0 detector's initial state (default learned)"
    )
    run.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    run.add_argument(
        "--epochs", type=int, default=None, help="h0 detector's training epochs (default 20)"
    )
    run.add_argument(
        "--nab",
        metavar="NAB_ROOT",
        type=Path,
        default=None,
        help=f"NAB corpus root; default ${NAB_ROOT_ENV}",
    )
    run.add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="results/ and summary.json go here"
    )
    run.add_argument(
        "--workers", type=int, default=2, help="processes, series in parallel (default 2)"
    )
    run.add_argument(
        "--one-program",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="h0 detectors: train every series' own model in one program in this process (the "
        "same scores to float32 rounding; default). --no-one-program: one process per series",
    )
    run.add_argument(
        "--series",
        action="append",
        default=None,
        metavar="PATTERN",
        help="only series whose path contains PATTERN (repeatable; a quick check)",
    )
    run.add_argument(
        "--limit", type=int, default=None, help="only the first N (chosen) series (default: all)"
    )
    from h0.anomaly import _config
    from h0.evaluate._bench import OFFERED

    _config.add_arguments(run, only=OFFERED)
    run.set_defaults(func=_run_command)
    return nab


_DETECTORS = ("h0-gru", "h0-untrained", "zscore", "random", "iforest", "pca", "range-rule")


def _nab_root(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get(NAB_ROOT_ENV)
    if not env:
        raise UsageError(f"no NAB corpus given: pass --nab NAB_ROOT or set ${NAB_ROOT_ENV}")
    return Path(env)


def _run_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from h0.evaluate import _run

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1; got {args.workers}")
    from h0.evaluate._bench import _h0_options

    options = {} if args.epochs is None else {"epochs": args.epochs}
    options.update(_h0_options(args))  # checked before the corpus is read
    corpus = load_corpus(_nab_root(args.nab))
    scorer = _run.make_scorer(
        args.detector, initial_state=args.initial_state, seed=args.seed, **options
    )
    files = list(corpus.files)
    if args.series:
        files = [f for f in files if any(p in f for p in args.series)]
        if not files:
            raise UsageError(f"--series {args.series} matches no NAB series")
    if args.limit:
        files = files[: args.limit]
    if len(files) == len(corpus.files):
        files = None
    total = len(files) if files else len(corpus.files)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{args.detector} on NAB", total=total)
        by_variant = _run.run_corpus(
            scorer,
            corpus,
            files=files,
            workers=args.workers,
            progress=lambda rel: progress.advance(task),
            one_program=args.one_program,
        )
    if files:  # a partial run scores against the files it ran only
        corpus = _run.subset(corpus, files)
    summary = _run.evaluate_variants(by_variant, corpus, prefix=args.detector)
    out = Path(args.out)
    for variant, scores in by_variant.items():
        name = args.detector if len(by_variant) == 1 else f"{args.detector}-{variant}"
        _run.write_results(out / "results", name, scores, corpus)
    _run.write_json(
        out / "summary.json",
        {
            "detector": args.detector,
            "initial_state": args.initial_state,
            "seed": args.seed,
            "series": total,
            "scores": summary,
        },
    )
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="NAB scores (thresholds optimised over the corpus) and mean VUS-PR")
    for column in ("detector", "standard", "reward_low_FP_rate", "reward_low_FN_rate", "VUS-PR"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, row in summary.items():
        table.add_row(
            name,
            *(f"{row[p]:.1f}" for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")),
            f"{row.get('vus_pr', float('nan')):.3f}",
        )
    Console().print(table)


def add_study_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``h0 study initial-state``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="h0")
        >>> _ = add_study_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["study", "initial-state", "--dev-bench", "--windows", "8"])
        >>> args.dev_bench, args.windows, args.fleets
        (True, [8], [])
    """
    study = subparsers.add_parser(
        "study", help="studies: does the initial state matter?", description="h0's studies."
    )
    study.set_defaults(func=lambda args: _missing_subcommand(study))
    sub = study.add_subparsers(dest="study_command", metavar="STUDY")
    initial = sub.add_parser(
        "initial-state",
        help="zeros vs learned vs ... over several seeds, paired against zeros",
        description=(
            "Compare initial-state strategies over several seeds, paired against zeros: (a) a "
            "synthetic task where the start should matter (with a long-history variant and "
            "h0.fit_initial_state); with --dev-bench (b) h0's detector on the dev benchmark "
            "(dense score's AUC-PR and VUS-PR) for each --windows; with --fleets (c) NAB folders "
            "trained as one model (zeros, shared learned, per-sequence) vs one model per series; "
            "with --nab-full (d) the whole NAB corpus per strategy. Runs are logged to "
            "OUT/runs.jsonl as they finish (a rerun resumes); writes OUT/study.json, "
            "OUT/README.md and OUT/effects.png."
        ),
    )
    initial.add_argument(
        "--seeds", type=int, default=5, help="seeds per detector setting (default 5)"
    )
    initial.add_argument(
        "--synthetic-seeds", type=int, default=None, help="seeds of the synthetic part (--seeds)"
    )
    initial.add_argument("--steps", type=int, default=400, help="training steps (synthetic)")
    initial.add_argument(
        "--history", type=int, default=64, help="synthetic long-history variant's H (0: none)"
    )
    initial.add_argument(
        "--skip-synthetic", action="store_true", help="skip the synthetic task (default: run it)"
    )
    initial.add_argument(
        "--dev-bench", action="store_true", help="the detector on the dev benchmark's series"
    )
    initial.add_argument(
        "--windows",
        nargs="+",
        type=int,
        default=[8, 16, 32],
        metavar="W",
        help="detector windows of the dev-benchmark part (default 8 16 32)",
    )
    initial.add_argument(
        "--dev-strategies",
        nargs="+",
        default=["zeros", "learned"],
        metavar="NAME",
        help="starts compared on the dev benchmark (default zeros learned)",
    )
    initial.add_argument(
        "--warmup-windows",
        nargs="*",
        type=int,
        default=[32],
        metavar="W",
        help="windows at which the warm-up start also runs",
    )
    initial.add_argument(
        "--fleets", nargs="*", default=[], metavar="FOLDER", help="NAB folders, e.g. realTweets"
    )
    initial.add_argument(
        "--nab", metavar="NAB_ROOT", type=Path, default=None, help="NAB corpus root (default: none)"
    )
    initial.add_argument(
        "--nab-full", action="store_true", help="also every NAB series alone per strategy (slow)"
    )
    initial.add_argument(
        "--nab-strategies",
        default="zeros,random,learned,learned_noisy,warmup",
        help="comma-separated detector strategies for --nab-full",
    )
    initial.add_argument("--epochs", type=int, default=None, help="detector epochs (default 20)")
    initial.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    initial.add_argument("--dev-root", type=Path, default=None, help="dev benchmark cache root")
    initial.add_argument(
        "--out", metavar="DIR", type=Path, default=Path("docs/study"), help="default docs/study"
    )
    initial.set_defaults(func=_study_command)
    return study


def _study_command(args: argparse.Namespace) -> int:
    import shlex

    from h0.evaluate import _study

    if args.seeds < 2:
        raise UsageError(f"--seeds must be at least 2 for a paired comparison; got {args.seeds}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1; got {args.workers}")
    if any(w < 2 for w in args.windows):
        raise UsageError(f"--windows must be at least 2; got {args.windows}")
    needs_nab = args.fleets or args.nab_full
    nab_root = _nab_root(args.nab) if (needs_nab or args.nab is not None) else None
    if args.fleets:
        known = {rel.split("/", 1)[0] for rel in load_corpus(nab_root).files}
        unknown = [f for f in args.fleets if f not in known]
        if unknown:
            raise UsageError(
                f"--fleets {unknown[0]!r} is not a NAB folder; choose from {', '.join(sorted(known))}"
            )
    report = _study.run_study(
        out=args.out,
        seeds=range(args.seeds),
        steps=args.steps,
        nab_root=nab_root,
        nab_strategies=tuple(s for s in args.nab_strategies.split(",") if s),
        epochs=args.epochs,
        workers=args.workers,
        synthetic=not args.skip_synthetic,
        history=args.history,
        dev_bench=args.dev_bench,
        windows=tuple(args.windows),
        dev_strategies=tuple(args.dev_strategies),
        warmup_windows=tuple(args.warmup_windows),
        fleets=tuple(args.fleets),
        nab_full=args.nab_full,
        dev_root=args.dev_root,
        synthetic_seeds=None if args.synthetic_seeds is None else range(args.synthetic_seeds),
        command="h0 " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["study"] else "",
    )
    print(report)
    return 0


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _score_command(args: argparse.Namespace) -> int:
    from h0.evaluate import _nab

    root = _nab_root(args.nab)
    corpus = _nab.load_corpus(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _nab.NabTimestampWarning)
        results = _nab.load_results(args.results_dir, corpus)
    for note in results.notes:  # scored by row position, as NAB does
        print(f"h0 nab: warning: {note}", file=sys.stderr)
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
