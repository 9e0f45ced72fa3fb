"""A small progress bar for sweeps: groups done, and steps within the running group.

Drawn on one line of a terminal (carriage return, throttled); silent when the stream
is not a terminal, so logs and CI output stay clean.
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
        Number of groups to run.
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
    """

    def __init__(self, total, done=0, enabled=None, stream=None, width=24, min_interval=0.1):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total, self.done, self.skipped = total, done, done
        self.width, self.min_interval = width, min_interval
        self.label, self.step, self.steps = "", 0, 0
        self.start = time.monotonic()
        self._last = 0.0
        self._length = 0
        self.draw(force=True)

    def start_group(self, label: str, steps: int) -> None:
        """A group starts: ``label`` describes it, ``steps`` is its length."""
        self.label, self.step, self.steps = label, 0, steps
        self.draw(force=True)

    def update(self, step, steps=None, *_, **__) -> None:
        """The running group reached ``step`` (of ``steps``); the engine's callback."""
        self.step = int(step)
        if steps is not None:
            self.steps = int(steps)
        self.draw()

    __call__ = update

    def finish_group(self) -> None:
        self.done += 1
        self.label, self.step, self.steps = "", 0, 0
        self.draw(force=True)

    def line(self) -> str:
        """The text of the bar as it would be drawn now."""
        frac = self.done / self.total if self.total else 1.0
        if self.steps and self.done < self.total:
            frac += min(self.step / self.steps, 1.0) / self.total
        fill = int(round(frac * self.width))
        bar = "#" * fill + "-" * (self.width - fill)
        elapsed = time.monotonic() - self.start
        text = f"sweep [{bar}] {self.done}/{self.total} groups"
        if self.label:
            text += f" | {self.label}"
            if self.steps:
                text += f" step {self.step}/{self.steps}"
        text += f" | {_clock(elapsed)}"
        ran = frac - self.skipped / self.total if self.total else 0.0
        if 0 < ran and frac < 1:
            text += f" eta {_clock(elapsed * (1 - frac) / ran)}"
        return text

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
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
