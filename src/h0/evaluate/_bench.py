"""``h0 bench``: one harness, many datasets, every detector through the same code.

**The contract** every detector meets (:class:`BenchDetector`): ``fit(train [n, C]) -> self``,
``score(test [m, C]) -> [m]`` (dense, higher = more anomalous; ``test`` continues ``train``),
``predict(test) -> [m]`` (0/1 per point) and ``alarms(test) -> [Event]`` (``.start``, ``.end``,
``.peak``: rows of ``test``). h0's detector is wrapped by :class:`H0Adapter` (its own
``predict``; ``alarms`` if it has one, else the runs of ``predict``); the score-only baselines of
:mod:`h0.evaluate.baselines` by :class:`CausalBaseline`, whose ``predict`` is the common rule:

**The common threshold rule**: threshold = the ``quantile`` (0.99) of the detector's scores on its
own training part; ``predict`` = ``score > threshold`` (strict: h0's staged scores are 0 on
most training points, and ``>=`` a threshold of 0 would flag every point); events = runs of ``predict`` merged when
at most ``gap`` (20) rows apart. Every detector, h0 included, is *also* measured with this rule
(``point_f1_q``, ``event_f1_q``), so that a threshold choice is never mistaken for a better score.

**Metrics per run** (:func:`evaluate`): AUC-PR and VUS-PR (buffers ``0..max_buffer``) of
``score``; point F1 of ``predict``; event F1 of ``alarms`` (an event is true if it overlaps a
labelled segment; recall over labelled segments); the F1 of flagging every point; alarms per
1,000 points (all datasets, the only measure on unlabelled ones such as Daphnet's excerpt); and,
for the NAB family, NAB's standard score over the series that were run (threshold optimised over
them, as NAB does), from the training scores and the test scores put back together.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.sin(np.arange(1200) / 8)[:, None] + 0.05 * rng.normal(size=(1200, 1))
    >>> labels = np.zeros(600, np.int8); labels[300:310] = 1
    >>> test = x[600:].copy(); test[300:310] += 2.0
    >>> ds = _devdata.Dataset("toy/sine", "toy", "dev", x[:600], test, labels, "prefix")
    >>> row = evaluate(ds, make_detector("zscore", seed=0))
    >>> row["auc_pr"] > 0.5, row["event_f1"] > 0
    (True, True)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from h0._errors import UsageError
from h0.evaluate import _baselines as baselines
from h0.evaluate import _devdata
from h0.evaluate import _metrics as metrics

__all__ = [
    "DETECTORS",
    "BenchConfig",
    "BenchDetector",
    "CausalBaseline",
    "Event",
    "H0Adapter",
    "evaluate",
    "events_from_predictions",
    "make_detector",
    "run_bench",
    "summarize",
]

#: Detector names of ``h0 bench --detectors``.
DETECTORS = ("h0", "h0-untrained", "zscore", "iforest", "pca", "random")
#: The datasets of ``--quick`` (dev split, small, one per kind of anomaly length).
QUICK_DATASETS = (
    "gutentag/extremum-points-a",
    "gutentag/platform-long-a",
    "gutentag/multi-3ch-mixed-a",
)
#: The metrics of the printed tables, with their column titles.
TABLE_METRICS = {
    "auc_pr": "AUC-PR",
    "vus_pr": "VUS-PR",
    "point_f1": "F1",
    "event_f1": "event F1",
    "point_f1_q": "F1@q",
    "event_f1_q": "evF1@q",
    "all_ones_f1": "all-ones F1",
    "alarms_per_1k": "alarms/1k",
    "flagged_share": "flagged",
}


class Event(NamedTuple):
    """An alarm event: inclusive rows ``start..end`` of the scored series, ``peak`` its top score."""

    start: int
    end: int
    peak: int


@runtime_checkable
class BenchDetector(Protocol):
    """What ``h0 bench`` runs: fit on a training part, then score, predict and alarm on its continuation."""

    def fit(self, train: np.ndarray) -> BenchDetector: ...

    def score(self, test: np.ndarray) -> np.ndarray: ...

    def predict(self, test: np.ndarray) -> np.ndarray: ...

    def alarms(self, test: np.ndarray) -> list: ...


def events_from_predictions(
    predictions: np.ndarray, scores: np.ndarray | None = None, gap: int = 0
) -> list[Event]:
    """Events from 0/1 predictions: maximal runs of ones, merged when at most ``gap`` zeros apart.

    Args:
        predictions: 0/1 array ``[m]``.
        scores: Scores ``[m]`` to place each event's ``peak`` (default: its start).
        gap: Runs separated by at most ``gap`` zero rows become one event.

    Returns:
        The events in time order.

    Raises:
        ValueError: If ``gap`` is negative.

    Example:
        >>> events_from_predictions(np.array([1, 0, 1, 0, 0, 0, 1]), gap=1)
        [Event(start=0, end=2, peak=0), Event(start=6, end=6, peak=6)]
    """
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    runs = metrics.ranges(np.asarray(predictions).astype(np.int8))
    merged: list[list[int]] = []
    for a, b in runs.tolist():
        if merged and a - merged[-1][1] - 1 <= gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    events = []
    for a, b in merged:
        peak = a if scores is None else a + int(np.argmax(np.asarray(scores)[a : b + 1]))
        events.append(Event(a, b, peak))
    return events


def _as_2d(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, np.float64)
    return x[:, None] if x.ndim == 1 else x


class CausalBaseline:
    """A ``score(values, train_end)`` baseline behind the bench contract, with the common rule.

    ``fit`` keeps the training part and scores it (the threshold is the ``quantile`` of those
    scores; ``predict`` is ``score > threshold``); ``score(test)`` scores ``train`` followed by
    ``test`` causally and returns the
    ``test`` part. The last scores are memoised, so ``score``, ``predict`` and ``alarms`` on the same
    ``test`` score once.

    Args:
        model: An object with ``score(values, train_end) -> [T]``.
        quantile: Threshold quantile of the training scores.
        gap: Merge gap of the events.

    Example:
        >>> x = np.r_[np.zeros(50), 5.0, np.zeros(9)] + np.arange(60) % 2
        >>> det = CausalBaseline(baselines.RollingZScore(window=20)).fit(x[:30])
        >>> det.alarms(x[30:])
        [Event(start=20, end=20, peak=20)]
    """

    def __init__(self, model: Any, *, quantile: float = 0.99, gap: int = 20):
        self.model = model
        self.quantile = quantile
        self.gap = gap

    def fit(self, train: np.ndarray) -> CausalBaseline:
        """Keep ``train``, score it, set ``threshold_``."""
        self.train_ = _as_2d(train)
        self.train_scores_ = np.asarray(self.model.score(self.train_, len(self.train_)))
        self.threshold_ = float(np.quantile(self.train_scores_, self.quantile))
        self._memo: tuple[bytes, np.ndarray] | None = None
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        """Scores ``[m]`` of ``test``, the continuation of the training part."""
        x = _as_2d(test)
        key = x.tobytes()
        if self._memo is None or self._memo[0] != key:
            full = self.model.score(np.concatenate([self.train_, x]), len(self.train_))
            self._memo = (key, np.asarray(full[len(self.train_) :], np.float64))
        return self._memo[1]

    def predict(self, test: np.ndarray) -> np.ndarray:
        """0/1 per point: ``score > threshold_``."""
        return (self.score(test) > self.threshold_).astype(np.int64)

    def alarms(self, test: np.ndarray) -> list[Event]:
        """Runs of :meth:`predict` merged within ``gap``."""
        return events_from_predictions(self.predict(test), self.score(test), self.gap)


class H0Adapter:
    """h0's :class:`~h0.anomaly.GRUAutoencoderDetector` behind the bench contract.

    ``predict`` is the detector's own; ``alarms`` is the detector's own if it has one (objects or
    tuples with start, end, peak), else the runs of ``predict`` merged within ``gap``.
    ``train_scores_`` are the detector's ``decision_scores_`` (its training series scored
    causally), which the common rule needs.

    Args:
        gap: Merge gap when the detector has no ``alarms``.
        **options: Settings of ``GRUAutoencoderDetector``.
    """

    def __init__(self, *, gap: int = 20, **options: Any):
        self.gap = gap
        self.options = options

    def fit(self, train: np.ndarray) -> H0Adapter:
        """Fit the detector on ``train``."""
        from h0.anomaly import GRUAutoencoderDetector

        self.detector_ = GRUAutoencoderDetector(**self.options).fit(_as_2d(train))
        scores = getattr(self.detector_, "decision_scores_", None)
        self.train_scores_ = (
            np.asarray(scores) if scores is not None else self.detector_.score(_as_2d(train))
        )
        self.threshold_ = getattr(self.detector_, "threshold_", None)
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        """The detector's scores of ``test``."""
        return np.asarray(self.detector_.score(_as_2d(test)), np.float64)

    def predict(self, test: np.ndarray) -> np.ndarray:
        """The detector's own 0/1 decisions."""
        return np.asarray(self.detector_.predict(_as_2d(test))).astype(np.int64)

    def alarms(self, test: np.ndarray) -> list[Event]:
        """The detector's alarm events, or the runs of its ``predict``."""
        own = getattr(self.detector_, "alarms", None)
        if callable(own):
            out = []
            for e in own(_as_2d(test)):
                start, end, peak = (e.start, e.end, e.peak) if hasattr(e, "start") else tuple(e)[:3]
                out.append(Event(int(start), int(end), int(peak)))
            return out
        return events_from_predictions(self.predict(test), self.score(test), self.gap)


