"""Speed of h0's fast GRU/LSTM path against flax.linen.RNN and PyTorch, on the CPU.

Run from the repository root:

    PYTHONPATH=src python benchmarks/rnn_speed.py --out benchmarks/results/rnn_speed.json
    PYTHONPATH=src python benchmarks/rnn_speed.py --quick      # CI smoke run, < 60 s

Every comparison is timed side by side in one process: each function is compiled and warmed up,
then the contenders run alternately (A, B, C, A, B, C, ...) and each ratio is the median of the
per-round ratios, so slow phases of a shared machine hit both sides. A train step is
``value_and_grad`` of the mean squared output with respect to the parameters; forward is the
outputs alone. PyTorch (``torch.set_num_threads(2)``) runs the same sizes when it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import h0

try:
    import torch
except ImportError:  # the torch columns are left empty
    torch = None

MAIN_SIZES = [(64, 128, 32, 128), (32, 512, 8, 64), (256, 64, 16, 256)]  # B, T, D, H
GRID = [(b, t, 32, h) for b in (16, 64, 256) for t in (64, 512) for h in (64, 256)]
CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}
GATES = {"gru": 3, "lstm": 4}


# ---------------------------------------------------------------------------------- timing


def _run(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - start


def alternate(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict:
    """Median times and median per-round ratios (vs the first entry) of alternated runs."""
    for fn in fns.values():
        for _ in range(warmup):
            _run(fn)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(_run(fn))
    base = next(iter(fns))
    return {
        name: {
            "median_ms": 1e3 * statistics.median(ts),
            "ratio_vs_first": statistics.median(
                t / b for t, b in zip(ts, times[base], strict=True)
            ),
            "times_ms": [1e3 * t for t in ts],
        }
        for name, ts in times.items()
    }


def pair_ratio(result: dict, a: str, b: str) -> float:
    """Median over rounds of ``time[a] / time[b]``."""
    ta, tb = result[a]["times_ms"], result[b]["times_ms"]
    return statistics.median(x / y for x, y in zip(ta, tb, strict=True))


# ----------------------------------------------------------------------------- contenders


def train_flops(cell: str, b: int, t: int, d: int, h: int) -> float:
    """Matmul FLOPs of a train step: forward, the backward recurrence and the weight gradients."""
    g = GATES[cell]
    forward = 2 * t * b * (d + h) * g * h
    return forward + 2 * t * b * h * g * h + 2 * t * b * (d + h) * g * h


def jax_fns(model: nn.Module, x: jax.Array, **kwargs) -> tuple[Callable, Callable]:
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, **kwargs))(x)

    def loss(v, x):
        return jnp.mean(model.apply(v, x, **kwargs) ** 2)

    train = jax.jit(jax.value_and_grad(loss))
    forward = jax.jit(lambda v, x: model.apply(v, x, **kwargs))
    return (lambda: train(variables, x)), (lambda: forward(variables, x))


def torch_fns(cell: str, x: np.ndarray, h: int) -> tuple[Callable, Callable] | None:
    if torch is None:
        return None
    layer = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](x.shape[-1], h, batch_first=True)
    xt = torch.from_numpy(np.array(x, np.float32))

    def train():
        layer.zero_grad(set_to_none=True)
        out, _ = layer(xt)
        loss = (out**2).mean()
        loss.backward()
        return None

    def forward():
        with torch.no_grad():
            layer(xt)
        return None

    return train, forward


def compare(cell: str, size: tuple[int, int, int, int], reps: int, warmup: int = 2) -> dict:
    """flax nn.RNN vs h0 fast vs torch, train and forward, at one size."""
    b, t, d, h = size
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    flax_train, flax_fwd = jax_fns(nn.RNN(CELLS[cell](h)), x)
    h0_train, h0_fwd = jax_fns(h0.RNN(CELLS[cell](h)), x)
    torch_pair = torch_fns(cell, np.asarray(x), h)
    row = {"cell": cell, "B": b, "T": t, "D": d, "H": h}
    for mode, fns in (
        ("train", {"flax": flax_train, "h0": h0_train}),
        ("forward", {"flax": flax_fwd, "h0": h0_fwd}),
    ):
        if torch_pair is not None:
            fns["torch"] = torch_pair[0] if mode == "train" else torch_pair[1]
        res = alternate(fns, reps, warmup)
        row[mode] = {
            "ms": {k: v["median_ms"] for k, v in res.items()},
            "h0_vs_flax": pair_ratio(res, "h0", "flax"),
            "h0_vs_torch": pair_ratio(res, "h0", "torch") if "torch" in res else None,
            "raw_ms": {k: v["times_ms"] for k, v in res.items()},
        }
    flops = train_flops(cell, b, t, d, h)
    row["train"]["h0_gflops"] = flops / (row["train"]["ms"]["h0"] * 1e6)
    row["train"]["flax_gflops"] = flops / (row["train"]["ms"]["flax"] * 1e6)
    return row


def overheads(cell: str, size: tuple[int, int, int, int], reps: int) -> dict:
    """Learned vs zeros initial state, and masked vs unmasked, for the h0 fast train step."""
    b, t, d, h = size
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    lengths = jnp.full((b,), t, jnp.int32).at[::2].set(t // 2)
    zeros, _ = jax_fns(h0.RNN(CELLS[cell](h), h0.Zeros()), x)
    learned, _ = jax_fns(h0.RNN(CELLS[cell](h), h0.Learned()), x)
    masked, _ = jax_fns(h0.RNN(CELLS[cell](h), h0.Zeros()), x, seq_lengths=lengths)
    res = alternate({"zeros": zeros, "learned": learned, "masked": masked}, reps)
    return {
        "cell": cell,
        "size": size,
        "ms": {k: v["median_ms"] for k, v in res.items()},
        "learned_vs_zeros": pair_ratio(res, "learned", "zeros"),
        "masked_vs_unmasked": pair_ratio(res, "masked", "zeros"),
    }


def compile_seconds(cell: str, b: int, t: int, d: int, h: int) -> dict:
    """Seconds to lower and compile the h0 train step, and for its first call (compile + run)."""
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    model = h0.RNN(CELLS[cell](h))
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x))(x)

    def loss(v, x):
        return jnp.mean(model.apply(v, x) ** 2)

    start = time.perf_counter()
    jax.jit(jax.value_and_grad(loss)).lower(variables, x).compile()
    compiled = time.perf_counter() - start
    jax.clear_caches()
    start = time.perf_counter()
    jax.block_until_ready(jax.jit(jax.value_and_grad(loss))(variables, x))
    return {"T": t, "compile_s": compiled, "first_call_s": time.perf_counter() - start}


PYTHON_LOOP = """
import sys, time, jax, jax.numpy as jnp, flax.linen as nn
b, t, d, h = (int(a) for a in sys.argv[1:5])
cell = nn.GRUCell(h)
x = jnp.ones((b, t, d))
params = cell.init(jax.random.key(0), jnp.zeros((b, h)), x[:, 0])
def loss(p, x):
    carry, outs = jnp.zeros((b, h)), []
    for i in range(t):                      # the recipe: a Python loop over time steps
        carry, y = cell.apply(p, carry, x[:, i])
        outs.append(y)
    return jnp.mean(jnp.stack(outs, 1) ** 2)
