"""Run detectors over the whole NAB corpus as NAB requires, write NAB's results layout, score it.

Each series is handled alone: the detector may train on the probationary period only (NAB's first
15%, at most 750 rows), then scores every row causally. A *scorer* returns several named variants
of scores per series (for example the raw model and each scoring stage added), so that an
ablation trains each network once. Series run in a process pool.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from h0._errors import UsageError
from h0.anomaly._alarms import NAB_SHAPING, nab_shape, running_range_flags
from h0.evaluate import _baselines as baselines
from h0.evaluate import _metrics as metrics
from h0.evaluate._nab import NabCorpus, NabResults, probation_length, score_corpus

#: What each scorer returns per series: the dense score, and the score shaped for NAB's cost
#: model (``nab``: :func:`h0.anomaly.nab_shape` with :data:`h0.anomaly._alarms.NAB_SHAPING`).
VARIANTS = ("dense", "nab")


class SeriesScorer(Protocol):
    """``scorer(values [T, 1], train_end) -> {variant: scores [T]}``, causal."""

    def __call__(self, values: np.ndarray, train_end: int) -> dict[str, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class H0GRUScorer:
    """h0's GRU encoder-decoder through :func:`h0.anomaly._run.detect` (trained on the probation).

    Attributes:
        initial_state: The encoder's initial-state strategy name.
        seed: Training seed.
        untrained: Keep the network at its random initialisation (a baseline that shows what
            training contributes); the calibration is still fitted.
        options: Further detector settings.
    """

    initial_state: str = "learned"
    seed: int = 0
    untrained: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def __call__(self, values: np.ndarray, train_end: int) -> dict[str, np.ndarray]:
        """Fit on ``values[:train_end]`` and score every row: dense and NAB-shaped variants."""
        from h0.anomaly import DetectorConfig
        from h0.anomaly._run import SeriesInput, detect

        settings = dict(self.options)
        if self.untrained:
            settings["epochs"] = 0
        config = DetectorConfig.from_flat(
            initial_state=self.initial_state, seed=self.seed, **settings
        )
        _, (run,) = detect(SeriesInput("nab", values, train_end), config)
        return {"dense": run.scores, "nab": nab_shape(run.scores, values, **NAB_SHAPING)}

    def score_many(self, jobs: Sequence[tuple[np.ndarray, int]]) -> list[dict[str, np.ndarray]]:
        """Every series at once: independent detectors trained as one vmapped program.

        Equals calling the scorer on each series (to float32 rounding); NAB's 58 series in one
        process instead of a process pool. With online adaptation (``adapt_every`` in
        ``options``) the training is still one program; each series' continuation then adapts
        its own network, one series after another (``h0.anomaly._adapt``).
        """
        from h0.anomaly._detector import fit_independent

        settings = {"initial_state": self.initial_state, "seed": self.seed, **dict(self.options)}
        if self.untrained:
            settings["epochs"] = 0
        detectors = fit_independent([v[:end] for v, end in jobs], **settings)
        out = []
        for det, (values, end) in zip(detectors, jobs, strict=True):
            dense = np.concatenate([det.decision_scores_, det.score(values[end:])])
            out.append({"dense": dense, "nab": nab_shape(dense, values, **NAB_SHAPING)})
        return out


@dataclasses.dataclass(frozen=True)
class StagedBaselineScorer:
    """A rolling z-score (window 100), dense and shaped for NAB exactly like h0's score.

    Attributes:
        name: ``'zscore'``.
    """

    name: str = "zscore"

    def __call__(self, values: np.ndarray, train_end: int) -> dict[str, np.ndarray]:
        """The dense baseline score and its NAB-shaped variant."""
        if self.name != "zscore":
            raise ValueError(f"no staged baseline called {self.name!r}")
        raw = baselines.RollingZScore(window=100).score(values, train_end)
        return {"dense": raw, "nab": nab_shape(raw, values, **NAB_SHAPING)}


@dataclasses.dataclass(frozen=True)
class PlainBaselineScorer:
    """One of :mod:`h0.evaluate.baselines` (or the range rule alone), as one variant ``'raw'``."""

    name: str
    seed: int = 0

    def __call__(self, values: np.ndarray, train_end: int) -> dict[str, np.ndarray]:
        """The baseline's scores."""
        detectors = {
            "random": lambda: baselines.RandomDetector(seed=self.seed),
            "iforest": lambda: baselines.IsolationForestDetector(seed=self.seed),
            "pca": lambda: baselines.PCADetector(),
        }
        if self.name == "range-rule":
            return {"raw": range_rule_scores(values)}
        return {"raw": detectors[self.name]().score(values, train_end)}


