"""The training progress shown by ``h0 detect`` (single series and fleet alike)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def training_progress(
    epochs: int, label: str = "training"
) -> Iterator[Callable[[int, int, float], None]]:
    """Progress on stderr; yields the ``fit`` callback.

    On a terminal: a rich progress bar (epochs, loss, ETA) that says "compiling" until the first
    epoch ends (the first step waits on JIT compilation). Otherwise (a pipe, a log file): plain
    lines, at the first epoch, every tenth and the last.
    """
    if not sys.stderr.isatty():
        print(f"{label}: compiling and training {epochs} epochs", file=sys.stderr)

        def plain(epoch: int, total: int, loss: float) -> None:
            if epoch == 1 or epoch == total or epoch % 10 == 0:
                print(f"{label}: epoch {epoch}/{total} loss {loss:.4f}", file=sys.stderr)

        yield plain
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("fit", total=epochs, loss="compiling...")

        def callback(epoch: int, total: int, loss: float) -> None:
            del total
            progress.update(task, completed=epoch, loss=f"loss {loss:.4f}")

        yield callback
