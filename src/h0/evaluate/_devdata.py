"""The development benchmark's datasets: a cache built once by ``h0 bench prepare``, then read.

Nothing here is shipped with the package and nothing is downloaded while a benchmark runs: the
preparation step (:func:`prepare`) builds a cache under ``$H0_DEVBENCH_ROOT`` (default
``~/.cache/h0/devbench``) from

* **aeon** -- the labelled series that the ``aeon==1.6.0`` wheel bundles, read straight from the
  wheel (a zip; aeon itself is never installed): KDD-TSAD/UCR 135 ``InternalBleeding16``
  (train = its published ``TRAIN`` file, the first 1,200 points), the GutenTAG-made
  ``ecg-diff-count-3`` (train = its anomaly-free ``TRAIN_NA`` series) and the 9-channel Daphnet
  excerpt ``S06R02E0`` (no labelled anomaly in this excerpt, so it only measures false alarms;
  train = its first 20%);
* **gutentag** -- synthetic series made by ``timeeval-gutentag==1.5.0`` in a separate virtual
  environment (GutenTAG pins ``scipy < 1.15``), every anomaly kind, uni- and multivariate, long
  segments and single points, each with GutenTAG's anomaly-free semi-supervised training series,
  generated with a fixed seed; each scenario exists twice (``-a`` and ``-b``: other base
  frequency, other positions);

and reads **NAB** from its own corpus (``$H0_NAB_ROOT``): train = NAB's probationary part.

Every dataset is ``train [n, C]``, ``test [m, C]`` (the points after ``train``, or a separate
series where the source gives an anomaly-free training series) and ``labels [m]``.

**The split** (:func:`split_of`): GutenTAG twins go ``-a`` to ``dev`` and ``-b`` to ``test``;
aeon's two labelled series are one each (``kdd-135`` dev, ``ecg-diff-count-3`` test) and the
unlabelled Daphnet is dev; NAB series are ``dev`` when the first byte of the SHA-256 of their path
is even. Defaults are to be chosen on ``dev`` only.

Example:
    >>> split_of("gutentag/platform-long-a"), split_of("gutentag/platform-long-b")
    ('dev', 'test')
    >>> split_of("nab/realKnownCause/nyc_taxi.csv") in ("dev", "test")
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from h0._errors import UsageError

ROOT_ENV = "H0_DEVBENCH_ROOT"
NAB_ROOT_ENV = "H0_NAB_ROOT"
#: Bumped whenever the cache layout or the generated series change.
FORMAT = 1
AEON_VERSION = "1.6.0"
GUTENTAG_VERSION = "1.5.0"
GUTENTAG_SEED = 11
#: Share of a series used for training where the source gives no training series.
PREFIX_FRACTION = 0.2

FAMILIES = ("aeon", "gutentag", "nab")

# Series read from the aeon wheel: (name, test file, training source, split, note).
_AEON = (
    (
        "kdd-135",
        "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
        "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
        "dev",
        "train = the published TRAIN file (a prefix of TEST); test = the rest of TEST",
    ),
    (
        "ecg-diff-count-3",
        "UnitTest/ecg-diff-count-3_TEST.csv",
        "UnitTest/ecg-diff-count-3_TRAIN_NA.csv",
        "test",
        "train = the separate anomaly-free TRAIN_NA series; test = all of TEST",
    ),
    (
        "daphnet-s06r02e0",
        "Daphnet_S06R02E0/S06R02E0.csv",
        None,
        "dev",
        "no labelled anomaly in this excerpt: false alarms only; train = first 20%",
    ),
)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One benchmark series.

    Attributes:
        name: ``family/name``, unique (e.g. ``"gutentag/platform-long-a"``).
        family: ``"aeon"``, ``"gutentag"`` or ``"nab"``.
        split: ``"dev"`` or ``"test"``.
        train: Training part ``[n, C]`` (anomaly-free where the source says so).
        test: Scored part ``[m, C]``.
        labels: 0/1 ``[m]`` for ``test``.
        train_rule: How ``train`` was chosen.
        meta: Source details (anomaly kinds, file names).
    """

    name: str
    family: str
    split: str
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    train_rule: str
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether ``labels`` has at least one anomalous point."""
        return bool(self.labels.any())


def default_root() -> Path:
    """The cache root: ``$H0_DEVBENCH_ROOT`` or ``~/.cache/h0/devbench``."""
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else Path.home() / ".cache" / "h0" / "devbench"


def split_of(name: str) -> str:
    """The fixed dev/test split of a dataset name (see the module docstring).

    Args:
        name: ``family/name``.

    Returns:
        ``"dev"`` or ``"test"``.

    Example:
        >>> split_of("aeon/kdd-135"), split_of("aeon/ecg-diff-count-3")
        ('dev', 'test')
    """
    family, _, rest = name.partition("/")
    if family == "gutentag":
        return "dev" if rest.endswith("-a") else "test"
    if family == "aeon":
        for short, _, _, split, _ in _AEON:
            if rest == short:
                return split
    return "dev" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "test"


# --------------------------------------------------------------------------------------------
# GutenTAG scenarios
# --------------------------------------------------------------------------------------------


def _sine(frequency: float, variance: float = 0.05) -> dict:
    return {"kind": "sine", "frequency": frequency, "amplitude": 1.0, "variance": variance}


def _anomaly(position: str, length: int, kind: dict, channel: int = 0) -> dict:
    return {"position": position, "length": length, "channel": channel, "kinds": [kind]}


def gutentag_scenarios() -> list[dict]:
    """GutenTAG ``timeseries`` entries: every anomaly kind, each as twins ``-a`` and ``-b``.

    Test and training series have 3,000 points each (GutenTAG's ``semi-supervised`` option gives
    the anomaly-free training series). Twin ``b`` has a 30% higher base frequency and its
    anomalies at other positions.

    Returns:
        A list of GutenTAG time-series configurations (plain dicts).

    Example:
        >>> names = [s["name"] for s in gutentag_scenarios()]
        >>> len(names), names[:2]
        (22, ['extremum-points-a', 'extremum-points-b'])
    """
    trend = {"kind": "trend", "oscillation": {"kind": "polynomial", "polynomial": [0, 3]}}
    # name -> (bases(frequency) -> list, anomalies(positions) -> list)
    scenarios: dict[str, tuple[Callable, Callable]] = {
        "extremum-points": (
            lambda f: [_sine(f)],
            lambda p: [
                _anomaly(q, 1, {"kind": "extremum", "min": m, "local": False})
                for q, m in zip(p, (False, True, False), strict=True)
            ],
        ),
        "extremum-local": (
            lambda f: [_sine(f)],
            lambda p: [
                _anomaly(q, 1, {"kind": "extremum", "min": False, "local": True}) for q in p[:2]
            ],
        ),
        "platform-long": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[0], 300, {"kind": "platform", "value": 0.0})],
        ),
        "mean-shift": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[1], 200, {"kind": "mean", "offset": 0.8})],
        ),
        "trend": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[2], 250, trend)],
        ),
        "frequency": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[0], 200, {"kind": "frequency", "frequency_factor": 2.0})],
        ),
        "variance": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[1], 200, {"kind": "variance", "variance": 0.3})],
        ),
        "amplitude": (
            lambda f: [_sine(f)],
            lambda p: [_anomaly(p[2], 200, {"kind": "amplitude", "amplitude_factor": 1.8})],
        ),
        "pattern-ecg": (
            lambda f: [{"kind": "ecg", "frequency": f, "variance": 0.05}],
            lambda p: [_anomaly(p[0], 150, {"kind": "pattern"})],
        ),
        "multi-3ch-mixed": (
            lambda f: [
                _sine(f),
                {"kind": "ecg", "frequency": f, "variance": 0.05},
                {"kind": "random-walk", "amplitude": 1.0, "variance": 0.05, "smoothing": 0.01},
            ],
            lambda p: [
                _anomaly(p[0], 1, {"kind": "extremum", "min": False, "local": False}, 0),
                _anomaly(p[1], 200, {"kind": "platform", "value": 0.5}, 2),
                _anomaly(p[2], 150, {"kind": "variance", "variance": 0.3}, 1),
            ],
        ),
        "multi-6ch-frequency": (
            lambda f: [_sine(f * (1 + 0.2 * c)) for c in range(6)],
            lambda p: [
                _anomaly(p[0], 200, {"kind": "frequency", "frequency_factor": 1.8}, 3),
                _anomaly(p[2], 200, {"kind": "amplitude", "amplitude_factor": 0.3}, 5),
            ],
        ),
    }
    twins = {"a": (1.0, ("beginning", "middle", "end")), "b": (1.3, ("end", "beginning", "middle"))}
    out = []
    for name, (bases, anomalies) in scenarios.items():
        for twin, (frequency, positions) in twins.items():
            out.append(
                {
                    "name": f"{name}-{twin}",
                    "length": 3000,
                    "semi-supervised": True,
                    "base-oscillations": bases(frequency),
                    "anomalies": anomalies(positions),
                }
            )
    return out


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------


def _save(path: Path, train: np.ndarray, test: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        train=np.asarray(train, np.float64),
        test=np.asarray(test, np.float64),
        labels=np.asarray(labels, np.int8),
    )
    tmp.replace(path)


def _read_timeeval_csv(text: bytes | str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """TimeEval's canonical CSV (timestamp, value columns..., is_anomaly) as values and labels."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(text) if isinstance(text, bytes) else text)
    columns = [c for c in frame.columns[1:] if c != "is_anomaly"]
    values = frame[columns].to_numpy(np.float64)
    labels = (frame["is_anomaly"].to_numpy(np.float64) > 0).astype(np.int8)
    return values, labels, columns


