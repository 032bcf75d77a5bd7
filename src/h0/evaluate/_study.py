"""The initial-state study: does a learned (or otherwise chosen) start beat zeros?

Two settings, both with several seeds and a paired comparison against zeros:

- a synthetic task where the start should matter (:func:`synthetic_study`): short windows cut
  from several continuous processes, each with its own typical level at window start;
- NAB, with the anomaly detector's encoder started by each strategy (:func:`nab_study`).
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
    """

    num_series: int = 8
    window: int = 16
    spread: float = 1.0
    start_noise: float = 0.05
    obs_noise: float = 1.0
    warmup: int = 4

    def levels(self) -> jax.Array:
        """The series' typical start levels, fixed for the task."""
        return 2.0 + self.spread * jnp.linspace(-1.0, 1.0, self.num_series)

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        """``n`` windows: inputs ``[n, window, 2]``, targets ``[n, window, 1]``, ids, context."""
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

    Example:
        >>> round(train_synthetic('learned', 0, steps=2), 1) > 0
        True
    """
    task = task or SyntheticTask()
    model = _Model(_strategy(strategy, task))
    key_init, key_data, key_test, key_noise = jax.random.split(jax.random.key(seed), 4)
    test = task.sample(key_test, 1024)
    rngs = {"params": key_init, "carry": key_noise}
    params = model.init(rngs, jax.tree.map(lambda a: a[:2], test))["params"]
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)
    drop = 0 if strategy == "warmup" else task.warmup  # warm-up outputs already start there

    def mse(params, batch, key, deterministic):
        out = model.apply(
            {"params": params}, batch, deterministic=deterministic, rngs={"carry": key}
        )
        return jnp.mean((out[:, drop:] - batch["y"][:, task.warmup :]) ** 2)

    @jax.jit
    def step(params, opt_state, key):
        k_data, k_noise = jax.random.split(key)
        batch = task.sample(k_data, batch_size)

        # Training loss on every output the model gives (warm-up gives fewer).
        def loss_fn(p):
            out = model.apply({"params": p}, batch, deterministic=False, rngs={"carry": k_noise})
            return jnp.mean((out - batch["y"][:, batch["y"].shape[1] - out.shape[1] :]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for key in jax.random.split(key_data, steps):
        params, opt_state, _ = step(params, opt_state, key)
    return float(mse(params, test, jax.random.key(seed + 10_000), True))


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
) -> str:
    """Run the study, write ``study.json``, ``README.md`` and plots into ``out``; return the report.

    A part that is not run (``synthetic=False``, or no ``nab_root``) keeps the results an earlier
    run left in ``out/study.json``, so the two parts can be run separately.
    """
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    previous = out / "study.json"
    payload: dict[str, Any] = json.loads(previous.read_text()) if previous.is_file() else {}
    log = lambda *a: print(*a, flush=True)
    if synthetic:
        task = SyntheticTask()
        results = synthetic_study(
            seeds=seeds,
            steps=steps,
            task=task,
            progress=lambda n, s, v: log(f"synthetic {n} seed {s}: test MSE {v:.5f}"),
        )
        payload["synthetic"] = {
            "task": dataclasses.asdict(task),
            "steps": steps,
            "seeds": seeds,
            "mse": results,
        }
    if nab_root is not None:
        nab = nab_study(
            nab_root,
            nab_strategies,
            seeds,
            epochs=epochs,
            workers=workers,
            progress=lambda n, s, a, b: log(f"NAB {n} seed {s}: standard {a:.2f}, VUS-PR {b:.4f}"),
        )
        payload["nab"] = {**nab, "seeds": seeds, "epochs": epochs}
    tmp = previous.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(previous)
    return render_report(payload, out)


def render_report(payload: dict[str, Any], out: Any) -> str:
    """Write ``README.md`` and the plots for a study payload (as in ``study.json``)."""
    import platform
    import time
    from pathlib import Path

    out = Path(out)
    sections = [
        "# Does the initial state matter? (h0's initial-state study)",
        "",
        f"Regenerate with `h0 study initial-state --seeds N [--nab NAB_ROOT]` (here: "
        f"{platform.machine()}, {len(jax.devices())} CPU device(s), {time.strftime('%Y-%m-%d')}). "
        "Every strategy is compared with zeros on the same seeds (paired): mean ± standard "
        "deviation over seeds, the mean difference with a 95% t-interval, a paired t-test, and "
        "the number of seeds on which the strategy did better.",
    ]
    if "synthetic" in payload:
        part = payload["synthetic"]
        task = SyntheticTask(**part["task"])
        results = part["mse"]
        plot_study(
            results,
            out / "synthetic.png",
            metric="test MSE (log scale)",
            title=f"Synthetic task: windows cut from {task.num_series} processes; lower is better",
            log=True,
        )
        sections += [
            "",
            "## (a) A synthetic task where the start should matter",
            "",
            inspect.cleandoc(SyntheticTask.__doc__ or "").split("\n\n")[1].replace("\n", " "),
            "",
            f"GRU({16}) + linear read-out, {part['steps']} Adam steps of 64 windows, "
            f"{len(next(iter(results.values())))} seeds; test MSE on 1024 windows, measured on "
            f"steps {task.warmup}.. for every strategy (warm-up burns in the first {task.warmup}).",
            "",
            markdown_table(paired_comparison(results), "test MSE", higher_is_better=False),
            "",
            "![synthetic](synthetic.png)",
        ]
    if "nab" in payload:
        nab = payload["nab"]
        plot_study(
            nab["nab_standard"],
            out / "nab.png",
            metric="NAB standard score",
            title="NAB (58 series): h0's detector by encoder initial state; higher is better",
        )
        sections += [
            "",
            "## (b) NAB: the anomaly detector's encoder started by each strategy",
            "",
            "Each of the 58 series is trained alone on its probationary period (so a per-sequence "
            "state would be a single learned state: it is left out here), and scored causally with "
            "every scoring stage on. NAB's standard profile with the threshold optimised over the "
            "corpus, and VUS-PR (buffers 0..20) averaged over the series with a window.",
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
            "",
            "![nab](nab.png)",
        ]
    report = "\n".join(sections) + "\n"
    (out / "README.md").write_text(report)
    return report
