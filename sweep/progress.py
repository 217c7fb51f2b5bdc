"""Progress of a sweep on stderr: a bar on a terminal, a plain line now and then in a log.

A sweep that runs as a Ray job writes into a log file, where a bar's carriage returns pile up into
one unreadable line; there the progress is a dated line every ``interval`` seconds instead.
Both count chains of the whole sweep, those kept from earlier runs included, so the figure a
resumed sweep shows is the share of the sweep that is done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Chains done out of the sweep's total.

    Parameters
    ----------
    name : str
        The sweep's name, the line's label.
    total, done : int
        Chains in the sweep, and those already done before this run.
    enabled : bool
        False shows nothing.
    interval : float
        Seconds between lines when ``stream`` is not a terminal.
    """

    def __init__(
        self,
        name: str,
        total: int,
        done: int = 0,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 30.0,
    ):
        self.name, self.total, self.done = name, total, done
        self.stream = stream or sys.stderr
        self.interval = interval
        self._bar = None
        self._enabled = enabled and total > done
        self._started = self._last = time.monotonic()
        if self._enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                unit="chain",
                unit_scale=True,
                file=self.stream,
                desc=name,
                dynamic_ncols=True,
                smoothing=0.05,
            )

    def update(self, chains: int) -> None:
        """Count ``chains`` more as done."""
        self.done += chains
        if self._bar is not None:
            self._bar.update(chains)
        elif self._enabled and time.monotonic() - self._last >= self.interval:
            self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        share = 100.0 * self.done / self.total if self.total else 100.0
        print(
            f"{self.name}: {self.done}/{self.total} chains ({share:.0f}%), {self._last - self._started:.0f} s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """Finish the bar, or write the last line."""
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            self._line()