def _segments(labels: np.ndarray) -> list[list[int]]:
    edges = np.diff(np.r_[0, np.asarray(labels, np.int8), 0])
    return [
        [int(a), int(b)]
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True)
    ]


def _entry(name: str, train: np.ndarray, test: np.ndarray, labels: np.ndarray, **meta) -> dict:
    return {
        "name": name,
        "split": split_of(name),
        "channels": int(test.shape[1]),
        "n_train": int(train.shape[0]),
        "n_test": int(test.shape[0]),
        "anomalous_points": int(labels.sum()),
        "segments": _segments(labels),
        **meta,
    }


def _aeon_wheel(root: Path, wheel: Path | None, log: Callable[[str], None]) -> Path:
    if wheel is not None:
        return Path(wheel)
    downloads = root / "downloads"
    found = sorted(downloads.glob(f"aeon-{AEON_VERSION}-*.whl"))
    if found:
        return found[0]
    log(f"downloading the aeon {AEON_VERSION} wheel (not installed; only its data is read)")
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
    subprocess.run([*cmd, f"aeon=={AEON_VERSION}", "-d", str(downloads)], check=True)
    return sorted(downloads.glob(f"aeon-{AEON_VERSION}-*.whl"))[0]


def prepare_aeon(root: Path, wheel: Path | None = None, log: Callable[[str], None] = print) -> list:
    """Write the aeon wheel's labelled series into ``root/aeon/*.npz``; their manifest entries."""
    wheel = _aeon_wheel(root, wheel, log)
    entries = []
    with zipfile.ZipFile(wheel) as z:
        for short, test_file, train_file, _, rule in _AEON:
            test, labels, columns = _read_timeeval_csv(z.read(f"aeon/datasets/data/{test_file}"))
            if train_file is None:
                n = int(PREFIX_FRACTION * len(test))
                train, test, labels = test[:n], test[n:], labels[n:]
            else:
                train, train_labels, _ = _read_timeeval_csv(
                    z.read(f"aeon/datasets/data/{train_file}")
                )
                if train_labels.any():
                    raise RuntimeError(f"{train_file} has labelled anomalies")
                # KDD-TSAD's TRAIN is a prefix of TEST: score only what follows it.
                if len(test) > len(train) and np.array_equal(test[: len(train)], train):
                    test, labels = test[len(train) :], labels[len(train) :]
            name = f"aeon/{short}"
            _save(root / "aeon" / f"{short}.npz", train, test, labels)
            entries.append(
                _entry(
                    name,
                    train,
                    test,
                    labels,
                    family="aeon",
                    file=f"aeon/{short}.npz",
                    source=f"aeon {AEON_VERSION} wheel: aeon/datasets/data/{test_file}",
                    train_rule=rule,
                    columns=columns,
                )
            )
    return entries