start = time.perf_counter()
jax.jit(jax.value_and_grad(loss)).lower(params, x).compile()
print(time.perf_counter() - start)
"""


def python_loop_compile(b: int, t: int, d: int, h: int, cap: float) -> dict:
    """Compile time of the Python-loop recipe (a subprocess, stopped after ``cap`` seconds)."""
    env = dict(os.environ)
    try:
        out = subprocess.run(
            [sys.executable, "-c", PYTHON_LOOP, str(b), str(t), str(d), str(h)],
            capture_output=True,
            text=True,
            timeout=cap,
            env=env,
            check=True,
        )
        return {"T": t, "compile_s": float(out.stdout.strip().splitlines()[-1]), "capped": False}
    except subprocess.TimeoutExpired:
        return {"T": t, "compile_s": None, "capped": True, "cap_s": cap}


def matmul_gflops(n: int, reps: int) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    times = [_run(lambda: f(a)) for _ in range(reps)]
    return 2 * n**3 / statistics.median(times) / 1e9


def peak_memory(cell: str, b: int, t: int, d: int, h: int) -> dict:
    """XLA's planned buffers (temporaries + arguments + outputs) of the train step, in MiB."""
    x = jax.ShapeDtypeStruct((b, t, d), jnp.float32)
    out = {}
    for name, model in (
        ("flax", nn.RNN(CELLS[cell](h))),
        ("h0", h0.RNN(CELLS[cell](h))),
        ("h0_remat", h0.RNN(CELLS[cell](h), remat=True)),
    ):
        variables = jax.eval_shape(lambda x, m=model: m.init(jax.random.key(0), x), x)

        def loss(v, x, m=model):
            return jnp.mean(m.apply(v, x) ** 2)

        stats = jax.jit(jax.value_and_grad(loss)).lower(variables, x).compile().memory_analysis()
        total = stats.temp_size_in_bytes + stats.argument_size_in_bytes
        out[name] = (total + stats.output_size_in_bytes) / 2**20
    return {"cell": cell, "B": b, "T": t, "D": d, "H": h, "peak_mib": out}


