"""The initial-state study: does a learned (or otherwise chosen) start beat zeros?

Every setting runs several seeds and compares each strategy with zeros on the same seeds
(:func:`paired_comparison`):

- a synthetic task where the start should matter (:func:`train_synthetic`): short windows cut
  from several continuous processes, each with its own typical level at window start; a variant
  whose context is a summary of the long history before each window (``SyntheticTask.history``),
  and :func:`h0.fit_initial_state` (a zeros-trained network started at its mean carry);
- the anomaly detector on the dev benchmark (GutenTAG + aeon dev split, :func:`dev_job`): the
  dense score's AUC-PR and VUS-PR for windows of 8, 16 and 32 points and each start;
- fleets of related NAB series (:func:`fleet_job`): one model for the whole fleet with zeros, a
  shared learned state or one learned state per series, against one model per series;
- NAB with the anomaly detector's encoder started by each strategy (:func:`nab_study`).

:func:`run_jobs` runs the jobs in a process pool and logs each one as it finishes (so an
interrupted study resumes); :func:`render_report` writes the report and ``effects.png``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

import h0

#: Strategies compared in the synthetic study (zeros is the reference).
SYNTHETIC_STRATEGIES = (
    "zeros",
    "random",
    "learned",
    "learned_noisy",
    "warmup",
    "per_sequence",
    "conditional",
)


@dataclasses.dataclass(frozen=True)
class SyntheticTask:
    """Windows cut at the same phase from ``num_series`` continuous processes.

    Series ``k`` sits near level ``mu_k = 2 + spread * u_k`` when a window starts and then drifts
    by small known increments. Each step the model sees the increment (exact) and the position
    (with heavy noise), and must output the true position. The level at the start is the only
    thing that cannot be read off the current input: a zero carry must average noisy positions
    first, a learned carry can hold the typical level, a per-sequence carry the series' own
    level, a conditional carry can read it off the series' context features, and a warm-up can
    average the first noisy observations before outputs count.

    Attributes:
        num_series: Number of processes (sequence ids ``0 .. num_series - 1``).
        window: Steps per window.
        spread: Spread of the series' levels around 2.
        start_noise: Window-to-window jitter of the level within a series.
        obs_noise: Noise of the observed position.
        warmup: Burn-in steps of the ``warmup`` strategy; the loss of every strategy is measured on
            steps ``warmup ..`` so that all are judged on the same outputs.
        history: ``0``: the context is metadata about the series (its level, slightly noisy).
            ``H > 0``: each window follows ``H`` unseen steps of the same process (which start at
            the series' level and drift), and the context is a summary of that history: the mean
            noisy position over all ``H`` steps and over the last 8. The series' level is then a
            worse guess of the start (the history drifted away from it) and the context a better
            one.
    """

    num_series: int = 8
    window: int = 16
    spread: float = 1.0
    start_noise: float = 0.05
    obs_noise: float = 1.0
    warmup: int = 4
    history: int = 0

    def levels(self) -> jax.Array:
        """The series' typical start levels, fixed for the task."""
        return 2.0 + self.spread * jnp.linspace(-1.0, 1.0, self.num_series)

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        """``n`` windows: inputs ``[n, window, 2]``, targets ``[n, window, 1]``, ids, context."""
        if self.history:
            return self._sample_after_history(key, n)
        k_id, k_start, k_inc, k_obs, k_ctx = jax.random.split(key, 5)
        ids = jax.random.randint(k_id, (n,), 0, self.num_series)
        start = self.levels()[ids] + self.start_noise * jax.random.normal(k_start, (n,))
        increments = 0.1 * jax.random.normal(k_inc, (n, self.window))
        position = start[:, None] + jnp.cumsum(increments, axis=1)
        observed = position + self.obs_noise * jax.random.normal(k_obs, position.shape)
        # Context: a noisy summary of the series' level, as metadata about a sensor would be.
        context = (self.levels()[ids] + 0.05 * jax.random.normal(k_ctx, (n,)))[:, None]
        return {
            "x": jnp.stack([increments, observed], axis=-1),
            "y": position[..., None],
            "ids": ids,
            "context": context,
        }

    def _sample_after_history(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        k_id, k_start, k_inc, k_obs = jax.random.split(key, 4)
        h, total = self.history, self.history + self.window
        ids = jax.random.randint(k_id, (n,), 0, self.num_series)
        start = self.levels()[ids] + self.start_noise * jax.random.normal(k_start, (n,))
        increments = 0.1 * jax.random.normal(k_inc, (n, total))
        position = start[:, None] + jnp.cumsum(increments, axis=1)
        observed = position + self.obs_noise * jax.random.normal(k_obs, position.shape)
        recent = min(8, h)
        context = jnp.stack(
            [observed[:, :h].mean(axis=1), observed[:, h - recent : h].mean(axis=1)], axis=-1
        )
        return {
            "x": jnp.stack([increments[:, h:], observed[:, h:]], axis=-1),
            "y": position[:, h:, None],
            "ids": ids,
            "context": context,
        }


def _strategy(name: str, task: SyntheticTask) -> h0.InitialState:
    """The h0 strategy called ``name`` (see :func:`h0.strategy_from_name`) for the synthetic task."""
    return h0.strategy_from_name(
        name,
        num_sequences=task.num_series,
        warmup_steps=task.warmup,
        stddev=0.5 if name == "random" else 0.1,
        hidden_sizes=(16,),
    )


class _Model(nn.Module):
    strategy: h0.InitialState
    hidden: int = 16

    @nn.compact
    def __call__(self, batch: dict[str, jax.Array], deterministic: bool = True) -> jax.Array:
        rnn = h0.RNN(nn.GRUCell(self.hidden, parent=None), self.strategy)
        out = rnn(
            batch["x"], ids=batch["ids"], context=batch["context"], deterministic=deterministic
        )
        return nn.Dense(1)(out)


def train_synthetic(
    strategy: str,
    seed: int,
    *,
    task: SyntheticTask | None = None,
    steps: int = 400,
    batch_size: int = 64,
    learning_rate: float = 1e-2,
) -> float:
    """Train a GRU with ``strategy`` on the synthetic task; return the test MSE on steps ``warmup..``.

    ``strategy='fit_initial_state'`` trains with zeros, then starts the trained network at the
    mean carry it reaches on 1,024 training windows (:func:`h0.fit_initial_state` into a
    :class:`h0.Learned` state; the network is not retrained). ``'fit_initial_state_tuned'`` does
    that after half of the steps and trains the learned state and the network for the other half
    (a fresh Adam state), as one would use a data-statistics start to initialise a learned one.

    Example:
        >>> round(train_synthetic('learned', 0, steps=2), 1) > 0
        True
        >>> round(train_synthetic('fit_initial_state_tuned', 0, steps=2), 1) > 0
        True
    """
    task = task or SyntheticTask()
    fitted = strategy in ("fit_initial_state", "fit_initial_state_tuned")
    fitted_at = steps // 2 if strategy == "fit_initial_state_tuned" else steps
    if fitted:
        strategy = "zeros"
    model = _Model(_strategy(strategy, task))
    key_init, key_data, key_test, key_noise = jax.random.split(jax.random.key(seed), 4)
    test = task.sample(key_test, 1024)
    rngs = {"params": key_init, "carry": key_noise}
    params = model.init(rngs, jax.tree.map(lambda a: a[:2], test))["params"]
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)
    drop = 0 if strategy == "warmup" else task.warmup  # warm-up outputs already start there

    def mse(model, params, batch, key, deterministic):
        out = model.apply(
            {"params": params}, batch, deterministic=deterministic, rngs={"carry": key}
        )
        return jnp.mean((out[:, drop:] - batch["y"][:, task.warmup :]) ** 2)

    def make_step(model):
        @jax.jit
        def step(params, opt_state, key):
            k_data, k_noise = jax.random.split(key)
            batch = task.sample(k_data, batch_size)

            # Training loss on every output the model gives (warm-up gives fewer).
            def loss_fn(p):
                out = model.apply(
                    {"params": p}, batch, deterministic=False, rngs={"carry": k_noise}
                )
                return jnp.mean((out - batch["y"][:, batch["y"].shape[1] - out.shape[1] :]) ** 2)

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        return step

    step = make_step(model)
    keys = jax.random.split(key_data, steps)
    for key in keys[:fitted_at]:
        params, opt_state, _ = step(params, opt_state, key)
    if fitted:
        model, params = _fitted_start(params, task, jax.random.fold_in(key_data, steps))
        opt_state, step = optimizer.init(params), make_step(model)
        for key in keys[fitted_at:]:
            params, opt_state, _ = step(params, opt_state, key)
    return float(mse(model, params, test, jax.random.key(seed + 10_000), True))


def _fitted_start(params: dict, task: SyntheticTask, key: jax.Array) -> tuple[_Model, dict]:
    """A Learned-start model with ``params`` and ``init_h`` = the mean carry on training windows."""
    rnn = h0.RNN(nn.GRUCell(16), h0.Learned())
    cell = params["RNN_0"]["cell"]
    variables = {"params": {"cell": cell, "initial_state": {"init_h": jnp.zeros((16,))}}}
    fitted = h0.fit_initial_state(rnn, variables, task.sample(key, 1024)["x"])
    model = _Model(_strategy("learned", task))
    return model, {**params, "strategy": dict(fitted["params"]["initial_state"])}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One strategy against zeros over paired seeds (lower is better for losses)."""

    strategy: str
    mean: float
    std: float
    diff_mean: float
    ci_low: float
    ci_high: float
    p_value: float
    wins: int
    n: int


def paired_comparison(
    results: dict[str, Sequence[float]], reference: str = "zeros", *, higher_is_better: bool = False
) -> list[Comparison]:
    """Mean +- std per strategy, and the paired difference to ``reference`` with a 95% t-interval.

    Args:
        results: ``{strategy: [metric per seed]}``, seeds in the same order for every strategy.
        reference: The strategy everything is compared against.
        higher_is_better: ``True`` for scores (NAB, VUS-PR), ``False`` for losses. ``wins`` counts
            the seeds where the strategy did better than the reference.

    Returns:
        One :class:`Comparison` per strategy (the reference included, with a zero difference).

    Example:
        >>> rows = paired_comparison({'zeros': [1.0, 2.0, 3.0], 'learned': [0.5, 1.5, 2.0]})
        >>> [(r.strategy, round(r.diff_mean, 3), r.wins) for r in rows]
        [('zeros', 0.0, 0), ('learned', -0.667, 3)]
    """
    ref = np.asarray(results[reference], float)
    rows = []
    for name, values in results.items():
        v = np.asarray(values, float)
        if v.shape != ref.shape:
            raise ValueError(
                f"{name} has {v.size} seeds but {reference} has {ref.size}; pair them."
            )
        d = v - ref
        n = d.size
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        if n > 1 and sd > 0:
            half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
            p = float(stats.ttest_rel(v, ref).pvalue)
        else:
            half, p = (0.0, 1.0) if n > 1 else (math.nan, math.nan)
        better = d > 0 if higher_is_better else d < 0
        rows.append(
            Comparison(
                strategy=name,
                mean=float(v.mean()),
                std=float(v.std(ddof=1)) if n > 1 else math.nan,
                diff_mean=float(d.mean()),
                ci_low=float(d.mean()) - half,
                ci_high=float(d.mean()) + half,
                p_value=p,
                wins=int(better.sum()),
                n=n,
            )
        )
    return rows


def synthetic_study(
    strategies: Sequence[str] = SYNTHETIC_STRATEGIES,
    seeds: Sequence[int] = range(5),
    *,
    steps: int = 400,
    task: SyntheticTask | None = None,
    progress: Callable[[str, int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Test MSE of each strategy for each seed on the synthetic task."""
    results: dict[str, list[float]] = {name: [] for name in strategies}
    for name in strategies:
        for seed in seeds:
            loss = train_synthetic(name, seed, steps=steps, task=task)
            results[name].append(loss)
            if progress is not None:
                progress(name, seed, loss)
    return results


def markdown_table(rows: Sequence[Comparison], metric: str, *, higher_is_better: bool) -> str:
    """Render comparisons as a markdown table."""
    better = "higher" if higher_is_better else "lower"
    lines = [
        f"| strategy | {metric} (mean ± std) | difference vs zeros | 95% CI | paired t-test p | seeds better ({better}) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.strategy == "zeros":
            lines.append(f"| zeros | {r.mean:.4g} ± {r.std:.2g} | — | — | — | — |")
            continue
        lines.append(
            f"| {r.strategy} | {r.mean:.4g} ± {r.std:.2g} | {r.diff_mean:+.4g} | "
            f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}] | {r.p_value:.3g} | {r.wins}/{r.n} |"
        )
    return "\n".join(lines)