def range_rule_scores(values: np.ndarray) -> np.ndarray:
    """The range rule alone (:func:`h0.anomaly._alarms.running_range_flags`): 1 where it fires.

    Example:
        >>> range_rule_scores(np.r_[np.zeros(100), 1.0, 0.0, 5.0][:, None]).tolist()[-3:]
        [1.0, 0.0, 1.0]
    """
    return running_range_flags(values).astype(np.float64)


#: Detector names accepted by ``h0 nab run --detector``.
DETECTORS = ("h0-gru", "h0-untrained", "zscore", "random", "iforest", "pca", "range-rule")


def make_scorer(
    detector: str, *, initial_state: str = "learned", seed: int = 0, **options: Any
) -> SeriesScorer:
    """The scorer for a detector name of :data:`DETECTORS`.

    Example:
        >>> make_scorer('zscore')(np.sin(np.arange(300.0))[:, None], 100).keys()
        dict_keys(['dense', 'nab'])
    """
    if detector == "h0-gru":
        return H0GRUScorer(initial_state, seed, options=tuple(sorted(options.items())))
    if detector == "h0-untrained":
        return H0GRUScorer(
            initial_state, seed, untrained=True, options=tuple(sorted(options.items()))
        )
    if detector == "zscore":
        return StagedBaselineScorer("zscore")
    if detector in ("random", "iforest", "pca", "range-rule"):
        return PlainBaselineScorer(detector, seed)
    raise UsageError(f"--detector {detector!r} is not known; choose one of {', '.join(DETECTORS)}")


def read_values(corpus: NabCorpus, rel: str) -> np.ndarray:
    """The ``value`` column of one NAB series as ``[T, 1]`` float64."""
    frame = pd.read_csv(corpus.root / "data" / rel)
    if "value" not in frame.columns:
        raise UsageError(f"NAB data file {rel} has no 'value' column")
    return frame["value"].to_numpy(np.float64)[:, None]


def _score_one(
    scorer: SeriesScorer, root: str, rel: str, n_rows: int
) -> tuple[str, dict[str, np.ndarray]]:
    values = pd.read_csv(Path(root) / "data" / rel)["value"].to_numpy(np.float64)[:, None]
    if values.shape[0] != n_rows:
        raise UsageError(f"{rel}: {values.shape[0]} values but {n_rows} timestamps")
    train_end = probation_length(n_rows)
    return rel, scorer(values, train_end)


def _init_worker() -> None:
    # One thread per worker: the pool already keeps every core busy.
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )


