"""When a single-slot worker scores on the event loop (serving/server/inline.py). The timer itself is
tested over HTTP in tests/serving/test_serving_inline.py: here pytest-timeout owns SIGALRM,
so only the decisions are exercised (`run()` would cancel pytest-timeout's alarm)."""

from __future__ import annotations

from shipyard.serving.server import inline
from shipyard.serving.server.inline import InlinePolicy


def _policy(below_ms: float = 2.0) -> InlinePolicy:
    policy = InlinePolicy(below_ms, timeout_ms=1000)
    policy._usable = True  # as if the server owned SIGALRM
    return policy


def _decide(policy: InlinePolicy, took_s: float) -> bool:
    """One call: its decision, and its time recorded when it ran inline (as run() does)."""
    go = policy.next_inline()
    if go:
        policy._record(took_s)
    return go


def test_warm_up_on_the_thread_then_a_probe_then_inline_while_fast():
    policy = _policy()
    assert [_decide(policy, 0.0001) for _ in range(6)] == [False, False, False, True, True, True]


def test_a_slow_call_sends_the_next_ones_to_the_thread_until_a_probe():
    policy = _policy()
    for _ in range(5):
        _decide(policy, 0.0001)
    assert _decide(policy, 0.5)  # ran inline, turned out slow
    decisions = [_decide(policy, 0.0001) for _ in range(inline._PROBE_EVERY)]
    assert decisions[:-1] == [False] * (inline._PROBE_EVERY - 1)
    assert decisions[-1] is True  # the probe, fast: inline again from here
    assert _decide(policy, 0.0001)


def test_slow_probes_back_off_up_to_the_limit():
    policy = _policy()
    for _ in range(3):
        policy.next_inline()
    assert _decide(policy, 0.01)  # the first probe is slow (10 ms > 2 ms)
    gaps = []
    for _ in range(6):
        calls = 0
        while True:
            calls += 1
            if _decide(policy, 0.01):
                break
        gaps.append(calls)
    assert gaps == [128, 256, 512, 1024, 1024, 1024]


def test_off_when_disabled_by_setting_or_with_several_slots():
    assert not any(InlinePolicy(0, 1000).next_inline() for _ in range(10))
    several = InlinePolicy(2, 1000, enabled=False)
    assert not any(several.next_inline() for _ in range(10))


def test_not_used_when_someone_else_owns_sigalrm():
    # pytest-timeout has a SIGALRM handler here: the policy must leave it alone.
    import signal

    before = signal.getsignal(signal.SIGALRM)
    if before in (signal.SIG_DFL, None):
        signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        policy = InlinePolicy(2, 1000)
        assert not any(policy.next_inline() for _ in range(10))
        assert signal.getsignal(signal.SIGALRM) is not inline._on_alarm
    finally:
        signal.signal(signal.SIGALRM, before or signal.SIG_DFL)
