"""``h0 detect``: fit the GRU encoder-decoder on the start of a CSV series and score all of it."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from h0._errors import UsageError
from h0.anomaly._model import STRATEGIES

_EPILOG = """\
examples:
  h0 detect                                  # the bundled NAB series and its known windows
  h0 detect data.csv --value-column temp --out report/
  h0 detect data.csv --train-until 2024-01-31 --initial-state zeros --labels windows.json
  h0 detect sensors/ --out fleet-report/      # a fleet: every CSV in sensors/, one model
  h0 detect a.csv b.csv c.csv                 # a fleet of three files

Each point's score uses only the data up to it. Outputs in --out: scores.csv (timestamp, values,
score, is_anomaly), anomalies.json (intervals, alarms, settings), report.png and report.html.
A fleet (a directory or several CSVs) trains one model with a learned initial state per series
(--initial-state per_sequence) on all devices, and writes <series>/scores.csv,
<series>/anomalies.json, fleet.csv and fleet.json (no pictures).
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``h0 detect``."""
    p = subparsers.add_parser(
        "detect",
        help="find anomalies in a CSV time series (GRU encoder-decoder with a learned initial state)",
        description=(
            "Train a GRU encoder-decoder (EncDec-AD) on the first part of a series, score every "
            "point causally, and write scores, anomalies and a report."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "csv",
        nargs="*",
        metavar="CSV",
        help="CSV file with a header; without it, NAB's machine_temperature_system_failure series "
        "bundled with h0 and its known anomaly windows; a directory or several CSVs: a fleet, "
        "one model for all series (same columns)",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--value-column",
        action="append",
        metavar="C",
        help="column to analyse (repeat, or separate with commas, for several); default: every "
        "numeric column except the time column",
    )
    data.add_argument(
        "--time-column",
        metavar="T",
        help="timestamp column (default: a column named timestamp, time, date or datetime)",
    )
    split = data.add_mutually_exclusive_group()
    split.add_argument(
        "--train-fraction",
        type=float,
        default=None,
        metavar="F",
        help="train on the first F of the points (default 0.15, NAB's probationary period)",
    )
    split.add_argument(
        "--train-until", metavar="TIME", help="train on the points up to and including TIME"
    )
    data.add_argument(
        "--labels",
        metavar="JSON",
        help="known anomaly windows: NAB's combined_windows.json or a list of [start, end]",
    )
    data.add_argument(
        "--fill-missing",
        action="store_true",
        help="fill empty/NaN/inf values with the last valid value instead of failing",
    )
    order = data.add_mutually_exclusive_group()
    order.add_argument(
        "--sort",
        action="store_true",
        help="sort rows by time and drop repeated timestamps instead of failing",
    )
    order.add_argument(
        "--keep-order",
        action="store_true",
        help="keep rows in file order even where timestamps repeat or go backwards (as NAB does)",
    )
    model = p.add_argument_group("model and training")
    model.add_argument(
        "--initial-state",
        choices=STRATEGIES,
        default=None,
        help="the encoder's initial-state strategy (default: learned; per_sequence for a fleet)",
    )
    model.add_argument("--window", type=int, default=32, help="points per window (default 32)")
    model.add_argument("--hidden", type=int, default=24, help="GRU hidden units (default 24)")
    model.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    model.add_argument("--batch-size", type=int, default=64, help="windows per step (default 64)")
    model.add_argument("--learning-rate", type=float, default=3e-3, help="Adam (default 3e-3)")
    model.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    scoring = p.add_argument_group("scoring stages")
    scoring.add_argument(
        "--error-span",
        type=int,
        default=1,
        help="newest points of each window whose error scores the point (default 1)",
    )
    scoring.add_argument(
        "--no-window-error",
        action="store_true",
        help="do not add the whole window's error to the newest points' error",
    )
    scoring.add_argument(
        "--no-normalize",
        action="store_true",
        help="skip the trailing Gaussian fit of the errors (use the raw squared error)",
    )
    scoring.add_argument(
        "--stats-window",
        type=int,
        default=4000,
        help="points the error Gaussian is fitted on, trailing (default 4000)",
    )
    lik = scoring.add_mutually_exclusive_group()
    lik.add_argument(
        "--likelihood",
        action="store_true",
        help="add the anomaly-likelihood stage (off by default: it lowered NAB's score)",
    )
    lik.add_argument(
        "--no-likelihood", action="store_true", help="skip the anomaly-likelihood stage (default)"
    )
    scoring.add_argument(
        "--long-window", type=int, default=8000, help="likelihood's long window (default 8000)"
    )
    scoring.add_argument(
        "--short-window", type=int, default=10, help="likelihood's short average (default 10)"
    )
    scoring.add_argument(
        "--no-onset",
        action="store_true",
        help="keep every score (default: a score counts only where it beats the last "
        "--onset-window scores, so an excursion is scored at its onset)",
    )
    scoring.add_argument(
        "--onset-window",
        type=int,
        default=400,
        help="points an onset must outscore (default 400)",
    )
    scoring.add_argument("--no-range-rule", action="store_true", help="skip the range rule")
    scoring.add_argument(
        "--range-margin",
        type=float,
        default=0.05,
        help="range rule: share of the running range beyond min/max that scores 1 (default 0.05)",
    )
    decide = p.add_argument_group("alarms")
    thr = decide.add_mutually_exclusive_group()
    thr.add_argument("--threshold", type=float, help="fixed alarm threshold on the score")
    thr.add_argument(
        "--threshold-quantile",
        type=float,
        default=0.999,
        help="threshold = this quantile of the training part's scores, at least 1/3 "
        "(default 0.999)",
    )
    thr.add_argument(
        "--contamination",
        type=float,
        help="expected share of anomalous training points (threshold = 1 - this quantile)",
    )
    decide.add_argument(
        "--refractory",
        type=int,
        default=100,
        help="points after an alarm without a new alarm (default 100)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--out", default="h0-report", metavar="DIR", help="output directory (default h0-report/)"
    )
    out.add_argument("--no-plot", action="store_true", help="skip report.png")
    out.add_argument("--save-model", metavar="DIR", help="also save the fitted detector here")
    out.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    p.set_defaults(func=run_detect)
    return p


def _value_columns(args: argparse.Namespace) -> list[str] | None:
    if not args.value_column:
        return None
    return [c.strip() for item in args.value_column for c in item.split(",") if c.strip()]


def _train_points(args: argparse.Namespace, times: pd.DatetimeIndex | None, total: int) -> int:
    if args.train_until is not None:
        if times is None:
            raise UsageError("--train-until needs a time column; use --train-fraction instead.")
        try:
            until = pd.Timestamp(args.train_until)
        except (TypeError, ValueError):
            raise UsageError(f"--train-until {args.train_until!r} is not a timestamp.") from None
        later = np.flatnonzero(times > until)
        n = int(later[0]) if later.size else total
        if n == total:
            raise UsageError(
                f"--train-until {until} is at or after the last timestamp ({times[-1]}); nothing "
                "would be left to score."
            )
        return n
    fraction = 0.15 if args.train_fraction is None else args.train_fraction
    if not 0 < fraction < 1:
        raise UsageError(f"--train-fraction must lie in (0, 1); got {fraction}.")
    return int(fraction * total)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        window=args.window,
        hidden=args.hidden,
        initial_state=args.initial_state or "learned",
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        error_span=args.error_span,
        window_error=not args.no_window_error,
        normalize=not args.no_normalize,
        stats_window=args.stats_window,
        likelihood=args.likelihood,
        long_window=args.long_window,
        short_window=args.short_window,
        onset=not args.no_onset,
        onset_window=args.onset_window,
        range_rule=not args.no_range_rule,
        range_margin=args.range_margin,
        threshold=args.threshold,
        threshold_quantile=args.threshold_quantile,
        contamination=args.contamination,
        refractory=args.refractory,
    )


def run_detect(args: argparse.Namespace) -> int:
    """Run ``h0 detect`` from parsed arguments."""
    from h0.anomaly._detector import DetectorConfig
    from h0.anomaly._io import BUNDLED_NAME, bundled_paths, load_csv, load_labels

    if len(args.csv) > 1 or (args.csv and Path(args.csv[0]).is_dir()):
        from h0.anomaly._fleet import run_fleet

        return run_fleet(args, _config(args))
    started = time.perf_counter()
    try:
        config = DetectorConfig(**_config(args))
    except ValueError as error:
        option = str(error).split(" ")[0].replace("_", "-")
        raise UsageError(f"--{option}: {error}") from None

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory.")

    bundled = not args.csv
    if bundled:
        csv_path, labels_path = bundled_paths()
        source = BUNDLED_NAME
    else:
        csv_path, labels_path = Path(args.csv[0]), (Path(args.labels) if args.labels else None)
        source = str(csv_path)
    if bundled and args.labels:
        labels_path = Path(args.labels)
    series = load_csv(
        csv_path,
        value_columns=_value_columns(args),
        time_column=args.time_column,
        fill_missing=args.fill_missing,
        sort=args.sort,
        keep_order=args.keep_order or bundled,
    )
    total = series.values.shape[0]
    windows = load_labels(labels_path, series.times, csv_path.name) if labels_path else []
    n_train = _train_points(args, series.times, total)
    if n_train < config.min_length:
        raise UsageError(
            f"{csv_path}: the training part has {n_train} of {total} points, but --window "
            f"{config.window} needs at least {config.min_length} (2 x window); use a longer series, "
            "a larger --train-fraction or a smaller --window."
        )
    loaded = time.perf_counter()

    detector, scores, fit_seconds = _fit_and_score(config, series.values, n_train, args.quiet)
    scored = time.perf_counter()

    from h0.anomaly._report import DetectionRun, write_report
    from h0.anomaly._scoring import alarms

    settings = {
        "source": source,
        "points": total,
        "columns": ", ".join(series.columns),
        "train_points": n_train,
        **{k: v for k, v in dataclasses.asdict(config).items()},
        "threshold_used": round(detector.threshold_, 6),
    }
    run = DetectionRun(
        source=source,
        times=series.times,
        values=series.values,
        columns=series.columns,
        scores=scores,
        alarms=alarms(scores, detector.threshold_, config.refractory),
        threshold=detector.threshold_,
        n_train=n_train,
        windows=windows,
        settings=settings,
        timings={
            "load": loaded - started,
            "fit": fit_seconds,
            "score": scored - loaded - fit_seconds,
        },
    )
    if args.save_model:
        detector.save(args.save_model)
    written = write_report(run, out, plot=not args.no_plot)
    run.timings["total"] = time.perf_counter() - started
    if not args.quiet:
        _summary(run, written)
    return 0


def _fit_and_score(config: Any, values: np.ndarray, n_train: int, quiet: bool):
    from h0.anomaly._detector import GRUAutoencoderDetector

    detector = GRUAutoencoderDetector(**dataclasses.asdict(config))
    start = time.perf_counter()
    if quiet:
        detector.fit(values[:n_train])
    else:
        from h0.anomaly._progress import training_progress

        with training_progress(config.epochs) as callback:
            detector.fit(values[:n_train], callback=callback)
    fit_seconds = time.perf_counter() - start
    scores = np.concatenate([detector.decision_scores_, detector.score(values[n_train:])])
    return detector, scores, fit_seconds


def _summary(run: Any, written: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"h0 detect: {Path(run.source).name}", title_justify="left", show_header=False
    )
    table.add_column("")
    table.add_column("")
    table.add_row("points", f"{len(run.scores)} ({run.n_train} for training)")
    table.add_row("threshold", f"{run.threshold:.4g}")
    table.add_row("alarms", str(int(run.alarms.sum())))
    table.add_row("detected intervals", str(len(run.intervals())))
    if run.windows:
        ev = run.evaluation()
        for w in ev["windows"]:
            status = "detected at " + w["first_alarm"] if w["detected"] else "missed"
            if w["in_training"]:
                status += " (inside the training part)"
            table.add_row(f"known window {w['start'][:16]}", status)
        table.add_row(
            "false alarms",
            f"{ev['false_alarms']} ({ev['false_alarms_after_training']} after training)",
        )
    table.add_row(
        "time",
        f"{run.timings['total']:.1f} s (training {run.timings['fit']:.1f} s, scoring "
        f"{run.timings['score']:.1f} s)",
    )
    table.add_row("written", ", ".join(str(p) for p in written))
    console.print(table)
