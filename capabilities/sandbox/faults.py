"""What the sandbox does to requests on purpose: random faults, scripted failures, rate limits.

Every switch applies to an endpoint *group*: ``token`` (``/oauth/token``), ``platform``
(``/v1/...`` and ``/platform/v2/...``) or ``events`` (``/v2/events``, ``/v2/bulkevents``).
Random faults draw from one ``random.Random`` per group seeded from the sandbox seed, so
the same seed and the same request sequence give the same faults.
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

GROUPS = ("token", "platform", "events")

# Effects a fault can have on one request.
STATUS = "status"  # answer with an error status instead of the real answer
DROP = "drop"  # close the connection without answering
TRUNCATE = "truncate"  # send the head and half the body (or half the status line), then close
GARBAGE = "garbage"  # keep the status, replace the body with HTML
EMPTY = "empty"  # keep the status, send no body (scripted failures only)
RESET = "reset"  # abort the connection with a TCP reset: before reading the body, or after the effect
EFFECTS = (STATUS, DROP, TRUNCATE, GARBAGE, RESET, EMPTY)

# Default X-mp-rate-limit-exceeded value per group.
DEFAULT_SCOPES = {"token": "org", "platform": "account", "events": "app"}


def _rate(_instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


_SECONDS = attrs.validators.optional([attrs.validators.instance_of(int), attrs.validators.ge(0)])


def _statuses(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,)
    statuses = tuple(int(status) for status in value)
    if not statuses or any(not 400 <= status <= 599 for status in statuses):
        raise ValueError(f"statuses must be HTTP error codes (400-599), got {list(statuses)!r}")
    return statuses


@attrs.frozen(kw_only=True)
class FaultConfig:
    """Random faults for one endpoint group.

    Each request draws one number: below ``error_rate`` it gets one of ``statuses``, in the
    next ``drop_rate`` its connection is closed unanswered, then ``truncate_rate`` (half
    the answer, then close), then ``garbage_rate`` (an HTML body instead of JSON), then
    ``reset_rate`` (the connection is aborted with a TCP reset). The rates must add up to
    at most 1. ``latency_ms`` delays every request of the group. Errors, drops and resets
    happen before the request takes effect (a reset before its body is even read), or
    after it when ``after`` is true (the write is done but the client cannot know);
    truncation and garbage always spoil a real answer.
    """

    error_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    statuses: tuple[int, ...] = attrs.field(default=(500, 502, 503, 504), converter=_statuses)
    latency_ms: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0))
    drop_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    truncate_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    garbage_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    reset_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    after: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.error_rate + self.drop_rate + self.truncate_rate + self.garbage_rate + self.reset_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + drop_rate + truncate_rate + garbage_rate + reset_rate must not exceed 1")

    @property
    def draws(self) -> bool:
        return bool(self.error_rate or self.drop_rate or self.truncate_rate or self.garbage_rate or self.reset_rate)

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["statuses"] = list(self.statuses)
        return out


@attrs.frozen(kw_only=True)
class Failure:
    """A scripted failure: the next ``count`` requests to ``target`` get ``effect``.

    ``target`` is an endpoint name (``createAccount``, ``uploadEvents`` ...) or a group.
    With ``after=True`` the request is processed first and only its answer is spoiled,
    which is how a test simulates a write whose outcome the client cannot know. ``skip``
    lets that many requests to ``target`` pass untouched first (fail the second upload of
    a run, not the first). ``match`` limits the failure to requests whose body contains
    that text (a batch's ``source_request_id`` or a marker), so it hits the same request
    whatever order concurrent requests arrive in; such a failure is chosen once the body
    is read (a ``reset`` then aborts the connection after reading it, unanswered alike).
    """

    target: str
    count: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    skip: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    status: int = attrs.field(default=503, converter=int, validator=[attrs.validators.ge(400), attrs.validators.le(599)])
    effect: str = attrs.field(default=STATUS, validator=attrs.validators.in_(EFFECTS))
    after: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    retry_after: int | None = attrs.field(default=None, validator=_SECONDS)
    match: str | None = attrs.field(default=None, validator=attrs.validators.optional(
        [attrs.validators.instance_of(str), attrs.validators.min_len(1)]))

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Injection:
    """The fault chosen for one request."""

    effect: str
    status: int = 503
    after: bool = False
    retry_after: int | None = None


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``limit`` requests per fixed window of ``window_seconds`` for one group; for the
    ``events`` group (and its endpoints) ``limit`` counts batches, as mParticle's does.

    Requests over the budget get 429 with ``Retry-After`` (``retry_after`` if set, else
    the whole seconds left in the window, at least 1) and ``X-mp-rate-limit-exceeded:
    <scope>``; rejected requests do not use up the budget.
    """

    limit: int = attrs.field(validator=attrs.validators.ge(1))
    window_seconds: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0))
    retry_after: int | None = attrs.field(default=None, validator=_SECONDS)
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class RateWindow:
    """The running count of one group's rate limit."""

    def __init__(self, rule: RateLimit, scope: str):
        self.rule = rule
        self.scope = scope
        self.start = -math.inf
        self.used = 0

    def hit(self, now: float, cost: int = 1) -> int | None:
        """Count ``cost`` units (requests, or batches for the Events API); return None when
        allowed, else the Retry-After seconds. A request over the budget uses none of it; one
        that costs more than the whole budget is always refused."""
        if now - self.start >= self.rule.window_seconds:
            self.start, self.used = now, 0
        if self.used + cost > self.rule.limit:
            if self.rule.retry_after is not None:
                return self.rule.retry_after
            return max(1, math.ceil(self.start + self.rule.window_seconds - now))
        self.used += cost
        return None

    @property
    def percent_used(self) -> int:
        return min(100, (100 * self.used) // self.rule.limit)


class FaultPlan:
    """Random fault configs and scripted failures; not thread-safe (the caller locks)."""

    def __init__(self, seed: int):
        self._seed = seed
        self._rngs: dict[str, random.Random] = {}
        self.configs: dict[str, FaultConfig] = {}
        self.failures: list[list[Any]] = []  # [Failure, remaining count, requests to skip first]

    def draw(self, endpoint: str, group: str, body: bytes | None = None) -> tuple[float, Injection | None]:
        """Pick what happens to one request: (latency in seconds, injection or None).

        ``body`` None (only the head is read) leaves out the failures that ``match`` a body."""
        target = endpoint if endpoint in self.configs else group
        config = self.configs.get(target)
        latency = config.latency_ms / 1000.0 if config else 0.0
        scripted = self._scripted(endpoint, group, body, matched_only=False)
        if scripted:
            return latency, scripted
        if config is None or not config.draws:
            return latency, None
        rng = self._rngs.get(target)
        if rng is None:  # one generator per target, so a seed gives the same faults every run
            rng = self._rngs[target] = random.Random(f"{self._seed}:{target}")
        roll = rng.random()
        if roll < config.error_rate:
            return latency, Injection(STATUS, rng.choice(config.statuses), config.after)
        roll -= config.error_rate
        if roll < config.drop_rate:
            return latency, Injection(DROP, after=config.after)
        roll -= config.drop_rate
        if roll < config.truncate_rate:
            return latency, Injection(TRUNCATE, after=True)
        roll -= config.truncate_rate
        if roll < config.garbage_rate:
            return latency, Injection(GARBAGE, after=True)
        roll -= config.garbage_rate
        if roll < config.reset_rate:
            return latency, Injection(RESET, after=config.after)
        return latency, None

    def matched(self, endpoint: str, group: str, body: bytes) -> Injection | None:
        """The scripted failure of a request whose head was drawn already, among those that
        ``match`` its body (None when none does)."""
        return self._scripted(endpoint, group, body, matched_only=True) or None

    def _scripted(self, endpoint: str, group: str, body: bytes | None, matched_only: bool):
        """The first scripted failure that applies: an ``Injection``; ``False`` when one
        lets this request pass (``skip``); None when none applies."""
        for entry in self.failures:
            failure, remaining = entry[:2]
            if failure.target not in (endpoint, group):
                continue
            if failure.match is not None:
                if body is None or failure.match.encode("utf-8") not in body:
                    continue
            elif matched_only:
                continue
            if entry[2]:  # requests still to let through before this failure starts
                entry[2] -= 1
                return False
            if remaining <= 1:
                self.failures.remove(entry)
            else:
                entry[1] = remaining - 1
            return Injection(failure.effect, failure.status, failure.after, failure.retry_after)
        return None
