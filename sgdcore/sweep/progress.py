"""A small progress bar for sweeps: groups done, and steps within the running group.

Drawn on one line of a terminal (carriage return, throttled); silent when the stream
is not a terminal, so logs and CI output stay clean.

The time left is estimated from work, not from group counts: a group of ``K`` models
trained for ``S`` steps is ``K·S`` model-steps, the rate is the model-steps done so far
in this session divided by the time they took, and the estimate is the model-steps
still to run divided by that rate. Groups differ in their number of models and steps
by orders of magnitude (a sweep over learning rates with a constant-time step rule
gives the smallest ε the most steps), so counting groups misleads.
"""

from __future__ import annotations

import shutil
import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress of a sweep over ``total`` groups.

    Parameters
    ----------
    total : int
        Number of groups in the sweep.
    done : int
        Groups already finished (skipped on resume).
    enabled : bool, optional
        Draw or not; by default exactly when ``stream`` is a terminal.
    stream : file, optional
        Where to draw (default ``sys.stderr``).
    width : int
        Characters of the bar itself.
    min_interval : float
        Seconds between redraws for step updates.
    work : int, optional
        Model-steps still to run (the sum of models × steps over the groups to run);
        the time left is shown when it is given.
    clock : callable, optional
        Seconds as a float (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        total,
        done=0,
        enabled=None,
        stream=None,
        width=24,
        min_interval=0.1,
        work=None,
        clock=time.monotonic,
    ):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total, self.done, self.skipped = total, done, done
        self.width, self.min_interval = width, min_interval
        self.label, self.step, self.steps, self.size = "", 0, 0, 1
        self.work, self.work_done = work, 0
        self.clock = clock
        self.start = clock()
        self._last = 0.0
        self._length = 0
        self.draw(force=True)

    def start_group(self, label: str, steps: int, size: int = 1) -> None:
        """A group of ``size`` models starts: ``label`` describes it, ``steps`` is its
        length.
        """
        self.label, self.step, self.steps, self.size = label, 0, steps, size
        self.draw(force=True)

    def update(self, step, steps=None, *_, **__) -> None:
        """The running group reached ``step`` (of ``steps``); the engine's callback."""
        self.step = int(step)
        if steps is not None:
            self.steps = int(steps)
        self.draw()

    __call__ = update

    def finish_group(self, work: int | None = None) -> None:
        """The running group finished; ``work`` is its model-steps (by default its
        size × steps as given to :meth:`start_group`).
        """
        self.work_done += self.size * self.steps if work is None else work
        self.done += 1
        self.label, self.step, self.steps, self.size = "", 0, 0, 1
        self.draw(force=True)

    def eta(self) -> float | None:
        """Seconds left: model-steps to run over the measured rate (None before any
        step was measured or without ``work``).
        """
        if self.work is None:
            return None
        done = self.work_done + self.size * min(self.step, self.steps)
        elapsed = self.clock() - self.start
        if done <= 0 or elapsed <= 0:
            return None
        return max(self.work - done, 0) * elapsed / done

    def line(self) -> str:
        """The text of the bar as it would be drawn now."""
        frac = self.done / self.total if self.total else 1.0
        if self.steps and self.done < self.total:
            frac += min(self.step / self.steps, 1.0) / self.total
        fill = int(round(frac * self.width))
        bar = "#" * fill + "-" * (self.width - fill)
        elapsed = self.clock() - self.start
        text = f"sweep [{bar}] {self.done}/{self.total} groups"
        if self.label:
            text += f" | {self.label}"
            if self.steps:
                text += f" step {self.step}/{self.steps}"
        text += f" | {_clock(elapsed)}"
        eta = self.eta()
        if eta is not None and self.done < self.total:
            text += f" eta {_clock(eta)}"
        return text

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        text = self.line()[: shutil.get_terminal_size((120, 24)).columns - 1]
        pad = max(0, self._length - len(text))
        self._length = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