def plot_study(
    results: dict[str, Sequence[float]], path: Any, *, metric: str, title: str, log: bool = False
) -> None:
    """Dot plot of every seed per strategy, with the mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    for i, name in enumerate(names):
        v = np.asarray(results[name], float)
        jitter = np.linspace(-0.12, 0.12, v.size)
        color = "#888888" if name == "zeros" else "#1f77b4"
        ax.scatter(np.full(v.size, i) + jitter, v, s=18, color=color, alpha=0.8, zorder=3)
        ax.hlines(v.mean(), i - 0.3, i + 0.3, color="#d62728", lw=2, zorder=4)
    ref = float(np.mean(results["zeros"])) if "zeros" in results else None
    if ref is not None:
        ax.axhline(ref, color="#888888", ls="--", lw=1, label="zeros (mean)")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel(metric)
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def nab_study(
    nab_root: Any,
    strategies: Sequence[str],
    seeds: Sequence[int],
    *,
    epochs: int | None = None,
    workers: int = 2,
    progress: Callable[[str, int, float, float], None] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """NAB standard score and mean VUS-PR of h0's detector per encoder strategy and seed.

    Returns:
        ``{'nab_standard': {strategy: [per seed]}, 'vus_pr': {strategy: [per seed]}}``.
    """
    from h0.evaluate import _run
    from h0.evaluate._nab import NabResults, load_corpus, score_corpus

    corpus = load_corpus(nab_root)
    options = {} if epochs is None else {"epochs": epochs}
    out: dict[str, dict[str, list[float]]] = {"nab_standard": {}, "vus_pr": {}}
    for name in strategies:
        for seed in seeds:
            scorer = _run.H0GRUScorer(name, seed, options=tuple(sorted(options.items())))
            variants = _run.run_corpus(scorer, corpus, workers=workers)
            scores = variants["nab"]
            nab = score_corpus(NabResults("h0-gru", scores), corpus, profiles=["standard"])
            standard = nab["standard"].score
            vus = _run.mean_vus_pr(variants["dense"], corpus)
            out["nab_standard"].setdefault(name, []).append(standard)
            out["vus_pr"].setdefault(name, []).append(vus)
            if progress is not None:
                progress(name, seed, standard, vus)
    return out


# ------------------------------------------------------------------------------------------------
# The detector on the dev benchmark, fleets, and the job runner
# ------------------------------------------------------------------------------------------------


def dev_datasets(root: Any = None) -> list[str]:
    """Names of the labelled dev-split series of the GutenTAG and aeon families.

    GutenTAG's twins ``-a`` and aeon's KDD-135 (Daphnet's excerpt has no labels, so no AUC-PR).
    """
    from h0.evaluate import _devdata

    refs = _devdata.datasets("dev", families=["gutentag", "aeon"], root=root)
    return [r.name for r in refs if "daphnet" not in r.name]


def _detector_options(spec: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"initial_state": spec["strategy"], "seed": spec["seed"]}
    if spec.get("window") is not None:
        options["window"] = spec["window"]
    if spec.get("epochs") is not None:
        options["epochs"] = spec["epochs"]
    return options


def dev_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One dev-benchmark run: ``spec`` has dataset, window, strategy, seed, epochs (and root).

    Returns the dense score's AUC-PR and VUS-PR (buffers 0..20), the detector's point and event
    F1 and the fit time, measured by :func:`h0.evaluate._bench.evaluate`.
    """
    from h0.evaluate import _bench, _devdata

    refs = [
        r
        for r in _devdata.datasets("dev", families=["gutentag", "aeon"], root=spec.get("root"))
        if r.name == spec["dataset"]
    ]
    if not refs:
        raise ValueError(f"no dev dataset {spec['dataset']!r} (run `h0 bench prepare`)")
    ds = refs[0].load()
    options = {k: v for k, v in _detector_options(spec).items() if k != "seed"}
    detector = _bench.make_detector("h0", spec["seed"], h0_options=options)
    row = _bench.evaluate(ds, detector)
    return {k: row[k] for k in ("auc_pr", "vus_pr", "point_f1", "event_f1", "fit_s")}


def fleet_series(nab_root: Any, group: str) -> list[str]:
    """The NAB series of one folder (e.g. ``'realTweets'``), sorted."""
    from h0.evaluate._nab import load_corpus

    return sorted(rel for rel in load_corpus(nab_root).files if rel.startswith(group + "/"))


def fleet_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One fleet run: the NAB folder ``spec['group']`` trained on each probationary part.

    ``spec['mode']`` is ``'fleet'`` (one detector fitted on all series' probationary parts, each
    test part scored as the continuation of its own series; the detector standardises with the
    pooled mean and scale), ``'fleet-std'`` (the same, each series first standardised by its own
    probationary mean and scale) or ``'separate'`` (one detector per series). Returns the mean AUC-PR and VUS-PR of the dense score after the probation (series
    with a window) and NAB's standard score of the NAB-shaped score over the folder.
    """
    from h0.anomaly import GRUAutoencoderDetector
    from h0.anomaly._alarms import NAB_SHAPING, nab_shape
    from h0.evaluate import _metrics as metrics
    from h0.evaluate import _run
    from h0.evaluate._nab import NabResults, load_corpus, probation_length, score_corpus

    corpus = load_corpus(spec["nab_root"])
    files = fleet_series(spec["nab_root"], spec["group"])
    values = [_run.read_values(corpus, rel) for rel in files]
    ends = [probation_length(len(v)) for v in values]
    options = _detector_options(spec)
    full = []
    if spec["mode"] in ("fleet", "fleet-std"):
        inputs = values
        if spec["mode"] == "fleet-std":  # each series standardised by its own probation
            inputs = [
                (v - v[:n].mean(0)) / np.where(v[:n].std(0) > 0, v[:n].std(0), 1.0)
                for v, n in zip(values, ends, strict=True)
            ]
        det = GRUAutoencoderDetector(**options).fit(
            [v[:n] for v, n in zip(inputs, ends, strict=True)]
        )
        scored = det.score_many([v[n:] for v, n in zip(inputs, ends, strict=True)])
        full = [
            np.concatenate([det.series_decision_scores_[i], s]) for i, (s, _) in enumerate(scored)
        ]
    elif spec["mode"] == "separate":
        for v, n in zip(values, ends, strict=True):
            det = GRUAutoencoderDetector(**options).fit(v[:n])
            full.append(np.concatenate([det.decision_scores_, det.score(v[n:])]))
    else:
        raise ValueError(
            f"fleet mode must be 'fleet', 'fleet-std' or 'separate'; got {spec['mode']!r}"
        )
    auc, vus = [], []
    for rel, s, n in zip(files, full, ends, strict=True):
        labels = np.zeros(len(s), np.int8)
        for a, b in corpus.files[rel].windows:
            labels[a : b + 1] = 1
        y, x = labels[n:], s[n:]
        if y.any() and not y.all():
            auc.append(metrics.auc_pr(y, x))
            vus.append(metrics.vus_pr(y, x, max_buffer=20))
    shaped = {
        rel: nab_shape(s, v, **NAB_SHAPING) for rel, s, v in zip(files, full, values, strict=True)
    }
    sub = _run.subset(corpus, files)
    nab = score_corpus(NabResults("h0", shaped), sub, profiles=["standard"])["standard"].score
    return {
        "auc_pr": float(np.mean(auc)),
        "vus_pr": float(np.mean(vus)),
        "nab_standard": float(nab),
        "series": len(files),
    }


def synthetic_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One synthetic run: ``spec`` has strategy, seed, steps and the task's ``history``."""
    task = SyntheticTask(history=spec.get("history", 0))
    return {"mse": train_synthetic(spec["strategy"], spec["seed"], steps=spec["steps"], task=task)}


def nab_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Every NAB series alone (one process): NAB standard and mean VUS-PR for one start and seed."""
    out = nab_study(
        spec["nab_root"], [spec["strategy"]], [spec["seed"]], epochs=spec.get("epochs"), workers=1
    )
    return {
        "nab_standard": out["nab_standard"][spec["strategy"]][0],
        "vus_pr": out["vus_pr"][spec["strategy"]][0],
    }


_JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "nab": nab_job,
    "synthetic": synthetic_job,
    "dev": dev_job,
    "fleet": fleet_job,
}


def _job_key(spec: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in spec.items() if k != "root"}, sort_keys=True, default=str)


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job (``spec['part']`` picks the kind) and return ``spec`` with its results."""
    import time

    started = time.perf_counter()
    result = _JOBS[spec["part"]](spec)
    return {**spec, **result, "seconds": round(time.perf_counter() - started, 2)}


def study_jobs(
    *,
    seeds: Sequence[int],
    steps: int = 400,
    synthetic: bool = True,
    history: int = 64,
    dev_bench: bool = False,
    windows: Sequence[int] = (8, 16, 32),
    dev_strategies: Sequence[str] = ("zeros", "learned"),
    warmup_windows: Sequence[int] = (32,),
    fleets: Sequence[str] = (),
    nab_root: Any = None,
    epochs: int | None = None,
    dev_root: Any = None,
    synthetic_seeds: Sequence[int] | None = None,
    nab_strategies: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The study's jobs, in the order they should run (whole seeds first, the extras last).

    The extras (warm-up windows, synthetic seeds beyond ``seeds``) come last, so that a study cut
    short still has every main setting on whole seeds.

    Example:
        >>> jobs = study_jobs(seeds=[0, 1], synthetic=False, dev_bench=True, windows=[8],
        ...                   warmup_windows=[], dev_root='/nonexistent')
        >>> jobs
        []
    """
    jobs: list[dict[str, Any]] = []
    history_strategies = (
        "zeros",
        "learned",
        "warmup",
        "per_sequence",
        "conditional",
        "fit_initial_state",
        "fit_initial_state_tuned",
    )

    def synthetic_jobs(seed: int) -> list[dict[str, Any]]:
        one = [
            {"part": "synthetic", "strategy": n, "seed": seed, "steps": steps, "history": 0}
            for n in (*SYNTHETIC_STRATEGIES, "fit_initial_state", "fit_initial_state_tuned")
        ]
        if history:
            one += [
                {
                    "part": "synthetic",
                    "strategy": n,
                    "seed": seed,
                    "steps": steps,
                    "history": history,
                }
                for n in history_strategies
            ]
        return one

    synthetic_seeds = list(seeds if synthetic_seeds is None else synthetic_seeds)
    names = dev_datasets(dev_root) if dev_bench else []
    extras = []
    for seed in seeds:
        for window in windows if dev_bench else ():
            for name in dev_strategies:
                for ds in names:
                    jobs.append(
                        {
                            "part": "dev",
                            "dataset": ds,
                            "window": window,
                            "strategy": name,
                            "seed": seed,
                            "epochs": epochs,
                            "root": dev_root,
                        }
                    )
            if window in warmup_windows and "warmup" not in dev_strategies:
                extras += [
                    {
                        "part": "dev",
                        "dataset": ds,
                        "window": window,
                        "strategy": "warmup",
                        "seed": seed,
                        "epochs": epochs,
                        "root": dev_root,
                    }
                    for ds in names
                ]
        for group in fleets:
            for mode, name in FLEET_SETTINGS:
                jobs.append(
                    {
                        "part": "fleet",
                        "group": group,
                        "mode": mode,
                        "strategy": name,
                        "seed": seed,
                        "epochs": epochs,
                        "nab_root": str(nab_root),
                    }
                )
        if synthetic and seed in synthetic_seeds:
            jobs += synthetic_jobs(seed)
    if synthetic:
        extras += [j for seed in synthetic_seeds if seed not in seeds for j in synthetic_jobs(seed)]
    extras += [
        {"part": "nab", "strategy": name, "seed": seed, "epochs": epochs, "nab_root": str(nab_root)}
        for seed in seeds
        for name in nab_strategies
    ]
    return jobs + extras


#: ``(mode, initial_state)`` of the fleet part. Starts are compared with zeros in the same mode;
#: the modes with each other at zeros.
FLEET_SETTINGS = (
    ("fleet", "zeros"),
    ("fleet", "learned"),
    ("fleet", "per_sequence"),
    ("separate", "zeros"),
    ("separate", "learned"),
    ("fleet-std", "zeros"),
    ("fleet-std", "learned"),
    ("fleet-std", "per_sequence"),
)


def run_jobs(
    jobs: Sequence[dict[str, Any]],
    log_path: Any,
    *,
    workers: int = 2,
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``jobs`` in a process pool, appending each result to ``log_path`` (JSON lines).

    Jobs whose result is already in ``log_path`` are not rerun, so an interrupted study resumes.

    Returns:
        Every result in ``log_path`` that belongs to ``jobs``, in job order.
    """
    import concurrent.futures as futures
    import json
    import multiprocessing
    from pathlib import Path

    from h0.evaluate._run import _init_worker

    log_path = Path(log_path)
    done: dict[str, dict[str, Any]] = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[_job_key(row["spec"])] = row
    todo = [j for j in jobs if _job_key(j) not in done]
    total, count = len(jobs), len(jobs) - len(todo)

    def record(spec: dict[str, Any], row: dict[str, Any], handle: Any) -> None:
        nonlocal count
        entry = {"spec": {k: v for k, v in spec.items() if k != "root"}, "result": row}
        handle.write(json.dumps(entry, default=str) + "\n")
        handle.flush()
        done[_job_key(spec)] = entry
        count += 1
        if progress is not None:
            progress(row, count, total)

    with log_path.open("a") as handle:
        if workers <= 1:
            for spec in todo:
                record(spec, run_job(spec), handle)
        elif todo:
            context = multiprocessing.get_context("spawn")
            with futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker
            ) as pool:
                pending = {pool.submit(run_job, spec): spec for spec in todo}
                for fut in futures.as_completed(pending):
                    record(pending[fut], fut.result(), handle)
    return [done[_job_key(j)]["result"] for j in jobs if _job_key(j) in done]


# ------------------------------------------------------------------------------------------------
# Aggregation: one paired comparison per setting
# ------------------------------------------------------------------------------------------------


def _paired(
    rows: Sequence[dict[str, Any]], unit: str, metric: str, arm: Callable[[dict], str]
) -> dict[str, list[float]]:
    """``{arm: [metric per seed]}``: each seed's mean over the units every arm has for that seed."""
    arms = list(dict.fromkeys(arm(r) for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    out: dict[str, list[float]] = {a: [] for a in arms}
    for seed in seeds:
        mine = [r for r in rows if r["seed"] == seed and r.get(metric) is not None]
        units = None
        for a in arms:
            have = {r.get(unit) for r in mine if arm(r) == a}
            units = have if units is None else units & have
        if not units:
            continue
        for a in arms:
            vals = [r[metric] for r in mine if arm(r) == a and r.get(unit) in units]
            out[a].append(float(np.mean(vals)))
    return out


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every setting's paired comparison against its zeros reference, as flat rows.

    Each row: part, setting, strategy, metric, higher_is_better, and the :class:`Comparison`
    fields (the reference itself is left out).
    """
    effects = []

    def add(part, setting, rows, unit, metric, arm, higher, reference="zeros"):
        # Each strategy paired with the reference on the seeds (and units) both have.
        for name in dict.fromkeys(arm(r) for r in rows):
            if name == reference:
                continue
            pair = [r for r in rows if arm(r) in (name, reference)]
            results = _paired(pair, unit, metric, arm)
            if reference not in results or name not in results or len(results[name]) < 2:
                continue
            c = paired_comparison(
                {reference: results[reference], name: results[name]},
                reference,
                higher_is_better=higher,
            )[1]
            effects.append(
                {
                    "part": part,
                    "setting": setting,
                    "metric": metric,
                    "higher_is_better": higher,
                    "reference": reference,
                    "reference_mean": float(np.mean(results[reference])),
                    **dataclasses.asdict(c),
                }
            )

    by_strategy = lambda r: r["strategy"]
    synthetic = [r for r in runs if r["part"] == "synthetic"]
    for history in sorted({r["history"] for r in synthetic}):
        rows = [r for r in synthetic if r["history"] == history]
        setting = "level metadata" if history == 0 else f"history summary (H={history})"
        add("synthetic", setting, rows, "part", "mse", by_strategy, False)
    dev = [r for r in runs if r["part"] == "dev"]
    for window in sorted({r["window"] for r in dev}):
        rows = [r for r in dev if r["window"] == window]
        for metric in ("auc_pr", "vus_pr"):
            add("dev", f"window {window}", rows, "dataset", metric, by_strategy, True)
    nab = [r for r in runs if r["part"] == "nab"]
    for metric in ("nab_standard", "vus_pr"):
        add("nab", "58 series alone", nab, "part", metric, by_strategy, True)
    fleet = [r for r in runs if r["part"] == "fleet"]
    for group in sorted({r["group"] for r in fleet}):
        rows = [r for r in fleet if r["group"] == group]
        for metric in ("auc_pr", "vus_pr", "nab_standard"):
            # The start within each mode, then one model vs one per series (zeros starts).
            for mode in dict.fromkeys(r["mode"] for r in rows):
                add(
                    "fleet",
                    f"{group}, {mode}",
                    [r for r in rows if r["mode"] == mode],
                    "group",
                    metric,
                    by_strategy,
                    True,
                )
            add(
                "fleet",
                f"{group}, model",
                [r for r in rows if r["strategy"] == "zeros"],
                "group",
                metric,
                lambda r: f"{r['mode']} zeros",
                True,
                reference="fleet zeros",
            )
    return effects


def verdict(effect: dict[str, Any]) -> str:
    """``'better'``/``'worse'`` when the 95% interval excludes 0, else ``'no difference'``."""
    lo, hi = effect["ci_low"], effect["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 <= hi:
        return "no difference"
    improves = (lo > 0) == effect["higher_is_better"]
    return "better" if improves else "worse"


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------

_METRIC_TITLES = {
    "mse": "test MSE",
    "auc_pr": "AUC-PR",
    "vus_pr": "VUS-PR",
    "nab_standard": "NAB standard",
}


def effects_table(effects: Sequence[dict[str, Any]]) -> str:
    """Markdown table of every effect: setting, strategy, metric, zeros, difference, 95% CI."""
    lines = [
        "| part | setting | strategy | metric | reference | strategy (mean ± std) | difference "
        "vs reference | 95% CI | p | seeds better | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in effects:
        rel = ""
        if e["part"] == "synthetic" and e["reference_mean"]:
            rel = f" ({100 * e['diff_mean'] / e['reference_mean']:+.1f}%)"
        lines.append(
            f"| {e['part']} | {e['setting']} | {e['strategy']} | {_METRIC_TITLES[e['metric']]} | "
            f"{e['reference']} {e['reference_mean']:.4g} | {e['mean']:.4g} ± {e['std']:.2g} | "
            f"{e['diff_mean']:+.4g}{rel} | [{e['ci_low']:+.3g}, {e['ci_high']:+.3g}] | "
            f"{e['p_value']:.2g} | {e['wins']}/{e['n']} | {verdict(e)} |"
        )
    return "\n".join(lines)


def _effect_phrase(e: dict[str, Any]) -> str:
    rel = ""
    if e["part"] == "synthetic" and e["reference_mean"]:
        rel = f" ({100 * e['diff_mean'] / e['reference_mean']:+.1f}%)"
    return (
        f"{e['part']}, {e['setting']}: **{e['strategy']}** {_METRIC_TITLES[e['metric']]} "
        f"{e['diff_mean']:+.3g}{rel} [{e['ci_low']:+.3g}, {e['ci_high']:+.3g}], "
        f"{e['wins']}/{e['n']} seeds"
    )


def findings(effects: Sequence[dict[str, Any]]) -> str:
    """The effects grouped by :func:`verdict`: where the start helps, hurts, and null results."""
    groups = {"better": [], "worse": [], "no difference": []}
    for e in effects:
        groups[verdict(e)].append(_effect_phrase(e))
    titles = {
        "better": "Where a start measurably beats the reference (95% interval above 0)",
        "worse": "Where it is measurably worse",
        "no difference": "Null results: no difference the interval can resolve",
    }
    lines = ["## Where the start matters, and where it does not", ""]
    for key, title in titles.items():
        lines += [f"**{title}** ({len(groups[key])}):", ""]
        lines += [f"- {g}" for g in groups[key]] or ["- none"]
        lines.append("")
    return "\n".join(lines).rstrip()


def plot_effects(effects: Sequence[dict[str, Any]], path: Any) -> None:
    """One panel per part: each strategy's improvement over its reference with its 95% interval.

    Improvement is signed so that right is better everywhere: the synthetic task's drop in test
    MSE in percent of zeros', the detector's gain in AUC-PR and VUS-PR (absolute).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "synthetic": lambda e: e["part"] == "synthetic",
        "dev": lambda e: e["part"] == "dev",
        "fleet": lambda e: e["part"] in ("fleet", "nab") and e["metric"] != "nab_standard",
        "nab_standard": lambda e: e["metric"] == "nab_standard",
    }
    titles = {
        "synthetic": "synthetic task: drop in test MSE\n(% of zeros' MSE)",
        "dev": "detector, dev benchmark (12 series):\ngain in AUC-PR / VUS-PR vs zeros",
        "fleet": "detector on NAB: gain in AUC-PR / VUS-PR\n(fleets: vs zeros in the same mode)",
        "nab_standard": "detector on NAB: gain in NAB standard\nscore (points)",
    }
    colors = {"mse": "#444444", "auc_pr": "#1f77b4", "vus_pr": "#ff7f0e", "nab_standard": "#2ca02c"}
    chosen = {k: [e for e in effects if f(e)] for k, f in panels.items()}
    parts = [k for k, v in chosen.items() if v]
    if not parts:
        return
    heights = [len({(e["setting"], e["strategy"]) for e in chosen[p]}) for p in parts]
    cols = min(2, len(parts))
    rows = -(-len(parts) // cols)
    row_heights = [max(heights[r * cols : (r + 1) * cols]) for r in range(rows)]
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(7.2 * cols, 0.3 * sum(row_heights) + 1.6 * rows),
        dpi=110,
        squeeze=False,
        gridspec_kw={"height_ratios": [h + 3 for h in row_heights]},
    )
    for ax in axes.flat[len(parts) :]:
        ax.set_visible(False)
    for ax, part in zip(axes.flat, parts, strict=False):
        mine = chosen[part]
        labels = list(dict.fromkeys((e["setting"], e["strategy"]) for e in mine))
        metrics_here = list(dict.fromkeys(e["metric"] for e in mine))
        for j, metric in enumerate(metrics_here):
            offset = (j - (len(metrics_here) - 1) / 2) * 0.25
            for e in (e for e in mine if e["metric"] == metric):
                i = labels.index((e["setting"], e["strategy"]))
                sign = 1 if e["higher_is_better"] else -1
                scale = 100 / e["reference_mean"] if part == "synthetic" else 1
                mid = sign * e["diff_mean"] * scale
                lo, hi = sorted((sign * e["ci_low"] * scale, sign * e["ci_high"] * scale))
                resolved = verdict(e) != "no difference"
                ax.errorbar(
                    mid,
                    i + offset,
                    xerr=[[mid - lo], [hi - mid]],
                    fmt="o",
                    ms=5,
                    capsize=3,
                    color=colors[metric],
                    markerfacecolor=colors[metric] if resolved else "white",
                    label=_METRIC_TITLES[metric],
                )
        ax.axvline(0, color="#888888", lw=1, ls="--")
        ax.set_yticks(range(len(labels)), [f"{s}: {n}" for s, n in labels], fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_title(titles[part], fontsize=9)
        ax.set_xlabel("better →   (95% interval over seeds)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        if part == "synthetic":
            ax.set_xscale("symlog", linthresh=10)
            ticks = [-100, -30, -10, 0, 10, 30, 100]
            ax.set_xticks(ticks, [f"{t:+d}%" if t else "0" for t in ticks])
        if len(metrics_here) > 1:
            handles, names = ax.get_legend_handles_labels()
            keep = dict(zip(names, handles, strict=True))
            ax.legend(keep.values(), keep.keys(), fontsize=7, loc="best")
    fig.suptitle(
        "Effect of the initial state vs its reference (paired over seeds). Filled: the 95% "
        "interval excludes 0; hollow: no resolvable effect",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_study(
    *,
    out: Any,
    seeds: Sequence[int],
    steps: int = 400,
    nab_root: Any = None,
    nab_strategies: Sequence[str] = ("zeros", "random", "learned", "learned_noisy", "warmup"),
    epochs: int | None = None,
    workers: int = 2,
    synthetic: bool = True,
    history: int = 64,
    dev_bench: bool = False,
    windows: Sequence[int] = (8, 16, 32),
    dev_strategies: Sequence[str] = ("zeros", "learned"),
    warmup_windows: Sequence[int] = (32,),
    fleets: Sequence[str] = (),
    nab_full: bool = False,
    dev_root: Any = None,
    synthetic_seeds: Sequence[int] | None = None,
    command: str = "",
    log: Callable[[str], None] | None = None,
) -> str:
    """Run the study, write ``study.json``, ``runs.jsonl``, ``README.md`` and plots into ``out``.

    The jobs (synthetic, ``dev_bench``, ``fleets``) run in a pool of ``workers`` processes and are
    logged to ``out/runs.jsonl`` as they finish; a rerun skips the jobs already logged. With
    ``nab_full`` the whole NAB corpus is also run per strategy in ``nab_strategies`` (slow).

    Returns:
        The report (``README.md``'s text).
    """
    import json
    import time
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    log = log or (lambda m: print(m, flush=True))
    if (fleets or nab_full) and nab_root is None:
        raise ValueError("fleets and the full NAB part need nab_root")
    jobs = study_jobs(
        seeds=seeds,
        steps=steps,
        synthetic=synthetic,
        history=history,
        dev_bench=dev_bench,
        windows=windows,
        dev_strategies=dev_strategies,
        warmup_windows=warmup_windows,
        fleets=fleets,
        nab_root=nab_root,
        epochs=epochs,
        dev_root=dev_root,
        synthetic_seeds=synthetic_seeds,
        nab_strategies=nab_strategies if nab_full else (),
    )
    started = time.perf_counter()

    def progress(row: dict[str, Any], i: int, n: int) -> None:
        what = {k: row[k] for k in ("part", "strategy", "seed") if k in row}
        where = (
            row.get("dataset")
            or row.get("group")
            or (f"history {row['history']}" if row["part"] == "synthetic" else "all 58 series")
        )
        extra = f"window {row['window']}" if "window" in row else row.get("mode", "")
        got = {
            k: round(row[k], 4)
            for k in ("mse", "auc_pr", "vus_pr", "nab_standard")
            if row.get(k) is not None
        }
        log(f"[{i}/{n}] {what} {where} {extra}: {got} ({row['seconds']:.1f} s)")

    runs = run_jobs(jobs, out / "runs.jsonl", workers=workers, progress=progress)
    previous = out / "study.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    payload: dict[str, Any] = {
        "command": command,
        "seeds": seeds,
        "epochs": epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(sum(r["seconds"] for r in runs), 1),
        "runs": runs,
        "effects": aggregate(runs),
    }
    if "nab" in old:  # the earlier detector's NAB study, kept for reference
        payload["nab"] = old["nab"]
    tmp = previous.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(previous)
    return render_report(payload, out)


def render_report(payload: dict[str, Any], out: Any) -> str:
    """Write ``README.md``, ``effects.png`` and the per-part plots for a study payload.

    A hand-written ``out/notes.md`` (the reading of the numbers), if present, is placed after the
    generated findings.
    """
    import platform
    import time
    from pathlib import Path

    out = Path(out)
    runs = payload.get("runs", [])
    effects = payload.get("effects") or aggregate(runs)
    plot_effects(effects, out / "effects.png")
    command = payload.get("command") or "h0 study initial-state"
    sections = [
        "# Does the initial state matter? (h0's initial-state study)",
        "",
        f"Regenerate with `{command}` (here: {platform.machine()}, {len(jax.devices())} CPU "
        f"device(s), {time.strftime('%Y-%m-%d')}; {len(runs)} runs, "
        f"{payload.get('cpu_seconds', 0) / 60:.0f} min of run time summed over the runs, "
        "which ran in a pool of worker processes; an interrupted study resumes from "
        "`runs.jsonl`, so wall time is that of its invocations). Every run is in `study.json` "
        "(and `runs.jsonl`, written as the runs finish). Every strategy is compared with a "
        "reference on the same seeds (paired): the mean difference over seeds with a 95% "
        "t-interval, a paired t-test, and the number of seeds on which the strategy did "
        "better. *verdict* is *better*/*worse* when the interval excludes 0, else *no "
        "difference*. With 3 seeds the interval uses t(0.975, 2) = 4.30: it is wide, and a "
        "*no difference* means no effect larger than the interval, not proof of none.",
        "",
        "![effects](effects.png)",
        "",
        findings(effects),
        *(["", notes.read_text().strip()] if (notes := out / "notes.md").is_file() else []),
        "",
        "### Every comparison",
        "",
        effects_table(effects),
    ]
    synthetic = [r for r in runs if r["part"] == "synthetic"]
    if synthetic:
        task = SyntheticTask()
        doc = inspect.cleandoc(SyntheticTask.__doc__ or "").split("\n\n")
        histories = sorted({r["history"] for r in synthetic} - {0})
        sections += [
            "",
            "## (a) A synthetic task where the start should matter",
            "",
            doc[1].replace("\n", " "),
            "",
            f"GRU(16) + linear read-out, {synthetic[0]['steps']} Adam steps of 64 windows; test "
            f"MSE on 1024 windows, measured on steps {task.warmup}.. for every strategy (warm-up "
            f"burns in the first {task.warmup}). *fit_initial_state* trains with zeros, then "
            "starts the trained network at the mean carry it reaches on 1,024 training windows "
            "(`h0.fit_initial_state` into an `h0.Learned` state, no retraining).",
        ]
        if histories:
            sections += [
                "",
                f"*history summary (H={histories[0]})*: each window follows {histories[0]} "
                "unseen steps of the same process, which start at the series' level and drift; "
                "the conditional start reads a summary of that history (mean noisy position over "
                "all of it and over its last 8 steps). This is the long-history start the "
                "detector cannot offer (its windows carry no context).",
            ]
        by_seed = _paired(synthetic, "part", "mse", lambda r: f"{r['strategy']}@{r['history']}")
        plot_study(
            {k.split("@")[0]: v for k, v in by_seed.items() if k.endswith("@0")},
            out / "synthetic.png",
            metric="test MSE (log scale)",
            title=f"Synthetic task: windows cut from {task.num_series} processes; lower is better",
            log=True,
        )
        sections += ["", "![synthetic](synthetic.png)"]
    dev = [r for r in runs if r["part"] == "dev"]
    if dev:
        datasets = sorted({r["dataset"] for r in dev})
        sections += [
            "",
            "## (b) The detector on the dev benchmark: short windows",
            "",
            f"`GRUAutoencoderDetector` at its defaults except `window` and `initial_state`, "
            f"through `h0 bench`'s harness (`h0.evaluate._bench.evaluate`), on the "
            f"{len(datasets)} labelled dev series ({', '.join(d.split('/')[1] for d in datasets)})."
            " AUC-PR and VUS-PR (buffers 0..20) of the dense `score()` on each test part, averaged "
            "over the series per seed; each start is compared with zeros at the same window.",
            "",
            _dev_means_table(dev),
        ]
    fleet = [r for r in runs if r["part"] == "fleet"]
    if fleet:
        groups = sorted({r["group"] for r in fleet})
        sections += [
            "",
            "## (c) Fleets: related series trained as one model",
            "",
            "NAB folders "
            + ", ".join(f"{g} ({_first(fleet, g)['series']} series)" for g in groups)
            + ". *fleet* fits ONE detector on every series' probationary part "
            "(`fit([s1, s2, ...])`) and scores each test part as the continuation of its own "
            "series (`score_many`, i.e. `score(x, series=i)`); with `per_sequence` each series "
            "has its own learned start, with `learned` they share one. A fleet model "
            "standardises with the pooled mean and scale, so *fleet-std* first standardises each "
            "series by its own probationary mean and scale (what *separate* does inside each of "
            "its models). *separate* fits one detector per series. Each start is compared with "
            "zeros in the same mode (setting `<folder>, <mode>`); the modes are compared with "
            "each other at zeros (setting `<folder>, model`, reference *fleet zeros*). Metrics: "
            "mean AUC-PR and VUS-PR of the dense score after the probation, and NAB's standard "
            "score of the NAB-shaped score over the folder (threshold optimised over it).",
        ]
    if any(r["part"] == "nab" for r in runs):
        sections += [
            "",
            "## (d) NAB, every series alone",
            "",
            "The redesigned detector at its defaults on each of NAB's 58 series, trained alone on "
            "its probationary period (`h0.evaluate._run.H0GRUScorer`), one pass per start and "
            "seed: NAB's standard profile of the NAB-shaped score (threshold optimised over the "
            "corpus) and VUS-PR (buffers 0..20) of the dense score after the probation, averaged "
            "over the series with a window. Alone, a per-sequence state is a single learned one.",
        ]
    if "nab" in payload:
        nab = payload["nab"]
        sections += [
            "",
            "## (e) NAB with the detector before its redesign (kept for reference)",
            "",
            (
                "From the study before the detector's redesign: each of the 58 series trained "
                "alone, scored with every scoring stage on; its VUS-PR column was measured after "
                "the onset stage, which leaves it near chance for every strategy."
            ),
            "",
            markdown_table(
                paired_comparison(nab["nab_standard"], higher_is_better=True),
                "NAB standard",
                higher_is_better=True,
            ),
            "",
            markdown_table(
                paired_comparison(nab["vus_pr"], higher_is_better=True),
                "VUS-PR",
                higher_is_better=True,
            ),
        ]
        plot_study(
            nab["nab_standard"],
            out / "nab.png",
            metric="NAB standard score",
            title="NAB (58 series): h0's detector by encoder initial state; higher is better",
        )
        sections += ["", "![nab](nab.png)"]
    report = "\n".join(sections) + "\n"
    (out / "README.md").write_text(report)
    return report


def _first(rows: Sequence[dict[str, Any]], group: str) -> dict[str, Any]:
    return next(r for r in rows if r.get("group") == group)


def _dev_means_table(dev: Sequence[dict[str, Any]]) -> str:
    """Mean ± std over seeds of the series-averaged AUC-PR and VUS-PR per window and start."""
    lines = ["| window | start | AUC-PR | VUS-PR | event F1 | fit s |", "|---|---|---|---|---|---|"]
    for window in sorted({r["window"] for r in dev}):
        rows = [r for r in dev if r["window"] == window]
        cells = {
            m: _paired(rows, "dataset", m, lambda r: r["strategy"])
            for m in ("auc_pr", "vus_pr", "event_f1", "fit_s")
        }
        for name in cells["auc_pr"]:
            parts = []
            for m in ("auc_pr", "vus_pr", "event_f1", "fit_s"):
                v = np.asarray(cells[m].get(name, []), float)
                parts.append(f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else "—")
            lines.append(f"| {window} | {name} | " + " | ".join(parts) + " |")
    return "\n".join(lines)
