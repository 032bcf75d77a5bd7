"""The detector's settings: the one owner of every default, help text, CLI flag and check.

A setting is one field of one of four frozen dataclasses, grouped by concern: :class:`ModelConfig`,
:class:`TrainingConfig`, :class:`ScoringConfig` and :class:`AlarmConfig`, nested in
:class:`DetectorConfig`. Each field carries its help text and its check in its metadata; from
these the estimator's keyword arguments (``GRUAutoencoderDetector(**settings)``), ``get_params``,
validation, the ``h0 detect`` options and the ``settings`` block of ``anomalies.json`` are
derived. Adding a setting is one edit here.

Validation errors are :class:`ConfigError`, a ``ValueError`` that names its field, so the CLI can
say ``--flag: ...`` without parsing the message.

Example:
    >>> cfg = DetectorConfig.from_flat(window=16, epochs=0)
    >>> cfg.model.window, cfg.training.epochs, cfg.alarms.refractory
    (16, 0, 100)
    >>> try:
    ...     DetectorConfig.from_flat(hidden=0)
    ... except ConfigError as e:
    ...     print(e.field, '|', e)
    hidden | hidden must be a positive integer; got 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Collection, Iterator
from typing import Any

import numpy as np

from h0.anomaly._names import STRATEGY_NAMES, burn_in_steps

Check = Callable[[str, Any], str | None]


class ConfigError(ValueError):
    """A setting with a bad value; ``field`` names it (the CLI flag is ``--field-name``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting's metadata: help text, check, allowed values, whether the CLI offers it."""

    help: str
    check: Check | None = None
    choices: tuple[str, ...] | None = None
    cli: bool = True


def setting(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its :class:`Setting` metadata."""
    return dataclasses.field(default=default, metadata={"h0": Setting(help, check, choices, cli)})


# ------------------------------------------------------------------------------------- checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def int_at_least(low: int) -> Check:
    """A check: an integer ``>= low``."""

    def check(name: str, value: Any) -> str | None:
        if not _is_int(value) or value < low:
            if low == 1:
                return f"{name} must be a positive integer; got {value!r}."
            if low == 0:
                return f"{name} must be a non-negative integer; got {value!r}."
            return f"{name} must be at least {low} (an integer); got {value!r}."
        return None

    return check


def _finite(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and (math.isfinite(float(value)))
    )


def positive_float(name: str, value: Any) -> str | None:
    """A check: a finite number ``> 0``."""
    if not _finite(value) or value <= 0:
        return f"{name} must be a finite positive number; got {value!r}."
    return None


def non_negative_float(name: str, value: Any) -> str | None:
    """A check: a finite number ``>= 0``."""
    if not _finite(value) or value < 0:
        return f"{name} must be a finite number >= 0; got {value!r}."
    return None


def interval(
    low: float,
    high: float,
    *,
    closed_low: bool = False,
    closed_high: bool = False,
    optional: bool = False,
) -> Check:
    """A check: a number in ``(low, high)`` (``[`` / ``]`` where closed); ``None`` if optional."""

    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        inside = (
            _finite(value)
            and (low <= value if closed_low else low < value)
            and (value <= high if closed_high else value < high)
        )
        if not inside:
            left, right = "[" if closed_low else "(", "]" if closed_high else ")"
            return f"{name} must lie in {left}{low:g}, {high:g}{right}; got {value!r}."
        return None

    return check


def optional_finite(name: str, value: Any) -> str | None:
    """A check: ``None`` or a finite number."""
    if value is not None and not _finite(value):
        return f"{name} must be a finite number; got {value!r}."
    return None


def optional_positive(name: str, value: Any) -> str | None:
    """A check: ``None`` or a finite number ``> 0``."""
    if value is not None and (not _finite(value) or value <= 0):
        return f"{name} must be a finite positive number (or None); got {value!r}."
    return None


def boolean(name: str, value: Any) -> str | None:
    """A check: ``True`` or ``False``."""
    if not isinstance(value, bool | np.bool_):
        return f"{name} must be True or False; got {value!r}."
    return None


def one_of(choices: tuple[str, ...], what: str) -> Check:
    """A check: one of ``choices``."""

    def check(name: str, value: Any) -> str | None:
        if value not in choices:
            return f"{name}={value!r} is not {what}; choose one of {choices}."
        return None

    return check


# ------------------------------------------------------------------------------------- groups


class _Group:
    """Validation shared by the groups: every field's own check."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            meta: Setting = f.metadata["h0"]
            if meta.check is not None:
                message = meta.check(f.name, getattr(self, f.name))
                if message:
                    raise ConfigError(f.name, message)


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Group):
    """The network: window length, width, the encoder's initial-state strategy."""

    window: int = setting(
        32, "points per window (the encoder's input length)", check=int_at_least(2)
    )
    hidden: int = setting(24, "GRU hidden units", check=int_at_least(1))
    initial_state: str = setting(
        "learned",
        "the encoder's initial-state strategy (h0); per_sequence: one learned state per series; "
        "conditional: computed from the history before each window (--history)",
        check=one_of(STRATEGY_NAMES, "a strategy name"),
        choices=STRATEGY_NAMES,
    )
    history: int = setting(
        256,
        "with initial_state=conditional: points before each window whose summary (median, spread "
        "and known share of each block of `window` points) the encoder's initial state is "
        "computed from; a multiple of window",
        check=int_at_least(1),
    )
    forecast_horizon: int = setting(
        1,
        "points a forecasting head predicts from the encoder's state after each step, trained "
        "with the reconstruction; 0: no head",
        check=int_at_least(0),
    )

    @property
    def burn_in(self) -> int:
        """Points of each window the strategy reads before reconstruction starts."""
        return burn_in_steps(self.initial_state, self.window)

    @property
    def context(self) -> int:
        """Points before each window that the model reads (``history`` when conditional, else 0)."""
        return self.history if self.initial_state == "conditional" else 0

    @property
    def span(self) -> int:
        """Points of each model input: the context, then the window."""
        return self.context + self.window

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.initial_state == "conditional" and self.history % self.window:
            raise ConfigError(
                "history",
                f"history={self.history} must be a multiple of window={self.window} (it is "
                "summarised in blocks of window points).",
            )


@dataclasses.dataclass(frozen=True)
class TrainingConfig(_Group):
    """How the network is trained."""

    epochs: int = setting(
        20, "passes over the training windows; 0 keeps the random weights", check=int_at_least(0)
    )
    batch_size: int = setting(64, "windows per training step", check=int_at_least(1))
    learning_rate: float = setting(3e-3, "Adam's learning rate", check=positive_float)
    validation_fraction: float = setting(
        0.2,
        "share of the training windows (the latest) held out from training; their errors "
        "calibrate the score",
        check=interval(0, 1),
    )
    seed: int = setting(0, "seeds initialisation, shuffling and noise", check=int_at_least(0))
    forecast_weight: float = setting(
        1.0,
        "weight of the forecasting head's loss beside the reconstruction's",
        check=positive_float,
    )
    adapt_every: int = setting(
        0,
        "online adaptation: while scoring a continuation, every N points train on the recent "
        "points first (0: off; stream() does not adapt)",
        check=int_at_least(0),
    )
    adapt_history: int = setting(
        750,
        "adaptation: train on the windows of this many latest points, all before the block scored",
        check=int_at_least(2),
    )
    adapt_steps: int = setting(
        10,
        "adaptation: Adam steps of batch_size windows per adaptation (the budget); 0 with "
        "--adapt-calibration: refit the calibration only",
        check=int_at_least(0),
    )
    adapt_learning_rate: float | None = setting(
        None,
        "adaptation: Adam's learning rate; none: --learning-rate",
        check=optional_positive,
    )
    adapt_calibration: bool = setting(
        False,
        "adaptation: also refit the score's calibration on the errors of the latest "
        "adapt_history points, as they were scored",
        check=boolean,
    )

    @property
    def adapts(self) -> bool:
        """Whether scoring a continuation adapts the network (``adapt_every > 0``)."""
        return self.adapt_every > 0


@dataclasses.dataclass(frozen=True)
class ScoringConfig(_Group):
    """From reconstruction errors to a dense score (see ``h0.anomaly._scoring``)."""

    error_span: int = setting(
        1,
        "newest points of each window whose mean error is the point's error",
        check=int_at_least(1),
    )
    window_error: bool = setting(
        True, "also use each window's RMS error (catches changes of shape)", check=boolean
    )
    spread_error: bool = setting(
        True,
        "also score each window's spread (the log standard deviation of its values, per "
        "channel, both ways): a segment that goes flat or changes its variance, which a "
        "network reconstructs and forecasts only too well",
        check=boolean,
    )
    level_error: bool = setting(
        False,
        "also score each window's level (the mean of its values, per channel, both ways): a "
        "channel that shifts while keeping its shape, which a network reconstructs as it is",
        check=boolean,
    )
    roughness_error: bool = setting(
        False,
        "also score each window's roughness (the log median absolute second difference of its "
        "values, per channel, both ways): its noise level, which the sharp features of a pattern "
        "(an ECG's beats) do not move",
        check=boolean,
    )
    window_trim: int = setting(
        0,
        "the largest errors of each window left out of its RMS error, so that one extreme point "
        "raises its own score and not those of the next `window` points",
        check=int_at_least(0),
    )
    forecast_error: bool = setting(
        True,
        "with a forecasting head, also score each point's one-step forecast error (made from "
        "the points before it)",
        check=boolean,
    )
    echo_keep: float = setting(
        1.0,
        "echo rule: where the window RMS error does not exceed the point-level score of one of "
        "the window's earlier points it echoes that point; its decades are multiplied by this "
        "(1: off, 0: dropped)",
        check=interval(0, 1, closed_low=True, closed_high=True),
    )
    robust_history: bool = setting(
        True,
        "robust history, with the forecasting head and without online adaptation: a point whose "
        "point-level score reaches the default threshold, with no replaced point in the window "
        "before it, is read as its one-step forecast by the windows after it, so an isolated "
        "outlier disturbs neither their errors nor the forecasts made after it",
        check=boolean,
    )
    calibration_cutoff: float | None = setting(
        None,
        "robust calibration: training points that score at least this many decades under a "
        "first calibration, and the windows that hold them, are left out of the calibration and "
        "of the threshold's quantile, so an anomaly in the training part does not set the scale "
        "later points are judged by (none: off)",
        check=interval(1, 1e6, closed_low=True, optional=True),
    )
    tail_quantile: float = setting(
        0.95,
        "calibration: beyond this quantile of the calibration errors the tail is exponential",
        check=interval(0.5, 1),
    )
    range_rule: bool = setting(
        False,
        "a value beyond the training range by more than --range-margin of it scores at least "
        "10 decades",
        check=boolean,
    )
    range_margin: float = setting(
        0.05, "range rule: share of the training range", check=non_negative_float
    )
    score_batch: int = setting(
        4096, "windows per jitted scoring call", check=int_at_least(1), cli=False
    )


@dataclasses.dataclass(frozen=True)
class AlarmConfig(_Group):
    """Decisions on the score: per-point labels (``predict``) and alarm events (``alarms``)."""

    threshold: float | None = setting(
        None,
        "fixed threshold on the score (default: from the training part)",
        check=optional_finite,
    )
    threshold_quantile: float = setting(
        0.9999,
        "without --threshold/--contamination: this quantile of the calibration part's scores, "
        "at least -log10(1 - quantile) decades",
        check=interval(0, 1, closed_high=True),
    )
    contamination: float | None = setting(
        None,
        "expected share of anomalous training points: threshold = the 1 - contamination quantile",
        check=interval(0, 0.5, optional=True),
    )
    hysteresis: float = setting(
        0.5,
        "a flagged run continues while the score stays above this share of the threshold",
        check=interval(0, 1, closed_high=True),
    )
    refractory: int = setting(
        100, "points after an alarm's onset during which no new alarm starts", check=int_at_least(0)
    )


GROUPS: dict[str, type[_Group]] = {
    "model": ModelConfig,
    "training": TrainingConfig,
    "scoring": ScoringConfig,
    "alarms": AlarmConfig,
}


def fields() -> list[tuple[str, dataclasses.Field]]:
    """``(group, field)`` of every setting, read from :data:`GROUPS` (so a new field is seen)."""
    out = []
    for group, cls in GROUPS.items():
        out.extend((group, f) for f in dataclasses.fields(cls))
    names = [f.name for _, f in out]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:  # flat names are the estimator's keywords and the CLI's flags
        raise TypeError(f"setting names must be unique across groups: {sorted(duplicated)}")
    return out


def setting_names() -> tuple[str, ...]:
    """Every setting's name, in order: the estimator's keyword arguments."""
    return tuple(f.name for _, f in fields())


def defaults() -> dict[str, Any]:
    """Every setting's default."""
    return {f.name: f.default for _, f in fields()}


def scoring_names() -> tuple[str, ...]:
    """Settings that leave the trained network alone (``with_scoring`` may change them)."""
    return tuple(
        f.name
        for g, f in fields()
        if g in ("scoring", "alarms")
        and f.name
        not in ("error_span", "window_trim", "spread_error", "level_error", "roughness_error")
    )


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Every setting of the detector, nested by concern.

    Attributes:
        model: :class:`ModelConfig`.
        training: :class:`TrainingConfig`.
        scoring: :class:`ScoringConfig`.
        alarms: :class:`AlarmConfig`.
    """

    model: ModelConfig = dataclasses.field(default_factory=lambda: GROUPS["model"]())
    training: TrainingConfig = dataclasses.field(default_factory=lambda: GROUPS["training"]())
    scoring: ScoringConfig = dataclasses.field(default_factory=lambda: GROUPS["scoring"]())
    alarms: AlarmConfig = dataclasses.field(default_factory=lambda: GROUPS["alarms"]())

    def __post_init__(self) -> None:
        span, reconstructed = self.scoring.error_span, self.model.window - self.model.burn_in
        if span > reconstructed:
            raise ConfigError(
                "error_span",
                f"error_span={span} exceeds the reconstructed points per window ({reconstructed}).",
            )
        if self.scoring.window_trim >= reconstructed:
            raise ConfigError(
                "window_trim",
                f"window_trim={self.scoring.window_trim} leaves no error of the "
                f"{reconstructed} reconstructed points per window; use at most {reconstructed - 1}.",
            )
        history, window = self.training.adapt_history, self.model.window
        if self.training.adapts and history <= window:
            raise ConfigError(
                "adapt_history",
                f"adapt_history={history} must exceed window={window}: adaptation trains on the "
                "windows of the latest adapt_history points.",
            )
        if self.model.forecast_horizon > reconstructed - 1:
            raise ConfigError(
                "forecast_horizon",
                f"forecast_horizon={self.model.forecast_horizon} leaves no forecast inside a "
                f"window of {reconstructed} encoded points; use at most {reconstructed - 1}.",
            )

    @property
    def robust_history_applies(self) -> bool:
        """Whether scoring uses robust history: on, with a forecasting head, not adapting."""
        return bool(
            self.scoring.robust_history and self.model.forecast_horizon and not self.training.adapts
        )

    @classmethod
    def from_flat(cls, **settings: Any) -> DetectorConfig:
        """Build from flat keyword settings (unknown names are a ``TypeError``, as in Python)."""
        names = setting_names()
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise TypeError(
                f"unknown detector setting(s) {unknown}; the settings are {list(names)}."
            )
        groups = {}
        for group, kind in GROUPS.items():
            names = {f.name for f in dataclasses.fields(kind)}
            groups[group] = kind(**{k: v for k, v in settings.items() if k in names})
        return cls(**groups)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name."""
        return {f.name: getattr(getattr(self, g), f.name) for g, f in fields()}

    def replace(self, **settings: Any) -> DetectorConfig:
        """A copy with some settings changed (validated)."""
        return DetectorConfig.from_flat(**{**self.flat(), **settings})

    def nested(self) -> dict[str, dict[str, Any]]:
        """``{group: {setting: value}}`` (what ``anomalies.json`` records)."""
        return {g: dataclasses.asdict(getattr(self, g)) for g in GROUPS}


def iter_settings() -> Iterator[tuple[str, str, Any, Setting]]:
    """``(group, name, default, metadata)`` for every setting."""
    for group, f in fields():
        yield group, f.name, f.default, f.metadata["h0"]


def flag(name: str) -> str:
    """The CLI flag of a setting: ``error_span`` -> ``--error-span``."""
    return "--" + name.replace("_", "-")


def _number(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None

    parse.__name__ = kind.__name__
    return parse


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    overrides: dict[str, str] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Add one option per setting (in argument groups by concern), generated from the metadata.

    Every option defaults to ``None`` ("not given"); :func:`given` collects the ones set.
    ``overrides`` replaces the help text of some settings (e.g. where a mode changes a default);
    ``only`` limits the options to these settings (``h0 nab run`` offers the adaptation ones).
    """
    titles = {
        "model": "model",
        "training": "training",
        "scoring": "scoring",
        "alarms": "alarms (predict labels and alarm events)",
    }
    groups: dict[str, Any] = {}
    for group, name, default, meta in iter_settings():
        if not meta.cli or (only is not None and name not in only):
            continue
        if group not in groups:
            groups[group] = parser.add_argument_group(titles[group])
        text = (overrides or {}).get(name, meta.help)
        target = groups[group]
        if isinstance(default, bool):
            if default:
                target.add_argument(
                    flag("no_" + name),
                    dest=name,
                    action="store_false",
                    default=None,
                    help=f"do not: {text}",
                )
            else:
                target.add_argument(
                    flag(name),
                    dest=name,
                    action="store_true",
                    default=None,
                    help=f"{text} (off by default)",
                )
            continue
        kind = int if isinstance(default, int) else str if isinstance(default, str) else float
        shown = "none" if default is None else default
        kwargs: dict[str, Any] = {"default": None, "help": f"{text} (default: {shown})"}
        if meta.choices:
            kwargs["choices"] = meta.choices
        else:
            kwargs["type"] = _number(kind) if kind is not str else str
            kwargs["metavar"] = "N" if kind is int else "X"
        target.add_argument(flag(name), dest=name, **kwargs)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (those not ``None``)."""
    return {n: getattr(args, n) for n in setting_names() if getattr(args, n, None) is not None}


def markdown_table() -> str:
    """Every setting as a markdown table (docs/detect.md embeds it; a test keeps them equal).

    Example:
        >>> print(markdown_table().splitlines()[0])
        | group | setting (`h0 detect` flag) | default | meaning |
    """
    lines = ["| group | setting (`h0 detect` flag) | default | meaning |", "|---|---|---|---|"]
    for group, name, default, meta in iter_settings():
        shown = (
            "none" if default is None else repr(default) if isinstance(default, str) else default
        )
        if isinstance(default, bool):
            option = flag(("no_" if default else "") + name)
        else:
            option = flag(name)
        option = f"`{name}` (`{option}`)" if meta.cli else f"`{name}` (Python only)"
        lines.append(f"| {group} | {option} | {shown} | {meta.help} |")
    return "\n".join(lines)


_TABLE_START, _TABLE_END = "<!-- settings-table -->", "<!-- /settings-table -->"


def with_table(text: str) -> str:
    """``text`` with the block between the settings-table markers replaced by :func:`markdown_table`.

    Update the docs with
    ``python -c "import h0.anomaly._config as c, pathlib; p = pathlib.Path('docs/detect.md'); p.write_text(c.with_table(p.read_text()))"``.
    """
    start, end = text.index(_TABLE_START), text.index(_TABLE_END)
    return text[: start + len(_TABLE_START)] + "\n" + markdown_table() + "\n" + text[end:]