def run_corpus(
    scorer: SeriesScorer,
    corpus: NabCorpus,
    *,
    files: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    one_program: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Score every series (or ``files``) with ``scorer``.

    With ``one_program`` and a scorer that has ``score_many`` (h0's detector), every series is
    trained in one vmapped program in this process (independent models, the same scores to
    float32 rounding) instead of one process per series.

    Returns:
        ``{variant: {series path: scores [T]}}``.
    """
    names = list(corpus.files) if files is None else list(files)
    unknown = [n for n in names if n not in corpus.files]
    if unknown:
        raise UsageError(f"series not in the corpus: {', '.join(unknown)}")
    by_variant: dict[str, dict[str, np.ndarray]] = {}

    def collect(rel: str, variants: Mapping[str, np.ndarray]) -> None:
        for variant, scores in variants.items():
            by_variant.setdefault(variant, {})[rel] = np.asarray(scores, np.float64)
        if progress is not None:
            progress(rel)

    jobs = [(rel, len(corpus.files[rel].timestamps)) for rel in names]
    if one_program and hasattr(scorer, "score_many"):
        loaded = []
        for rel, n in jobs:
            values = read_values(corpus, rel)
            if values.shape[0] != n:
                raise UsageError(f"{rel}: {values.shape[0]} values but {n} timestamps")
            loaded.append((values, probation_length(n)))
        for (rel, _), variants in zip(jobs, scorer.score_many(loaded), strict=True):
            collect(rel, variants)
        return by_variant
    if workers <= 1:
        for rel, n in jobs:
            collect(*_score_one(scorer, str(corpus.root), rel, n))
        return by_variant
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending = [pool.submit(_score_one, scorer, str(corpus.root), rel, n) for rel, n in jobs]
        for done in futures.as_completed(pending):
            collect(*done.result())
    return by_variant


def write_results(
    out_dir: Path, detector: str, scores: Mapping[str, np.ndarray], corpus: NabCorpus
) -> Path:
    """Write one detector's scores in NAB's layout: ``out_dir/<detector>/<folder>/<detector>_<file>.csv``."""
    root = Path(out_dir) / detector
    for rel, s in scores.items():
        nab_file = corpus.files[rel]
        folder, name = rel.split("/", 1)
        path = root / folder / f"{detector}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = np.zeros(len(s), np.int64)
        for start, end in nab_file.windows:
            labels[start : end + 1] = 1
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(nab_file.timestamps).strftime("%Y-%m-%d %H:%M:%S"),
                "value": read_values(corpus, rel)[:, 0],
                "anomaly_score": s,
                "label": labels,
            }
        )
        tmp = path.with_suffix(".csv.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(path)
    return root


def mean_vus_pr(scores: Mapping[str, np.ndarray], corpus: NabCorpus, max_buffer: int = 20) -> float:
    """VUS-PR averaged over the series that have a window, after each probationary period."""
    values = []
    for rel, s in scores.items():
        f = corpus.files[rel]
        start = probation_length(len(f.timestamps))
        labels = np.zeros(len(s), np.int64)
        for a, b in f.windows:
            labels[a : b + 1] = 1
        y, x = labels[start:], np.asarray(s)[start:]
        if y.min() == y.max():
            continue
        values.append(metrics.vus_pr(y, x, max_buffer=max_buffer))
    return float(np.mean(values)) if values else float("nan")


def evaluate_variants(
    by_variant: Mapping[str, Mapping[str, np.ndarray]],
    corpus: NabCorpus,
    *,
    prefix: str,
    vus: bool = True,
) -> dict[str, dict[str, float]]:
    """NAB scores (thresholds optimised over the corpus) and mean VUS-PR per variant."""
    if not any(len(f.windows) for f in corpus.files.values()):
        raise UsageError(
            "the chosen series have no anomaly windows, so NAB's score (normalised by the "
            "perfect detector) is undefined; include series with windows"
        )
    summary = {}
    for variant, scores in by_variant.items():
        name = prefix if len(by_variant) == 1 else f"{prefix}-{variant}"
        results = score_corpus(NabResults(name, dict(scores)), corpus)
        row = {profile: r.score for profile, r in results.items()}
        # A threshold of +inf means "never fire" was best: JSON has no infinity, so None.
        row.update(
            {
                f"threshold_{profile}": r.threshold if np.isfinite(r.threshold) else None
                for profile, r in results.items()
            }
        )
        if vus:
            row["vus_pr"] = mean_vus_pr(scores, corpus)
        summary[name] = row
    return summary


def subset(corpus: NabCorpus, files: Sequence[str]) -> NabCorpus:
    """The corpus restricted to ``files`` (for partial runs)."""
    return dataclasses.replace(corpus, files={rel: corpus.files[rel] for rel in files})


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a temporary name, then rename)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
