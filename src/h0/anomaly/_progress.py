"""The training progress bar shared by ``h0 detect`` and its fleet mode."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def training_progress(
    epochs: int, label: str = "training"
) -> Iterator[Callable[[int, int, float], None]]:
    """A rich progress bar on stderr (epochs, loss, ETA); yields the ``fit`` callback."""
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
        TextColumn("epochs  loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("fit", total=epochs, loss="-")

        def callback(epoch: int, total: int, loss: float) -> None:
            del total
            progress.update(task, completed=epoch, loss=f"{loss:.4f}")

        yield callback
