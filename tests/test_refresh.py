"""The pure refresh policy: validity clamping, backoff of failing URLs, the fetch plan and the outcomes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mud_ryu.fetch import refresh
from mud_ryu.fetch.refresh import (
    Action,
    BackoffPolicy,
    FailureRecord,
    Outcome,
    Plan,
    alerts,
    clamp_validity,
    failed_outcome,
    plan,
    record_failure,
)

URL = "https://mud.example.com/sensor.json"
T0 = 1_700_000_000.0
HOUR = 3600.0

urls = st.text(min_size=1, max_size=80)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
policies = st.builds(
    BackoffPolicy,
    base_s=st.floats(min_value=0.5, max_value=300),
    factor=st.floats(min_value=1.5, max_value=4),
    cap_s=st.floats(min_value=300, max_value=86_400),
    jitter=st.floats(min_value=0, max_value=0.5),
)


def failure_at(now: float, url: str = URL, policy: BackoffPolicy | None = None) -> FailureRecord:
    return record_failure(None, url, "connect-failed", now, policy)


# ---- cache-validity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "expected"), [(None, 48), (0, 1), (1, 1), (24, 24), (168, 168), (169, 168), (255, 168), (-5, 1)]
)
def test_clamp_validity(hours: int | None, expected: int) -> None:
    assert clamp_validity(hours) == expected


@pytest.mark.parametrize("bad", [True, 1.5, "48"])
def test_clamp_validity_refuses_non_int(bad: object) -> None:
    with pytest.raises(TypeError):
        clamp_validity(bad)  # type: ignore[arg-type]


def test_expiry_is_validity_hours_after_validation() -> None:
    assert refresh.expiry(T0, 24) == T0 + 24 * HOUR
    assert refresh.expiry(T0, None) == T0 + 48 * HOUR
    assert refresh.expiry(T0, 500) == T0 + 168 * HOUR
    with pytest.raises(ValueError):
        refresh.expiry(math.nan, 24)


# ---- backoff ----------------------------------------------------------------------------------------------------


def test_default_backoff_doubles_from_30s_to_the_1h_cap() -> None:
    p = BackoffPolicy()
    assert [p.raw_delay(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert p.raw_delay(10**9) == 3600  # a huge counter neither overflows nor escapes the cap


def test_jitter_is_deterministic_and_spreads_urls() -> None:
    p = BackoffPolicy()
    assert p.delay(URL, 3) == p.delay(URL, 3)
    delays = {p.delay(f"https://mud.example.com/d{i}.json", 8) for i in range(50)}
    assert len(delays) == 50  # fifty URLs failing together retry at fifty different moments
    assert all(3600 <= d < 3600 * 1.1 for d in delays)
    assert BackoffPolicy(jitter=0).delay(URL, 3) == 120


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": 0}, {"cap_s": 10, "base_s": 20}, {"jitter": 1.0}, {"jitter": -0.1}, {"factor": 1.05, "jitter": 0.1}],
)
def test_backoff_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_record_failure_counts_and_schedules() -> None:
    first = record_failure(None, URL, "connect-failed", T0)
    assert (first.failures, first.first_failure_at, first.last_failure_at) == (1, T0, T0)
    assert T0 + 30 <= first.next_attempt_at < T0 + 33
    second = record_failure(first, URL, "tls-failed", T0 + 40)
    assert (second.failures, second.first_failure_at, second.last_failure_at) == (2, T0, T0 + 40)
    assert second.last_reason == "tls-failed"
    assert T0 + 40 + 60 <= second.next_attempt_at < T0 + 40 + 66


def test_record_failure_refuses_another_urls_record_and_bad_time() -> None:
    with pytest.raises(ValueError):
        record_failure(failure_at(T0), "https://other.example.com/x.json", "bad-status", T0)
    with pytest.raises(ValueError):
        record_failure(None, URL, "bad-status", math.inf)
    with pytest.raises(ValueError):
        FailureRecord(URL, 0, T0, T0, "x", T0)


@settings(max_examples=300, deadline=None)
@given(policy=policies, url=urls, n=st.integers(min_value=1, max_value=200))
def test_backoff_monotonic_until_cap_and_bounded(policy: BackoffPolicy, url: str, n: int) -> None:
    d_n, d_next = policy.delay(url, n), policy.delay(url, n + 1)
    assert policy.raw_delay(n) <= d_n <= policy.cap_s * (1 + policy.jitter)
    assert d_n >= policy.base_s
    if policy.raw_delay(n + 1) < policy.cap_s:
        assert d_n <= d_next


@settings(max_examples=200, deadline=None)
@given(url=urls, start=times, gaps=st.lists(st.floats(min_value=0, max_value=10_000), min_size=1, max_size=30))
def test_failure_chain_properties(url: str, start: float, gaps: list[float]) -> None:
    policy = BackoffPolicy()
    record: FailureRecord | None = None
    now = start
    for i, gap in enumerate(gaps, start=1):
        now += gap
        record = record_failure(record, url, "deadline", now, policy)
        assert record.failures == i
        assert record.first_failure_at == start + gaps[0]
        assert now + policy.base_s <= record.next_attempt_at <= now + policy.cap_s * (1 + policy.jitter)
        # While the record says wait, plan says wait: a failing URL is not retried early.
        assert plan(now, None, record).action is Action.WAIT


# ---- plan -------------------------------------------------------------------------------------------------------


def test_plan_table() -> None:
    fresh, stale = T0 + HOUR, T0 - 1
    pending, elapsed = failure_at(T0 - 10), failure_at(T0 - 100_000)
    assert plan(T0, None, None) == Plan(Action.FETCH, None, False)
    assert plan(T0, fresh, None) == Plan(Action.USE_CACHED, None, False)
    assert plan(T0, stale, None) == Plan(Action.REVALIDATE, None, True)
    assert plan(T0, fresh, pending) == Plan(Action.USE_CACHED, None, False)  # a fresh entry wins
    assert plan(T0, stale, pending) == Plan(Action.WAIT, pending.next_attempt_at, True)
    assert plan(T0, None, pending) == Plan(Action.WAIT, pending.next_attempt_at, False)
    assert plan(T0, stale, elapsed) == Plan(Action.REVALIDATE, None, True)
    assert plan(T0, None, elapsed) == Plan(Action.FETCH, None, False)


def test_expiry_boundary_is_stale() -> None:
    assert plan(T0, T0, None).action is Action.REVALIDATE
    assert plan(T0 - 0.001, T0, None).action is Action.USE_CACHED


def test_clock_stepped_back_neither_trusts_longer_nor_freezes() -> None:
    # An expiry more than 168 h ahead cannot come from a real fetch: revalidate rather than trust it.
    assert plan(T0, T0 + 200 * HOUR, None) == Plan(Action.REVALIDATE, None, True)
    # A failure "in the future" (the clock went back a day): the backoff counts as elapsed.
    assert plan(T0, None, failure_at(T0 + 86_400)).action is Action.FETCH


def test_plan_refuses_non_finite_times() -> None:
    with pytest.raises(ValueError):
        plan(math.nan, None, None)
    with pytest.raises(ValueError):
        plan(T0, math.nan, None)


@settings(max_examples=500, deadline=None)
@given(
    now=times,
    expiry=st.none() | times,
    failure=st.none() | st.builds(failure_at, times),
)
def test_plan_properties(now: float, expiry: float | None, failure: FailureRecord | None) -> None:
    p = plan(now, expiry, failure)
    if expiry is not None and now >= expiry:
        assert p.action is not Action.USE_CACHED  # never serve an expired entry as fresh
    if expiry is None:
        assert p.action in (Action.FETCH, Action.WAIT)
        assert not p.has_stale_entry
    if p.action is Action.USE_CACHED:
        assert expiry is not None and now < expiry and p.not_before is None
    if p.action is Action.WAIT:
        assert failure is not None and p.not_before == failure.next_attempt_at and now < p.not_before
        assert p.has_stale_entry == (expiry is not None)
    else:
        assert p.not_before is None
    if p.action is Action.REVALIDATE:
        assert p.has_stale_entry
    if failure is None:
        assert p.action is not Action.WAIT


# ---- outcomes ---------------------------------------------------------------------------------------------------


def test_only_failures_that_leave_the_device_short_alert() -> None:
    assert {o for o in Outcome if alerts(o)} == {Outcome.KEPT_LAST, Outcome.FIRST_CONTACT_FAILED}


def test_failed_outcome_keeps_last_or_quarantines() -> None:
    assert failed_outcome(True) is Outcome.KEPT_LAST
    assert failed_outcome(False) is Outcome.FIRST_CONTACT_FAILED


def test_outcome_table_documents_every_outcome() -> None:
    doc = Outcome.__doc__ or ""
    assert all(o.name in doc for o in Outcome)