def temporaries(cell: str, size: tuple[int, int, int, int], calls: int = 5) -> dict:
    """Planned temporary memory of the train step and the page faults one call takes.

    XLA:CPU allocates a step's temporaries afresh on every call; above glibc's mmap threshold
    (at most 32 MiB) they come straight from the kernel, and every page is faulted in again.
    """
    b, t, d, h = size
    x = jax.random.normal(jax.random.key(1), (b, t, d))
    row = {"cell": cell, "size": size}
    for name, model in (("flax", nn.RNN(CELLS[cell](h))), ("h0", h0.RNN(CELLS[cell](h)))):
        train, _ = jax_fns(model, x)
        variables = jax.jit(lambda x, m=model: m.init(jax.random.key(0), x))(x)

        def loss(v, x, m=model):
            return jnp.mean(m.apply(v, x) ** 2)

        compiled = jax.jit(jax.value_and_grad(loss)).lower(variables, x).compile()
        for _ in range(2):
            _run(train)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(calls):
            _run(train)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
        row[name] = {
            "temp_mib": compiled.memory_analysis().temp_size_in_bytes / 2**20,
            "page_faults_per_call": faults,
        }
    return row


# --------------------------------------------------------------------------------- report


def _fmt(v, spec=".1f", none="–"):
    return none if v is None else format(v, spec)