def _gutentag_python(root: Path, python: Path | None, log: Callable[[str], None]) -> Path:
    if python is not None:
        return Path(python)
    venv = root / "gutentag-venv"
    exe = venv / "bin" / "python"
    if exe.exists():
        return exe
    log(f"creating {venv} with timeeval-gutentag=={GUTENTAG_VERSION} (pins scipy < 1.15)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(exe), "-m", "pip", "install", "-q", f"timeeval-gutentag=={GUTENTAG_VERSION}"],
        check=True,
    )
    return exe


def run_gutentag(exe: Path, scenarios: list[dict], work: Path) -> Path:
    """Generate GutenTAG ``timeseries`` entries into ``work/out/<name>/`` (seed :data:`GUTENTAG_SEED`).

    ``exe`` is a Python with timeeval-gutentag; returns the output folder.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.yaml"  # JSON is YAML
    config.write_text(json.dumps({"timeseries": scenarios}, indent=1))
    command = [str(exe), "-m", "gutenTAG", "--config-yaml", str(config)]
    subprocess.run(
        [*command, "--output-dir", str(work / "out"), "--seed", str(GUTENTAG_SEED)],
        check=True,
        capture_output=True,
    )
    return work / "out"


def prepare_gutentag(
    root: Path, python: Path | None = None, log: Callable[[str], None] = print
) -> list:
    """Generate :func:`gutentag_scenarios` with GutenTAG into ``root/gutentag/*.npz``."""
    exe = _gutentag_python(root, python, log)
    work = root / "gutentag-raw"
    shutil.rmtree(work, ignore_errors=True)
    scenarios = gutentag_scenarios()
    log(f"generating {len(scenarios)} GutenTAG series (seed {GUTENTAG_SEED})")
    out = run_gutentag(exe, scenarios, work)
    entries = []
    for scenario in scenarios:
        short = scenario["name"]
        folder = out / short
        test, labels, columns = _read_timeeval_csv(str(folder / "test.csv"))
        train, train_labels, _ = _read_timeeval_csv(str(folder / "train_no_anomaly.csv"))
        if train_labels.any() or not labels.any():
            raise RuntimeError(f"GutenTAG series {short}: unexpected labels")
        _save(root / "gutentag" / f"{short}.npz", train, test, labels)
        entries.append(
            _entry(
                f"gutentag/{short}",
                train,
                test,
                labels,
                family="gutentag",
                file=f"gutentag/{short}.npz",
                source=f"timeeval-gutentag {GUTENTAG_VERSION}, seed {GUTENTAG_SEED}",
                train_rule="train = GutenTAG's anomaly-free semi-supervised training series",
                kinds=[k["kind"] for a in scenario["anomalies"] for k in a["kinds"]],
                columns=columns,
            )
        )
    return entries


def _manifest_path(root: Path) -> Path:
    return root / "manifest.json"


def read_manifest(root: Path | None = None) -> dict | None:
    """The cache's manifest, or ``None`` if the cache is absent or of another format."""
    path = _manifest_path(Path(root) if root else default_root())
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    return manifest if manifest.get("format") == FORMAT else None


def prepare(
    root: Path | None = None,
    *,
    aeon_wheel: Path | None = None,
    gutentag_python: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Build the cache (idempotent: a complete cache of this format is left alone).

    Args:
        root: Cache root; default :func:`default_root`.
        aeon_wheel: A downloaded ``aeon-1.6.0`` wheel; default: ``pip download`` it into
            ``root/downloads``.
        gutentag_python: A Python with ``timeeval-gutentag==1.5.0``; default: a venv created
            under ``root/gutentag-venv``.
        force: Rebuild even if the cache is complete.
        log: Progress messages.

    Returns:
        The manifest (also written to ``root/manifest.json``).
    """
    root = Path(root) if root else default_root()
    manifest = read_manifest(root)
    if (
        manifest is not None
        and not force
        and all((root / d["file"]).is_file() for d in manifest["datasets"])
    ):
        log(f"cache {root} is complete (format {FORMAT}); nothing to do")
        return manifest
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    datasets = prepare_aeon(root, aeon_wheel, log) + prepare_gutentag(root, gutentag_python, log)
    manifest = {
        "format": FORMAT,
        "versions": {
            "aeon": AEON_VERSION,
            "timeeval-gutentag": GUTENTAG_VERSION,
            "gutentag_seed": GUTENTAG_SEED,
            "numpy": np.__version__,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1),
        "datasets": datasets,
    }
    tmp = _manifest_path(root).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(_manifest_path(root))
    log(f"wrote {len(datasets)} datasets to {root} in {manifest['seconds']} s")
    return manifest


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    """Where a dataset comes from, before it is loaded (:func:`load`)."""

    name: str
    family: str
    split: str
    info: dict

    def load(self) -> Dataset:
        """Read the dataset."""
        return load(self)


def nab_root() -> Path | None:
    """``$H0_NAB_ROOT``, else ``/work/shared/datasets/nab`` or ``../shared/datasets/nab`` if present."""
    env = os.environ.get(NAB_ROOT_ENV)
    if env:
        return Path(env)
    for candidate in (Path("/work/shared/datasets/nab"), Path("../shared/datasets/nab")):
        if (candidate / "labels").is_dir():
            return candidate
    return None


def _nab_refs(root: Path) -> list[DatasetRef]:
    from h0.evaluate._nab import load_corpus

    corpus = load_corpus(root)
    refs = []
    for rel, f in corpus.files.items():
        name = f"nab/{rel}"
        refs.append(
            DatasetRef(name, "nab", split_of(name), {"root": str(root), "rel": rel, "file": f})
        )
    return refs


def datasets(
    split: str = "all",
    *,
    families: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    root: Path | None = None,
    nab: Path | None = None,
) -> list[DatasetRef]:
    """The benchmark's datasets (not yet loaded), filtered.

    Args:
        split: ``"dev"``, ``"test"`` or ``"all"``.
        families: Keep these families only (default all available).
        names: Keep datasets whose name contains one of these strings.
        root: Cache root (default :func:`default_root`).
        nab: NAB root (default :func:`nab_root`); NAB is skipped if there is none.

    Returns:
        References sorted by name.

    Raises:
        UsageError: On an unknown split or family.
    """
    if split not in ("dev", "test", "all"):
        raise UsageError(f"--split must be dev, test or all; got {split!r}")
    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown:
        raise UsageError(
            f"unknown dataset family {unknown[0]!r}; choose from {', '.join(FAMILIES)}"
        )
    root = Path(root) if root else default_root()
    refs = []
    manifest = read_manifest(root)
    if manifest is not None:
        for d in manifest["datasets"]:
            refs.append(DatasetRef(d["name"], d["family"], d["split"], {**d, "root": str(root)}))
    if families is None or "nab" in families:
        nab = nab if nab is not None else nab_root()
        if nab is not None:
            refs.extend(_nab_refs(Path(nab)))
    refs = [
        r
        for r in refs
        if (split == "all" or r.split == split)
        and (families is None or r.family in families)
        and (not names or any(n in r.name for n in names))
    ]
    return sorted(refs, key=lambda r: r.name)


def load(ref: DatasetRef) -> Dataset:
    """Read one dataset (a cached ``.npz`` or a NAB series)."""
    if ref.family == "nab":
        import pandas as pd

        from h0.evaluate._nab import probation_length

        f = ref.info["file"]
        frame = pd.read_csv(Path(ref.info["root"]) / "data" / ref.info["rel"])
        values = frame["value"].to_numpy(np.float64)[:, None]
        labels = np.zeros(len(values), np.int8)
        for a, b in f.windows:
            labels[a : b + 1] = 1
        n = probation_length(len(values))
        return Dataset(
            ref.name,
            "nab",
            ref.split,
            values[:n],
            values[n:],
            labels[n:],
            "train = NAB's probationary part (first 15%, at most 750 rows)",
            {"rel": ref.info["rel"], "nab_root": ref.info["root"]},
        )
    meta: dict[str, Any] = {k: v for k, v in ref.info.items() if k in ("source", "kinds")}
    return from_npz(
        Path(ref.info["root"]) / ref.info["file"],
        ref.name,
        ref.family,
        ref.split,
        ref.info["train_rule"],
        meta,
    )


def from_npz(
    path: Path, name: str, family: str, split: str, train_rule: str, meta: dict | None = None
) -> Dataset:
    """A :class:`Dataset` from a cached ``.npz`` (``train``, ``test``, ``labels``; see ``_save``)."""
    with np.load(path) as z:
        train, test, labels = z["train"], z["test"], z["labels"]
    return Dataset(name, family, split, train, test, labels, train_rule, dict(meta or {}))