def make_detector(
    name: str,
    seed: int,
    *,
    epochs: int | None = None,
    quantile: float = 0.99,
    gap: int = 20,
    h0_options: dict | None = None,
) -> BenchDetector:
    """A detector of :data:`DETECTORS` behind the bench contract.

    Args:
        name: Detector name.
        seed: Seed (h0's training, the forest, the random scores).
        epochs: h0's training epochs (default: the detector's default); ``h0-untrained`` is 0.
        quantile: The common rule's threshold quantile (baselines' ``predict``).
        gap: Event merge gap.
        h0_options: Further ``GRUAutoencoderDetector`` settings for ``h0``/``h0-untrained``.

    Returns:
        The detector, unfitted.

    Raises:
        UsageError: On an unknown name.

    Example:
        >>> type(make_detector("pca", 0)).__name__
        'CausalBaseline'
    """
    options = dict(h0_options or {})
    if name == "h0":
        if epochs is not None:
            options["epochs"] = epochs
        return H0Adapter(gap=gap, seed=seed, **options)
    if name == "h0-untrained":
        return H0Adapter(gap=gap, seed=seed, **{**options, "epochs": 0})
    models: dict[str, Callable[[], Any]] = {
        "zscore": lambda: baselines.RollingZScore(window=100),
        "iforest": lambda: baselines.IsolationForestDetector(seed=seed),
        "pca": lambda: baselines.PCADetector(),
        "random": lambda: baselines.RandomDetector(seed=seed),
    }
    if name not in models:
        raise UsageError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return CausalBaseline(models[name](), quantile=quantile, gap=gap)


