"""One progress display for the tools: a redrawn bar on a terminal, plain lines elsewhere.

Training, evaluation and the command-line tool all report progress through `Progress`, so a
log file gets the same few lines from each and a terminal gets one bar that our own messages
can interrupt (`clear`, print, and the next update draws it again).
"""

from __future__ import annotations

import math
import sys
import time


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
  """Counts units of work (files, images, steps) and shows how far along and how fast.

  Args:
    total: units to do.
    label: what is counted, shown before the bar ("roundtrip", "Set5 x2").
    unit: the rate's unit ("images/s", "steps/s").
    stream: where to draw (default stderr).
    enabled: False draws nothing (counting still works).
    every_seconds: off a terminal, at most one line this often (0: one per unit).
  """

  def __init__(self, total: int, label: str = "", unit: str = "items/s", stream=None,
               enabled: bool = True, every_seconds: float = 0.0, width: int = 24):
    self.total, self.label, self.unit, self.width = total, label, unit, width
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
    self.every_seconds = every_seconds
    self.done = 0  # units finished, failed or not
    self.ok = 0  # units that produced something: the rate counts these
    self.start = time.perf_counter()
    self._last_line = float("-inf")
    self._shown = False

  def rate(self) -> float:
    return self.ok / max(time.perf_counter() - self.start, 1e-9)

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def update(self, note: str = "") -> None:
    """Redraws the bar with `note` (e.g. "tile 3/8") without counting a unit."""
    if self.tty:
      self._draw(note)

  def advance(self, name: str = "", ok: bool = True, note: str = "") -> None:
    """Counts one unit; off a terminal prints a line for it when it succeeded."""
    self.done += 1
    self.ok += ok
    if not self.enabled:
      return
    if self.tty:
      self._draw(note)
      return
    now = time.perf_counter()
    if ok and (now - self._last_line >= self.every_seconds or self.done == self.total):
      self._last_line = now
      head = f"{self.label} " if self.label else ""
      tail = f"  {name}" if name else ""
      print(f"{head}[{self.done}/{self.total}]{tail}  {self.rate():.2f} {self.unit}"
            + (f"  {note}" if note else ""), file=self.stream, flush=True)

  def clear(self) -> None:
    """Removes the bar so that a line can be printed; the next update draws it again."""
    if self.tty and self._shown:
      self.stream.write("\r\033[K")
      self.stream.flush()
      self._shown = False

  def close(self) -> None:
    self.clear()

  def _draw(self, note: str) -> None:
    filled = self.width * self.done // max(self.total, 1)
    bar = "#" * filled + "." * (self.width - filled)
    head = f"{self.label} " if self.label else ""
    self.stream.write(f"\r\033[K{head}[{bar}] {self.done}/{self.total}  "
                      f"{self.rate():.2f} {self.unit}" + (f"  {note}" if note else ""))
    self.stream.flush()
    self._shown = True
