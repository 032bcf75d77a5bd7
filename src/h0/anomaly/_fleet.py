"""``h0 detect DIR`` / ``h0 detect A.csv B.csv ...``: one model for a fleet of series.

Every series is read and checked first (same value columns everywhere; a bad file is named), one
detector with per-series learned initial states (``initial_state='per_sequence'`` unless chosen
otherwise) is trained on the first part of every series, and the windows of all series are scored
together, split over every device of a :func:`h0.parallel.data_mesh`. Outputs are one subfolder
per series (``scores.csv``, ``anomalies.json``) and a fleet summary (``fleet.csv``,
``fleet.json``), written to a temporary directory and renamed into ``--out`` when complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from h0._errors import UsageError
from h0.anomaly._progress import training_progress

FLEET_COLUMNS = (
    "series",
    "file",
    "points",
    "train_points",
    "alarms",
    "alarms_after_training",
    "intervals",
    "max_score",
)


def fleet_paths(inputs: list[str]) -> list[Path]:
    """The CSV files of a fleet: a directory's ``*.csv`` (sorted by name) and/or files.

    Raises:
        UsageError: A missing path, a directory without CSV files, two files with the same name
            (their output folders would collide), fewer than one file in all.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.csv") if p.is_file())
            if not found:
                raise UsageError(f"{path}: the directory has no .csv files.")
            paths.extend(found)
        elif path.is_file():
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


def run_fleet(args: argparse.Namespace, config_kwargs: dict[str, Any]) -> int:
    """Run ``h0 detect`` on several series (the CLI's fleet mode)."""
    from h0.anomaly._cli import _train_points, _value_columns
    from h0.anomaly._detector import DetectorConfig
    from h0.anomaly._io import load_csv, load_labels

    started = time.perf_counter()
    if args.initial_state is None:
        config_kwargs = {**config_kwargs, "initial_state": "per_sequence"}
    try:
        config = DetectorConfig(**config_kwargs)
    except ValueError as error:
        option = str(error).split(" ")[0].replace("_", "-")
        raise UsageError(f"--{option}: {error}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory.")

    paths = fleet_paths(args.csv)
    series, labels, n_trains = [], [], []
    for path in paths:
        s = load_csv(
            path,
            value_columns=_value_columns(args),
            time_column=args.time_column,
            fill_missing=args.fill_missing,
            sort=args.sort,
            keep_order=args.keep_order,
        )
        if series and s.columns != series[0].columns:
            raise UsageError(
                f"{path}: value columns {s.columns} differ from {series[0].columns} in "
                f"{series[0].path}; every series of a fleet needs the same columns (choose them "
                "with --value-column)."
            )
        try:
            n_train = _train_points(args, s.times, s.values.shape[0])
        except UsageError as error:
            raise UsageError(f"{path}: {error}") from None
        if n_train < config.min_length:
            raise UsageError(
                f"{path}: the training part has {n_train} of {s.values.shape[0]} points, but "
                f"--window {config.window} needs at least {config.min_length} (2 x window)."
            )
        labels.append(load_labels(Path(args.labels), s.times, path.name) if args.labels else [])
        series.append(s)
        n_trains.append(n_train)

    import jax

    from h0 import _parallel as hp

    devices = len(jax.devices())
    mesh = hp.data_mesh() if devices > 1 else None
    if config.batch_size % devices:
        raise UsageError(
            f"--batch-size {config.batch_size} cannot be split over {devices} devices; use a "
            f"multiple of {devices}."
        )
    loaded = time.perf_counter()
    detector = _fit(
        config, [s.values[:n] for s, n in zip(series, n_trains, strict=True)], mesh, args
    )
    fitted = time.perf_counter()
    rest = detector.score_many([s.values[n:] for s, n in zip(series, n_trains, strict=True)])
    train_scores = detector.decision_scores_
    if len(series) == 1:
        train_scores = [train_scores]
    scores = [np.concatenate([a, b]) for a, b in zip(train_scores, rest, strict=True)]
    scored = time.perf_counter()

    from h0.anomaly._report import DetectionRun
    from h0.anomaly._scoring import alarms

    settings = {
        "series": len(series),
        "columns": ", ".join(series[0].columns),
        "devices": devices,
        **dataclasses.asdict(config),
        "threshold_used": round(detector.threshold_, 6),
    }
    timings = {"load": loaded - started, "fit": fitted - loaded, "score": scored - fitted}
    runs = []
    for s, n_train, sc, windows in zip(series, n_trains, scores, labels, strict=True):
        runs.append(
            DetectionRun(
                source=str(s.path),
                times=s.times,
                values=s.values,
                columns=s.columns,
                scores=sc,
                alarms=alarms(sc, detector.threshold_, config.refractory),
                threshold=detector.threshold_,
                n_train=n_train,
                windows=windows,
                settings={"source": str(s.path), "points": len(sc), "train_points": n_train},
            )
        )
    if args.save_model:
        detector.save(args.save_model)
    summary = fleet_summary(runs)
    timings["total"] = time.perf_counter() - started
    written = write_fleet(runs, summary, settings, timings, out)
    if not args.quiet:
        _table(summary, timings, devices, out, len(written))
    return 0


