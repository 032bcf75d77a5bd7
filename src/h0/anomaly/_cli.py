"""``h0 detect``: parse arguments, call :func:`h0.anomaly._run.detect`, write the outputs.

The detector's options are generated from ``h0.anomaly._config`` (one owner); this module owns
only the data and output options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from h0._errors import UsageError
from h0.anomaly import _config
from h0.anomaly._io import _names, train_rows

_EPILOG = """\
examples:
  h0 detect                                  # the bundled NAB series and its known windows
  h0 detect data.csv --value-column temp --out report/
  h0 detect data.csv --train-until 2024-01-31 --initial-state zeros --labels windows.json
  h0 detect sensors/ --out fleet-report/      # a fleet: every CSV in sensors/, one model
  h0 detect a.csv b.csv c.csv                 # a fleet of three files

Each point's score uses only the data up to it. Outputs in --out: scores.csv (time, values,
score, is_anomaly per point, alarm at each alarm's onset), anomalies.json (alarms, summary,
settings), report.png and report.html. A fleet (a directory or several CSVs) trains one model
with a learned initial state per series (--initial-state per_sequence) and writes
<series>/scores.csv, <series>/anomalies.json, fleet.csv and fleet.json.
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
        help="CSV file (- reads standard input); without it, NAB's "
        "machine_temperature_system_failure series bundled with h0 and its known anomaly "
        "windows; a directory or several CSVs: a fleet, one model for all series (same columns)",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--value-column",
        action="append",
        metavar="C",
        help="column to analyse (repeat, or separate with commas, for several; a name holding a "
        "comma is matched whole first); default: every numeric column except the time column",
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
        "--train-until",
        metavar="TIME",
        help="train on the points up to and including TIME (a row number, from 0, when there "
        "is no time column)",
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
    data.add_argument(
        "--delimiter", metavar="C", help="field separator (default: guessed among , ; tab |)"
    )
    data.add_argument(
        "--decimal",
        choices=(".", ","),
        help="decimal mark (default: guessed; , when numbers look like 0,5)",
    )
    header = data.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_true",
        default=None,
        help="line 1 is a header (default: guessed)",
    )
    header.add_argument(
        "--no-header", dest="header", action="store_false", help="line 1 is data, not a header"
    )
    data.add_argument(
        "--time-unit",
        choices=("s", "ms", "us", "ns"),
        help="unit of numeric (Unix epoch) times (default: from their magnitude)",
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
    _config.add_arguments(
        p,
        overrides={
            "initial_state": "the encoder's initial-state strategy (default: learned; "
            "per_sequence for a fleet)"
        },
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--out", default="h0-report", metavar="DIR", help="output directory (default h0-report/)"
    )
    out.add_argument("--no-plot", action="store_true", help="skip report.png")
    out.add_argument("--save-model", metavar="DIR", help="also save the fitted detector here")
    out.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    out.add_argument(
        "--json", action="store_true", help="print the run's summary as JSON on stdout"
    )
    p.set_defaults(func=run_detect)
    return p


def _train_points(args: argparse.Namespace, times: pd.DatetimeIndex | None, total: int) -> int:
    if args.train_until is not None:
        return train_rows(args.train_until, times, n_rows=total)
    fraction = 0.15 if args.train_fraction is None else args.train_fraction
    if not 0 < fraction < 1:
        raise UsageError(f"--train-fraction must lie in (0, 1); got {fraction}.")
    return int(fraction * total)


def fleet_paths(inputs: list[str]) -> list[Path]:
    """The CSV files of a fleet: a directory's ``*.csv`` (sorted by name) and/or files.

    Raises:
        UsageError: A missing path, a directory without CSV files, two files with the same name
            (their output folders would collide).
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.csv") if p.is_file())
            if not found:
                raise UsageError(f"{path}: the directory has no .csv files.")
            paths.extend(found)
        elif path.is_file() or item == "-":
            paths.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory.")
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise UsageError(
                f"{path} and {stems[path.stem]} have the same name {path.stem!r}; their output "
                "folders would collide. Rename one."
            )
        stems[path.stem] = path
    return paths


def _config_from(args: argparse.Namespace, fleet: bool) -> _config.DetectorConfig:
    settings = _config.given(args)
    if fleet:
        settings.setdefault("initial_state", "per_sequence")
    try:
        return _config.DetectorConfig.from_flat(**settings)
    except _config.ConfigError as error:
        raise UsageError(f"{_config.flag(error.field)}: {error}") from None


def _check_outputs(args: argparse.Namespace, fleet: bool) -> None:
    """Refuse, before any work, outputs that would replace what is not h0's or cannot be written."""
    from h0._atomic import check_target
    from h0.anomaly._detector import DETECTOR_KIND
    from h0.anomaly._report import FLEET_KIND, REPORT_KIND

    try:
        check_target(Path(args.out), FLEET_KIND if fleet else REPORT_KIND)
    except UsageError as error:
        raise UsageError(f"--out: {error}") from None
    if args.save_model:
        try:
            check_target(Path(args.save_model), DETECTOR_KIND)
        except UsageError as error:
            raise UsageError(f"--save-model: {error}") from None


def run_detect(args: argparse.Namespace) -> int:
    """Run ``h0 detect`` from parsed arguments (one series or a fleet)."""
    from h0.anomaly._io import BUNDLED_NAME, bundled_paths, load_csv, load_labels
    from h0.anomaly._run import SeriesInput, detect

    started = time.perf_counter()
    fleet = len(args.csv) > 1 or bool(args.csv and Path(args.csv[0]).is_dir())
    config = _config_from(args, fleet)
    _check_outputs(args, fleet)

    bundled = not args.csv
    if bundled:
        csv_path, labels_path = bundled_paths()
        paths, names = [csv_path], [BUNDLED_NAME]
        labels_path = Path(args.labels) if args.labels else labels_path
    else:
        paths = fleet_paths(args.csv) if fleet else [Path(args.csv[0])]
        names = [str(p) for p in paths]
        labels_path = Path(args.labels) if args.labels else None
    inputs, loaded_series = [], []
    for path, name in zip(paths, names, strict=True):
        s = load_csv(
            path,
            value_columns=args.value_column,
            time_column=args.time_column,
            fill_missing=args.fill_missing,
            sort=args.sort,
            keep_order=args.keep_order or bundled,
            delimiter=args.delimiter,
            decimal=args.decimal,
            header=args.header,
            time_unit=args.time_unit,
        )
        if not args.quiet and not args.json:
            for note in s.notes:
                print(f"h0 detect: note: {note}", file=sys.stderr)
        if loaded_series and s.columns != loaded_series[0].columns:
            raise UsageError(
                f"{path}: value columns {s.columns} differ from {loaded_series[0].columns} in "
                f"{loaded_series[0].path}; every series of a fleet needs the same columns (choose "
                "them with --value-column)."
            )
        total = s.values.shape[0]
        windows = load_labels(labels_path, s.times, path.name, n_rows=total) if labels_path else []
        try:
            n_train = _train_points(args, s.times, total)
        except UsageError as error:
            raise UsageError(f"{path}: {error}" if fleet else str(error)) from None
        need = 2 * config.model.window
        if n_train < need:
            raise UsageError(
                f"{path}: the training part has {n_train} of {total} points, but --window "
                f"{config.model.window} needs at least {need} (2 x window); use a longer series, "
                "a larger --train-fraction or a smaller --window."
            )
        loaded_series.append(s)
        inputs.append(
            SeriesInput(
                name=name,
                values=s.values,
                train_size=n_train,
                times=s.times,
                columns=s.columns,
                known_windows=windows,
            )
        )
    loaded = time.perf_counter()
    mesh, devices = None, 1
    if fleet:
        import jax

        from h0 import _parallel as hp

        devices = len(jax.devices())
        if devices > 1:
            if config.training.batch_size % devices:
                raise UsageError(
                    f"--batch-size {config.training.batch_size} cannot be split over {devices} "
                    f"devices; use a multiple of {devices}."
                )
            mesh = hp.data_mesh()
    try:
        if args.quiet:
            detector, runs = detect(inputs, config, mesh=mesh)
        else:
            from h0.anomaly._progress import training_progress

            label = "training (fleet)" if fleet else "training"
            with training_progress(config.training.epochs, label) as callback:
                detector, runs = detect(inputs, config, callback=callback, mesh=mesh)
    except ValueError as error:  # e.g. diverged training, too few windows for the devices
        raise UsageError(str(error)) from None
    for run in runs:
        run.timings["load"] = loaded - started
        unmodelled = run.settings["unmodelled_channels"]
        if unmodelled and not args.quiet and not args.json:
            print(
                f"h0 detect: note: {run.name}: column{'s' * (len(unmodelled) > 1)} "
                f"{_names(unmodelled)} constant in the "
                "training part: not scored, and held at the training value for the network (a "
                "later change there is not by itself an anomaly)",
                file=sys.stderr,
            )
    if args.save_model:
        detector.save(args.save_model)

    from h0.anomaly._report import write_fleet, write_report

    out = Path(args.out)
    if fleet:
        settings = {"series": len(runs), "devices": devices, **config.nested()}
        written = write_fleet(runs, [p.stem for p in paths], settings, out)
    else:
        written = write_report(runs[0], out, plot=not args.no_plot)
    total_s = time.perf_counter() - started
    for run in runs:
        run.timings["total"] = total_s
    if args.json:
        payload = {
            "runs": [r.summary() for r in runs],
            "out": str(out),
            "written": [str(p) for p in written],
            "timings_s": {k: round(v, 3) for k, v in runs[0].timings.items()},
        }
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif not args.quiet:
        if sys.stdout.isatty():
            _summary(runs, written, out, fleet)
        else:
            _plain_summary(runs, written)
    return 0


def _plain_summary(runs: list[Any], written: list[Path]) -> None:
    """``key: value`` lines for a pipe or a log (no box drawing)."""
    for run in runs:
        s = run.summary()
        print(f"series: {run.name}")
        print(f"points: {s['points']} ({s['train_points']} for training)")
        print(f"threshold: {run.threshold:.4g}")
        print(
            f"flagged points: {s['flagged_points']} ({s['flagged_after_training']} after training)"
        )
        print(f"alarms: {s['alarms']} ({s['alarms_after_training']} after training)")
        ev = run.evaluation()
        if ev:
            for w in ev["windows"]:
                status = f"detected at {w['first_alarm']}" if w["detected"] else "missed"
                print(
                    f"known window {w['start']}: {status}{' (training)' if w['in_training'] else ''}"
                )
            print(
                f"false alarms: {ev['false_alarms']} ({ev['false_alarms_after_training']} after training)"
            )
    t = runs[0].timings
    print(f"time: {t['total']:.1f} s (training {t['fit']:.1f} s, scoring {t['score']:.1f} s)")
    print(f"written: {', '.join(str(p) for p in written)}")


def _summary(runs: list[Any], written: list[Path], out: Path, fleet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    timings = runs[0].timings
    time_line = (
        f"{timings['total']:.1f} s (training {timings['fit']:.1f} s, scoring "
        f"{timings['score']:.1f} s)"
    )
    if fleet:
        table = Table(title=f"h0 detect: fleet of {len(runs)} series", title_justify="left")
        for column in (
            "series",
            "points",
            "train",
            "flagged",
            "alarms",
            "after training",
            "max score",
        ):
            table.add_column(column, justify="left" if column == "series" else "right")
        for run in runs:
            s = run.summary()
            table.add_row(
                Path(run.name).stem,
                str(s["points"]),
                str(s["train_points"]),
                str(s["flagged_points"]),
                str(s["alarms"]),
                str(s["alarms_after_training"]),
                f"{s['max_score_after_training']:.3f}",
            )
        table.caption = f"{time_line}; written: {out}/ ({len(written)} entries)"
        console.print(table)
        return
    run = runs[0]
    s = run.summary()
    table = Table(
        title=f"h0 detect: {Path(run.name).name}", title_justify="left", show_header=False
    )
    table.add_column("")
    table.add_column("")
    table.add_row("points", f"{s['points']} ({s['train_points']} for training)")
    table.add_row("threshold", f"{run.threshold:.4g}")
    table.add_row(
        "flagged points", f"{s['flagged_points']} ({s['flagged_after_training']} after training)"
    )
    table.add_row("alarms", f"{s['alarms']} ({s['alarms_after_training']} after training)")
    ev = run.evaluation()
    if ev:
        for w in ev["windows"]:
            status = "detected at " + w["first_alarm"] if w["detected"] else "missed"
            if w["in_training"]:
                status += " (inside the training part)"
            table.add_row(f"known window {w['start'][:16]}", status)
        table.add_row(
            "false alarms",
            f"{ev['false_alarms']} ({ev['false_alarms_after_training']} after training)",
        )
    table.add_row("time", time_line)
    table.add_row("written", ", ".join(str(p) for p in written))
    console.print(table)