def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']}"]
    if "load_average_start" in results:
        load = ", ".join(f"{x:.1f}" for x in results["load_average_start"])
        lines.append(f"Load average at start (1, 5, 15 min): {load}")
    lines.append("")
    lines.append(
        f"Large matmul ({results['matmul_n']}²): **{results['matmul_gflops']:.0f} GFLOP/s** in JAX."
    )
    lines.append("")
    for title, key in (("Main sizes", "main"), ("Grid", "grid")):
        if not results.get(key):
            continue
        lines += [
            f"### {title} (ms, medians; ratios are medians of alternated pairs)",
            "",
            "| cell | B, T, D, H | flax train | h0 train | torch train | h0/flax | h0/torch "
            "| flax fwd | h0 fwd | torch fwd | h0/flax | h0/torch | h0 GFLOP/s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results[key]:
            tr, fw = r["train"], r["forward"]
            lines.append(
                f"| {r['cell']} | {r['B']}, {r['T']}, {r['D']}, {r['H']} "
                f"| {tr['ms']['flax']:.1f} | {tr['ms']['h0']:.1f} | {_fmt(tr['ms'].get('torch'))} "
                f"| **{tr['h0_vs_flax']:.2f}** | {_fmt(tr['h0_vs_torch'], '.2f')} "
                f"| {fw['ms']['flax']:.1f} | {fw['ms']['h0']:.1f} | {_fmt(fw['ms'].get('torch'))} "
                f"| **{fw['h0_vs_flax']:.2f}** | {_fmt(fw['h0_vs_torch'], '.2f')} "
                f"| {tr['h0_gflops']:.0f} |"
            )
        lines.append("")
    if results.get("overheads"):
        lines += [
            "### Overheads of the h0 fast train step",
            "",
            "| cell | B, T, D, H | zeros ms | learned/zeros | masked/unmasked |",
            "|---|---|---|---|---|",
        ]
        for r in results["overheads"]:
            size = ", ".join(map(str, r["size"]))
            lines.append(
                f"| {r['cell']} | {size} | {r['ms']['zeros']:.1f} | {r['learned_vs_zeros']:.3f} "
                f"| {r['masked_vs_unmasked']:.3f} |"
            )
        lines.append("")
    if results.get("temporaries"):
        lines += [
            "### Temporary memory of the train step, and page faults per call",
            "",
            "| cell | B, T, D, H | flax temp MiB | flax faults/call | h0 temp MiB | h0 faults/call |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["temporaries"]:
            size = ", ".join(map(str, r["size"]))
            f, o = r["flax"], r["h0"]
            lines.append(
                f"| {r['cell']} | {size} | {f['temp_mib']:.0f} | {f['page_faults_per_call']:.0f} "
                f"| {o['temp_mib']:.0f} | {o['page_faults_per_call']:.0f} |"
            )
        lines.append("")
    if results.get("compile"):
        lines += [
            "### Compile time of the train step (GRU)",
            "",
            "| T | h0 compile s | h0 first call s | Python-loop recipe compile s |",
            "|---|---|---|---|",
        ]
        loops = {r["T"]: r for r in results.get("python_loop", [])}
        for r in results["compile"]:
            loop = loops.get(r["T"])
            if loop is None:
                cell = "not measured"
            elif loop["capped"]:
                cell = f"> {loop['cap_s']:.0f} s"
            else:
                cell = f"{loop['compile_s']:.1f}"
            lines.append(f"| {r['T']} | {r['compile_s']:.2f} | {r['first_call_s']:.2f} | {cell} |")
        for t, loop in loops.items():
            if t not in {r["T"] for r in results["compile"]}:
                cap = f"> {loop['cap_s']:.0f} s" if loop["capped"] else f"{loop['compile_s']:.1f}"
                lines.append(f"| {t} | – | – | {cap} |")
        lines.append("")
    if results.get("memory"):
        m = results["memory"]
        lines += [
            f"### Planned memory of the train step, {m['cell']} B={m['B']}, T={m['T']}, "
            f"D={m['D']}, H={m['H']} (MiB)",
            "",
            "| flax nn.RNN | h0 | h0 remat=True |",
            "|---|---|---|",
            f"| {m['peak_mib']['flax']:.0f} | {m['peak_mib']['h0']:.0f} "
            f"| {m['peak_mib']['h0_remat']:.0f} |",
            "",
        ]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    torch_v = torch.__version__ if torch is not None else "not installed"
    return (
        f"{cpu}, {os.cpu_count()} cores; jax {jax.__version__}, flax "
        f"{__import__('flax').__version__}, torch {torch_v}; {platform.platform()}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CI smoke run")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--reps", type=int, default=None, help="alternated rounds per comparison")
    parser.add_argument(
        "--grid-reps", type=int, default=3, help="alternated rounds per grid size (after warm-up)"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=2, help="torch.set_num_threads (the issue asks 2)"
    )
    parser.add_argument("--cells", default="gru,lstm", help="comma-separated: gru,lstm")
    parser.add_argument(
        "--sections",
        default="main,grid,overheads,temporaries,compile,memory",
        help="comma-separated subset of main,grid,overheads,temporaries,compile,memory",
    )
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    if torch is not None:
        torch.set_num_threads(args.torch_threads)
        for cell in ("gru", "lstm"):  # torch's one-time initialisation, outside the timings
            train, forward = torch_fns(cell, np.ones((2, 4, 3), np.float32), 4)
            train(), forward()
    cells = [c for c in args.cells.split(",") if c]
    reps = args.reps or (3 if args.quick else 7)
    results: dict = {"machine": machine(), "quick": args.quick, "reps": reps}
    results["torch_threads"] = args.torch_threads if torch is not None else None
    results["load_average_start"] = os.getloadavg()
    results["matmul_n"] = 512 if args.quick else 2048
    results["matmul_gflops"] = matmul_gflops(results["matmul_n"], 5)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    main_sizes = [(16, 32, 8, 48)] if args.quick else MAIN_SIZES
    grid = [] if args.quick else [s for s in GRID if s not in MAIN_SIZES]
    results["main"], results["grid"], results["overheads"] = [], [], []
    results["temporaries"] = []
    for cell in cells:
        for size in main_sizes if "main" in sections else []:
            log(f"{cell} {size}")
            results["main"].append(compare(cell, size, reps))
        for size in grid if "grid" in sections else []:
            log(f"{cell} {size}")
            results["grid"].append(compare(cell, size, args.grid_reps, warmup=1))
        if "overheads" in sections:
            log(f"{cell} overheads")
            results["overheads"].append(overheads(cell, main_sizes[0], 3 * reps))
        for size in main_sizes if "temporaries" in sections else []:
            log(f"{cell} {size} temporaries")
            results["temporaries"].append(temporaries(cell, size))
    results["matmul_gflops_end"] = matmul_gflops(results["matmul_n"], 5)
    results["load_average_end"] = os.getloadavg()

    if "compile" in sections:
        log("compile times")
        compile_ts = (16,) if args.quick else (64, 256, 1024, 4096)
        results["compile"] = [compile_seconds("gru", 16, t, 8, 64) for t in compile_ts]
        loop_ts = (8,) if args.quick else (64, 256)
        results["python_loop"] = [
            python_loop_compile(16, t, 8, 64, cap=10.0 if args.quick else 60.0) for t in loop_ts
        ]
    if "memory" in sections:
        log("memory")
        results["memory"] = peak_memory("gru", 64, 1024 if args.quick else 16384, 32, 128)

    text = markdown(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