def _fit(config: Any, train: list[np.ndarray], mesh: Any, args: argparse.Namespace) -> Any:
    from h0.anomaly._detector import GRUAutoencoderDetector

    detector = GRUAutoencoderDetector(**dataclasses.asdict(config))
    try:
        if args.quiet:
            return detector.fit(train, mesh=mesh)
        with training_progress(config.epochs, "training (fleet)") as callback:
            return detector.fit(train, mesh=mesh, callback=callback)
    except ValueError as error:  # e.g. too few windows for a batch split over the devices
        raise UsageError(str(error)) from None


def fleet_summary(runs: list[Any]) -> pd.DataFrame:
    """One row per series: points, alarms, intervals and the highest score after training.

    Example:
        >>> from h0.anomaly._report import DetectionRun
        >>> run = DetectionRun("a.csv", None, np.zeros((4, 1)), ["v"], np.array([0, .9, .2, .8]),
        ...                    np.array([0, 1, 0, 1], bool), .5, 2, [], {})
        >>> fleet_summary([run]).to_dict("records")[0]  # doctest: +NORMALIZE_WHITESPACE
        {'series': 'a', 'file': 'a.csv', 'points': 4, 'train_points': 2, 'alarms': 2,
         'alarms_after_training': 1, 'intervals': 2, 'max_score': 0.8}
    """
    rows = []
    for run in runs:
        after = run.scores[run.n_train :]
        rows.append(
            {
                "series": Path(run.source).stem,
                "file": run.source,
                "points": len(run.scores),
                "train_points": run.n_train,
                "alarms": int(run.alarms.sum()),
                "alarms_after_training": int(run.alarms[run.n_train :].sum()),
                "intervals": len(run.intervals()),
                "max_score": round(float(after.max()), 6) if after.size else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=list(FLEET_COLUMNS))


def write_fleet(
    runs: list[Any],
    summary: pd.DataFrame,
    settings: dict[str, Any],
    timings: dict[str, float],
    out: Path,
) -> list[Path]:
    """Write ``<series>/scores.csv``, ``<series>/anomalies.json``, ``fleet.csv``, ``fleet.json``.

    Everything goes to a temporary directory beside ``out`` first; only when it is complete are
    its entries renamed into ``out`` (a series folder from an earlier run is replaced whole;
    other files in ``out`` are left alone).

    Returns:
        The paths written into ``out`` (files and series folders).
    """
    from h0.anomaly._report import _anomalies, _scores_frame

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for run, name in zip(runs, summary["series"], strict=True):
            folder = tmp / name
            folder.mkdir()
            _scores_frame(run).to_csv(folder / "scores.csv", index=False)
            (folder / "anomalies.json").write_text(json.dumps(_anomalies(run), indent=1))
        summary.to_csv(tmp / "fleet.csv", index=False)
        fleet = {
            "series": json.loads(summary.to_json(orient="records")),
            "settings": settings,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        (tmp / "fleet.json").write_text(json.dumps(fleet, indent=1))
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for entry in sorted(tmp.iterdir()):
            target = out / entry.name
            old = None
            if target.is_dir():
                old = out / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(old)
            os.replace(entry, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            written.append(target)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _table(summary: pd.DataFrame, timings: dict[str, float], devices: int, out: Path, n: int):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"h0 detect: fleet of {len(summary)} series", title_justify="left")
    for column in (
        "series",
        "points",
        "train",
        "alarms",
        "after training",
        "intervals",
        "max score",
    ):
        table.add_column(column, justify="left" if column == "series" else "right")
    for row in summary.itertuples():
        table.add_row(
            str(row.series),
            str(row.points),
            str(row.train_points),
            str(row.alarms),
            str(row.alarms_after_training),
            str(row.intervals),
            f"{row.max_score:.3f}",
        )
    table.caption = (
        f"{timings['total']:.1f} s (training {timings['fit']:.1f} s, scoring "
        f"{timings['score']:.1f} s) on {devices} device(s); written: {out}/ ({n} entries)"
    )
    Console().print(table)