def _options(detector: BenchDetector) -> dict:
    if isinstance(detector, H0Adapter):
        return {"gap": detector.gap, **detector.options}
    model = detector.model
    fields = dataclasses.asdict(model) if dataclasses.is_dataclass(model) else {}
    return {
        "model": type(model).__name__,
        **fields,
        "quantile": detector.quantile,
        "gap": detector.gap,
    }


def evaluate(
    ds: _devdata.Dataset,
    detector: BenchDetector,
    *,
    quantile: float = 0.99,
    gap: int = 20,
    max_buffer: int = 20,
) -> dict[str, Any]:
    """Fit ``detector`` on ``ds.train``, run it on ``ds.test`` and measure it.

    Args:
        ds: The dataset.
        detector: A :class:`BenchDetector`, unfitted.
        quantile: The common rule's quantile (``*_q`` metrics).
        gap: The common rule's event merge gap.
        max_buffer: VUS-PR's largest buffer.

    Returns:
        A flat dict of metrics (``None`` where undefined, e.g. AUC-PR without anomalies) and the
        timings; ``"train_scores"``/``"scores"`` hold the score arrays (dropped from the JSON).
    """
    started = time.perf_counter()
    detector.fit(ds.train)
    fit_s = time.perf_counter() - started
    scores = np.asarray(detector.score(ds.test), np.float64)
    predictions = np.asarray(detector.predict(ds.test)).astype(np.int8)
    events = detector.alarms(ds.test)
    run_s = time.perf_counter() - started - fit_s
    if scores.shape != (len(ds.test),) or predictions.shape != scores.shape:
        raise ValueError(
            f"{ds.name}: score/predict must return [{len(ds.test)}], got {scores.shape} and "
            f"{predictions.shape}"
        )
    train_scores = np.asarray(getattr(detector, "train_scores_", detector.score(ds.train)))
    threshold_q = float(np.quantile(train_scores, quantile))
    predictions_q = (scores > threshold_q).astype(np.int8)
    events_q = events_from_predictions(predictions_q, scores, gap)
    ev = np.array([[e.start, e.end] for e in events], np.int64).reshape(-1, 2)
    ev_q = np.array([[e.start, e.end] for e in events_q], np.int64).reshape(-1, 2)
    row: dict[str, Any] = {
        "fit_s": round(fit_s, 3),
        "score_s": round(run_s, 3),
        "n_test": len(ds.test),
        "anomalous_share": float(ds.labels.mean()),
        "events": len(events),
        "events_q": len(events_q),
        "alarms_per_1k": 1000.0 * len(events) / len(ds.test),
        "flagged_share": float(predictions.mean()),
        "threshold_q": threshold_q,
        "train_scores": train_scores,
        "scores": scores,
    }
    undefined = dict.fromkeys(
        ("auc_pr", "vus_pr", "point_f1", "point_f1_q", "event_f1", "event_f1_q", "all_ones_f1")
    )
    row.update(undefined)
    labels = ds.labels.astype(np.int8)
    if labels.any() and not labels.all():
        row.update(
            auc_pr=metrics.auc_pr(labels, scores),
            vus_pr=metrics.vus_pr(labels, scores, max_buffer=max_buffer),
            point_f1=metrics.point_f1(labels, predictions, 0.5),
            point_f1_q=metrics.point_f1(labels, predictions_q, 0.5),
            event_f1=metrics.event_precision_recall_f1(labels, ev).f1,
            event_f1_q=metrics.event_precision_recall_f1(labels, ev_q).f1,
            all_ones_f1=metrics.all_ones_f1(labels),
        )
    return row


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """One ``h0 bench`` run.

    Attributes:
        split: ``"dev"``, ``"test"`` or ``"all"``.
        detectors: Names of :data:`DETECTORS`.
        seeds: Seeds; each (dataset, detector) runs once per seed.
        datasets: Keep datasets whose name contains one of these strings (empty: all).
        families: Keep these families (empty: all available).
        quick: The :data:`QUICK_DATASETS`, one seed, h0 trained for one epoch.
        epochs: h0's training epochs (default: the detector's default; 1 with ``quick``).
        quantile: The common threshold rule's quantile of the training scores.
        gap: Event merge gap (rows).
        max_buffer: VUS-PR's largest buffer.
        nab_score: Add NAB's standard score for the NAB family.
    """

    split: str = "dev"
    detectors: tuple[str, ...] = DETECTORS
    seeds: tuple[int, ...] = (0,)
    datasets: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    quick: bool = False
    epochs: int | None = None
    quantile: float = 0.99
    gap: int = 20
    max_buffer: int = 20
    nab_score: bool = True
    h0_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        unknown = [d for d in self.detectors if d not in DETECTORS]
        if unknown:
            raise UsageError(f"unknown detector {unknown[0]!r}; choose from {', '.join(DETECTORS)}")
        if not self.seeds:
            raise UsageError("give at least one seed")
        if not 0 < self.quantile <= 1:
            raise UsageError(f"--quantile must lie in (0, 1]; got {self.quantile}")
        if self.gap < 0 or self.max_buffer < 0:
            raise UsageError("--gap and --max-buffer must be >= 0")


