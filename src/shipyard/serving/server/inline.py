"""Scoring on the event loop for fast models: when it pays, and a timeout that still holds.

Handing a call to the scoring thread and back costs ~75 µs of wake-ups here, more than a small
model's whole predict. With one scoring slot (the default) and the server on the main thread,
`InlinePolicy` runs a call on the event loop itself while such calls take under `below_ms`
(`serving.inline_below_ms`, 2 ms by default; 0 turns it off). The timeout of an inline call is a
SIGALRM timer (`signal.setitimer`) whose handler raises inside the call, so a call that hangs is
interrupted (504) and frees its slot, where a thread could only be abandoned. Code inside a C
function when the timer fires is interrupted when it returns to Python.

Only inline calls are timed: a call on the thread waits for the GIL behind the event loop under
load, so its wall time says little about the call. The average (exponentially weighted) of the
inline calls decides; a slow one (or a timeout) sends the next calls to the thread, where every
`probe_every`-th call is tried inline again, its time replacing the average. A probe that is slow
too doubles the interval (to 1,024 calls at most), so a model that is slow for real holds up the
loop once per many calls, and health checks are never held up for longer than one call.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

_PROBE_EVERY = 64
_PROBE_MAX = 1024
_WARMUP_CALLS = 3  # on the thread first: a first call is often slow (lazy imports, caches)


class Deadline(BaseException):
    """Raised by the SIGALRM handler inside an inline call (BaseException, so that the scoring
    code's own `except Exception` does not swallow it)."""


_running = False


def _on_alarm(_signum: int, _frame: Any) -> None:
    if _running:
        raise Deadline


def alarm_available() -> bool:
    """SIGALRM is ours to use: main thread, and nobody else has a handler for it (pytest-timeout,
    for one, has)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    current = signal.getsignal(signal.SIGALRM)
    if current is _on_alarm:
        return True
    if current not in (signal.SIG_DFL, None):
        return False
    signal.signal(signal.SIGALRM, _on_alarm)
    return True


class InlinePolicy:
    def __init__(self, below_ms: float, timeout_ms: float, enabled: bool = True) -> None:
        self.below_s = below_ms / 1000
        self.timeout_ms = timeout_ms
        self._usable: bool | None = None if enabled and below_ms > 0 else False
        self._calls = 0
        self._average_s = float("inf")  # of the inline calls; inf until the first one
        self._since_probe = 0
        self._probe_every = _PROBE_EVERY

    def next_inline(self) -> bool:
        """Whether the next call runs inline; counts it as a call either way."""
        if self._usable is None:  # decided on first use, in the thread that runs the loop
            self._usable = alarm_available()
        self._calls += 1
        if not self._usable or self._calls <= _WARMUP_CALLS:
            return False
        if self._average_s < self.below_s:
            return True
        self._since_probe += 1
        if self._calls == _WARMUP_CALLS + 1 or self._since_probe >= self._probe_every:
            self._since_probe = 0
            self._average_s = float("inf")  # the probe's time replaces the average
            return True
        return False

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` here and now, interrupted by `Deadline` at the timeout."""
        # The handler raises only while the flag is set, and the timer fires once: at most one
        # Deadline, and the outer `finally` always runs to the end.
        global _running
        start = time.perf_counter()
        try:
            try:
                _running = True
                signal.setitimer(signal.ITIMER_REAL, self.timeout_ms / 1000)
                return fn(*args)
            finally:
                _running = False
        finally:
            _running = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._record(time.perf_counter() - start)

    def _record(self, took: float) -> None:
        probe = self._average_s == float("inf")
        self._average_s = took if probe else 0.8 * self._average_s + 0.2 * took
        if probe:
            fast = took < self.below_s
            self._probe_every = _PROBE_EVERY if fast else min(2 * self._probe_every, _PROBE_MAX)