def select(config: BenchConfig, root: Path | None = None) -> list[_devdata.DatasetRef]:
    """The datasets a configuration runs on.

    Raises:
        UsageError: If nothing is selected (e.g. the cache is absent).
    """
    names = QUICK_DATASETS if config.quick and not config.datasets else config.datasets
    refs = _devdata.datasets(
        "all" if config.quick and not config.datasets else config.split,
        families=config.families or None,
        names=names or None,
        root=root,
    )
    if config.quick and not config.datasets:
        refs = [r for r in refs if r.name in QUICK_DATASETS]
    if not refs:
        cache = root or _devdata.default_root()
        raise UsageError(
            f"no dataset selected (cache {cache}: "
            f"{'present' if _devdata.read_manifest(cache) else 'absent, run `h0 bench prepare`'}; "
            f"NAB: {_devdata.nab_root() or 'not found, set $H0_NAB_ROOT'})"
        )
    return refs


def _nab_scores(runs: list[dict], loaded: dict[str, _devdata.Dataset]) -> dict:
    """NAB standard score per (detector, seed) over the NAB series run.

    Every detector's dense score is shaped for NAB's cost model the same way the NAB results
    writer does (:func:`h0.anomaly.nab_shape` with ``NAB_SHAPING``).
    """
    from h0.anomaly._alarms import NAB_SHAPING, nab_shape
    from h0.evaluate import _nab

    by_key: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    roots = {}
    for r in runs:
        ds = loaded[r["dataset"]]
        if ds.family != "nab":
            continue
        values = np.concatenate([ds.train, ds.test])
        full = nab_shape(np.concatenate([r["train_scores"], r["scores"]]), values, **NAB_SHAPING)
        by_key.setdefault((r["detector"], r["seed"]), {})[ds.meta["rel"]] = full
        roots[ds.meta["rel"]] = ds.meta["nab_root"]
    if not by_key:
        return {}
    corpus = _nab.load_corpus(next(iter(roots.values())))
    out = {}
    for (detector, seed), scores in by_key.items():
        sub = dataclasses.replace(corpus, files={rel: corpus.files[rel] for rel in scores})
        if not any(len(f.windows) for f in sub.files.values()):
            continue
        result = _nab.score_corpus(_nab.NabResults(detector, scores), sub, profiles=["standard"])
        out[f"{detector}/{seed}"] = result["standard"].score
    return out


def run_bench(
    config: BenchConfig,
    *,
    root: Path | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run every selected (dataset, detector, seed) and summarise.

    ``progress`` is called with each run's row as it finishes.

    Returns:
        ``{"config", "machine", "seconds", "runs": [...], "summary": ..., "nab_standard": ...}``;
        each run has ``dataset``, ``family``, ``split``, ``detector``, ``seed``, ``options`` and
        the metrics of :func:`evaluate`.
    """
    refs = select(config, root)
    seeds = config.seeds[:1] if config.quick else config.seeds
    epochs = 1 if config.quick and config.epochs is None else config.epochs
    started = time.perf_counter()
    runs: list[dict] = []
    loaded = {ref.name: ref.load() for ref in refs}
    # Seeds outermost: an interrupted run still has whole seeds.
    for seed in seeds:
        for ds in loaded.values():
            for name in config.detectors:
                det = make_detector(
                    name,
                    seed,
                    epochs=epochs,
                    quantile=config.quantile,
                    gap=config.gap,
                    h0_options=dict(config.h0_options),
                )
                row = evaluate(
                    ds, det, quantile=config.quantile, gap=config.gap, max_buffer=config.max_buffer
                )
                runs.append(
                    {
                        "dataset": ds.name,
                        "family": ds.family,
                        "split": ds.split,
                        "detector": name,
                        "seed": seed,
                        "options": _options(det),
                        **row,
                    }
                )
                if progress is not None:
                    progress(runs[-1])
    nab = _nab_scores(runs, loaded) if config.nab_score else {}
    for r in runs:
        r.pop("train_scores")
        r.pop("scores")
    return {
        "config": {**dataclasses.asdict(config), "seeds": list(seeds), "epochs": epochs},
        "machine": {"python": platform.python_version(), "node": platform.node()},
        "seconds": round(time.perf_counter() - started, 1),
        "datasets": [
            {"name": d.name, "split": d.split, "train_rule": d.train_rule, "n_test": len(d.test)}
            for d in loaded.values()
        ],
        "runs": runs,
        "nab_standard": nab,
        "summary": summarize(runs, nab),
    }


def _mean_std(values: Sequence[float]) -> tuple[float, float] | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return None
    return float(np.mean(v)), float(np.std(v))


def summarize(runs: list[dict], nab: dict | None = None) -> dict:
    """Per family and detector: each metric's mean over datasets, then mean and std over seeds.

    Example:
        >>> runs = [{"family": "f", "detector": "d", "seed": s, "dataset": n, "auc_pr": v}
        ...         for s, n, v in [(0, "a", 0.2), (0, "b", 0.4), (1, "a", 0.4), (1, "b", 0.6)]]
        >>> summarize(runs)["f"]["d"]["auc_pr"]  # seed means 0.3 and 0.5
        {'mean': 0.4, 'std': 0.1, 'datasets': 2}
    """
    out: dict[str, dict[str, dict]] = {}
    # Families sorted, detectors in the order they ran.
    keys = sorted(dict.fromkeys((r["family"], r["detector"]) for r in runs), key=lambda k: k[0])
    for family, detector in keys:
        mine = [r for r in runs if r["family"] == family and r["detector"] == detector]
        cell: dict[str, Any] = {}
        for metric in (*TABLE_METRICS, "fit_s"):
            per_seed = []
            used = set()
            for seed in sorted({r["seed"] for r in mine}):
                vals = [r.get(metric) for r in mine if r["seed"] == seed]
                used |= {
                    r["dataset"] for r in mine if r["seed"] == seed and r.get(metric) is not None
                }
                ms = _mean_std(vals)
                if ms is not None:
                    per_seed.append(ms[0])
            ms = _mean_std(per_seed)
            if ms is not None:
                cell[metric] = {
                    "mean": round(ms[0], 6),
                    "std": round(ms[1], 6),
                    "datasets": len(used),
                }
        if nab:
            scores = [v for k, v in nab.items() if k.split("/")[0] == detector]
            ms = _mean_std(scores)
            if family == "nab" and ms is not None:
                cell["nab_standard"] = {"mean": round(ms[0], 3), "std": round(ms[1], 3)}
        out.setdefault(family, {})[detector] = cell
    return out


def format_tables(result: dict) -> str:
    """The summary as one markdown table per family (``mean ± std`` over seeds)."""
    lines = []
    for family, cells in result["summary"].items():
        first = next(iter(cells.values()))
        n = first.get("auc_pr", {}).get("datasets", 0)
        lines.append(f"\n**{family}** ({n} labelled datasets; alarms/1k over all)\n")
        columns = [*TABLE_METRICS.values(), "fit s"]
        has_nab = any("nab_standard" in c for c in cells.values())
        if has_nab:
            columns.append("NAB std")
        lines.append("| detector | " + " | ".join(columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        order = sorted(
            cells, key=lambda d: DETECTORS.index(d) if d in DETECTORS else len(DETECTORS)
        )
        for detector in order:
            cell = cells[detector]
            parts = []
            for metric in (*TABLE_METRICS, "fit_s") + (("nab_standard",) if has_nab else ()):
                v = cell.get(metric)
                if v is None:
                    parts.append("–")
                elif metric in ("alarms_per_1k", "fit_s", "nab_standard"):
                    parts.append(f"{v['mean']:.1f} ± {v['std']:.1f}")
                else:
                    parts.append(f"{v['mean']:.3f} ± {v['std']:.3f}")
            lines.append(f"| {detector} | " + " | ".join(parts) + " |")
    return "\n".join(lines).lstrip("\n")


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=float) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``h0 bench [prepare]``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="h0")
        >>> _ = add_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["bench", "--split", "test", "--seeds", "0", "1"])
        >>> args.action, args.split, args.seeds
        ('run', 'test', [0, 1])
    """
    bench = subparsers.add_parser(
        "bench",
        help="development benchmark: many datasets, every detector through one harness",
        description=(
            "`h0 bench prepare` builds the dataset cache ($H0_DEVBENCH_ROOT, default "
            "~/.cache/h0/devbench) from the aeon 1.6.0 wheel's labelled series and GutenTAG "
            "1.5.0; `h0 bench` runs detectors on the dev or test split (plus NAB from "
            "$H0_NAB_ROOT), prints a table per dataset family and writes OUT/bench.json."
        ),
    )
    bench.add_argument("action", nargs="?", choices=("run", "prepare"), default="run")
    bench.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    bench.add_argument(
        "--detectors", nargs="+", default=list(DETECTORS), metavar="NAME", help=", ".join(DETECTORS)
    )
    bench.add_argument("--seeds", nargs="+", type=int, default=[0])
    bench.add_argument(
        "--datasets", nargs="+", default=[], metavar="PATTERN", help="names containing PATTERN"
    )
    bench.add_argument("--families", nargs="+", default=[], choices=_devdata.FAMILIES)
    bench.add_argument("--quick", action="store_true", help="3 small datasets, 1 epoch, 1 seed")
    bench.add_argument("--epochs", type=int, default=None, help="h0's training epochs")
    bench.add_argument("--quantile", type=float, default=0.99, help="common threshold rule")
    bench.add_argument("--gap", type=int, default=20, help="event merge gap (rows)")
    bench.add_argument("--max-buffer", type=int, default=20, help="VUS-PR's largest buffer")
    bench.add_argument("--no-nab-score", action="store_true", help="skip NAB's score (faster)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), metavar="DIR")
    bench.add_argument("--root", type=Path, default=None, help="cache root (prepare and run)")
    bench.add_argument("--force", action="store_true", help="prepare: rebuild the cache")
    bench.add_argument("--aeon-wheel", type=Path, default=None, help="prepare: a local wheel")
    bench.add_argument(
        "--gutentag-python", type=Path, default=None, help="prepare: a Python with GutenTAG"
    )
    from h0.anomaly import _config

    _config.add_arguments(bench, only=OFFERED)
    bench.set_defaults(func=_command)
    return bench


#: The detector settings ``h0 bench`` and ``h0 nab run`` offer: online adaptation
#: (``h0.anomaly._adapt``), the echo rule (``h0.anomaly._scoring.Echo``), robust history, the
#: level test, the roughness test and robust calibration: the settings whose measurements the
#: tuning log reports.
OFFERED = (
    "adapt_every",
    "adapt_history",
    "adapt_steps",
    "adapt_learning_rate",
    "adapt_calibration",
    "echo_keep",
    "robust_history",
    "level_error",
    "roughness_error",
    "calibration_cutoff",
)


def _h0_options(args: argparse.Namespace) -> dict[str, Any]:
    """The offered detector settings given, validated (a bad one is a one-line usage error)."""
    from h0.anomaly import _config

    options = {k: v for k, v in _config.given(args).items() if k in OFFERED}
    try:
        _config.DetectorConfig.from_flat(**options)
    except _config.ConfigError as error:
        raise UsageError(f"{_config.flag(error.field)}: {error}") from None
    return options


def _command(args: argparse.Namespace) -> int:
    import sys

    if args.action == "prepare":
        _devdata.prepare(
            args.root,
            aeon_wheel=args.aeon_wheel,
            gutentag_python=args.gutentag_python,
            force=args.force,
            log=lambda m: print(m, file=sys.stderr),
        )
        return 0
    config = BenchConfig(
        split=args.split,
        detectors=tuple(args.detectors),
        seeds=tuple(args.seeds),
        datasets=tuple(args.datasets),
        families=tuple(args.families),
        quick=args.quick,
        epochs=args.epochs,
        quantile=args.quantile,
        gap=args.gap,
        max_buffer=args.max_buffer,
        nab_score=not args.no_nab_score,
        h0_options=tuple(sorted(_h0_options(args).items())),
    )
    from rich.console import Console
    from rich.progress import Progress

    total = len(select(config, args.root)) * len(config.detectors)
    total *= 1 if config.quick else len(config.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "runs.jsonl").open("w")  # each run as it finishes: survives an interruption
    done = iter(range(1, total + 1))

    def record(row: dict) -> None:
        keep = {k: v for k, v in row.items() if k not in ("scores", "train_scores")}
        log.write(json.dumps(keep, default=float) + "\n")
        log.flush()
        if not sys.stderr.isatty():  # a log file: one line per run instead of a bar
            line = f"[{next(done)}/{total}] {row['dataset']} {row['detector']} seed {row['seed']}"
            print(f"{line} fit {row['fit_s']:.1f} s", file=sys.stderr, flush=True)

    with log:
        if not sys.stderr.isatty():
            result = run_bench(config, root=args.root, progress=record)
        else:
            with Progress(console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("h0 bench", total=total)
                result = run_bench(
                    config,
                    root=args.root,
                    progress=lambda row: (record(row), bar.advance(task)),
                )
    write_json(out / "bench.json", result)
    print(format_tables(result))
    print(f"\n{len(result['runs'])} runs in {result['seconds']} s; wrote {args.out}/bench.json")
    return 0
