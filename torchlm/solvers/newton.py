"""One Newton driver in parts (after scikit-learn's NewtonSolver and glum's IRLS split): a :class:`Problem` gives the
objective and proposes a :class:`Step` (Newton on a Hessian, a weighted-least-squares solve), a :class:`StepControl`
(line search, R's step halving) takes it, a :class:`ConvergenceTest` says when to stop, :func:`solve` loops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, cast, runtime_checkable

import torch

from torchlm.errors import FitError, TorchlmError


class Reason:
    """Why :func:`solve` stopped (``Result.reason``, ``Verdict.reason``)."""

    STEP = "step below tolerance"
    CHANGE = "relative change below epsilon"
    POLISHED = "remaining error at rounding level"
    FLOOR = "floating-point floor"
    DIVERGED = "diverged"
    MAXIT = "iteration limit"
    NO_STEP = "no step proposed"
    NO_POINT = "no acceptable point"


# --- what a problem supplies -----------------------------------------------------------------------
@dataclass
class Evaluation:
    """The objective at a point: ``value`` (minimised; non-finite = invalid point), ``valid`` (False outside the
    model's domain, R's valideta/validmu), ``aux`` (the problem's by-products there, e.g. eta and mu, handed back
    in :class:`State`), ``rounding`` (absolute rounding level of the value when above eps |value|, e.g. eps times
    the sum of |terms|) and ``error`` (the exception the objective raised there)."""

    value: float
    valid: bool = True
    aux: Any = None
    rounding: float = 0.0
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the point can be accepted: valid, no exception and a finite value."""
        return self.valid and self.error is None and math.isfinite(self.value)

    @property
    def fault(self) -> str | None:
        """What is wrong with the point: "error", "non-finite", "invalid", or None when it is ok."""
        if self.error is not None:
            return "error"
        if not math.isfinite(self.value):
            return "non-finite"
        return None if self.valid else "invalid"


@dataclass
class Step:
    """A proposed step: ``direction`` (the proposed point is x + direction), ``newton`` (a Newton step, quadratically
    convergent, rather than Fisher scoring, gradient or curvature-flipped), ``slope`` (g . direction, for the Armijo
    test and the floor rule), ``size`` (of the full step in the problem's own scale, mle: the largest move in
    standard errors; None: the relative change max|direction| / max|x + direction|), ``data`` (the problem's
    own record, handed back as ``state.step.data``) and ``point`` (the full step's point itself when the problem
    computes it, e.g. a least-squares solve's coefficients: the full step then lands on it bit for bit)."""

    direction: torch.Tensor
    newton: bool = True
    slope: float | None = None
    size: float | None = None
    data: Any = None
    point: torch.Tensor | None = None


def _at(step: Step, x: torch.Tensor, fraction: float = 1.0) -> torch.Tensor:
    return step.point if fraction == 1.0 and step.point is not None else x + fraction * step.direction


@runtime_checkable
class Problem(Protocol):
    """What a model supplies to :func:`solve`."""

    def evaluate(self, x: torch.Tensor) -> Evaluation | float:
        """The objective at ``x``.

        Parameters
        ----------
        x : the point.

        Returns
        -------
        A float, or an :class:`Evaluation` with validity and by-products (an exception marks x invalid).
        """

    def propose(self, state: State) -> Step | None:
        """The next step from ``state``.

        Parameters
        ----------
        state : the current :class:`State` (``state.aux`` has what ``evaluate`` left there).

        Returns
        -------
        The :class:`Step`, or None when none can be computed (non-finite derivatives).
        """


def _evaluate(problem: Problem, x: torch.Tensor) -> Evaluation:
    try:
        out = problem.evaluate(x)
    except TorchlmError:  # the package's own errors (glm's "0s in V(mu)") are errors, not invalid points
        raise
    except Exception as e:  # a user's objective may reject a point outside its support in any way
        return Evaluation(math.nan, valid=False, error=e)
    return out if isinstance(out, Evaluation) else Evaluation(float(out))


# --- the state ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """One accepted iteration: value, size (problem's scale), relative and largest change, fraction taken, Newton?"""

    value: float
    size: float
    relative: float
    largest: float
    fraction: float
    newton: bool


@dataclass
class State:
    """Where the iteration is: ``x``, ``value``, ``aux``, ``rounding`` (the current point and its evaluation),
    ``iteration`` (done), ``anchored`` (whether x is a point step control may shorten towards; False for glm's
    first iteration, which starts from means rather than coefficients), ``previous_value`` (before the last
    step), ``step`` and ``trial`` (the last step and how it was taken), ``change`` (x minus the previous x),
    ``size`` (of the change in the problem's scale), ``relative`` (max|change| / max|x|), ``history`` (a
    :class:`Move` per accepted iteration)."""

    x: torch.Tensor
    value: float
    aux: Any = None
    rounding: float = 0.0
    iteration: int = 0
    anchored: bool = True
    previous_value: float | None = None
    step: Step | None = None
    trial: Trial | None = None
    change: torch.Tensor | None = None
    size: float = math.inf
    relative: float = math.inf
    history: list[Move] = field(default_factory=list)


def _relative_change(change: torch.Tensor, x: torch.Tensor) -> float:
    # glm's measure of a coefficient change: max|change| / max|x|, the denominator kept above 1e-300
    if change.numel() == 0:
        return 0.0
    return float(change.abs().max()) / max(float(x.abs().max()), 1e-300)


def _size(step: Step, x_new: torch.Tensor, fraction: float) -> float:
    return fraction * step.size if step.size is not None else _relative_change(fraction * step.direction, x_new)


def _advance(state: State, step: Step, trial: Trial, iteration: int) -> State:
    x, ev = cast(torch.Tensor, trial.x), cast(Evaluation, trial.evaluation)  # only found trials advance: both set
    change = x - state.x
    size, relative = _size(step, x, trial.fraction), _relative_change(change, x)
    largest = float(change.abs().max()) if change.numel() else 0.0
    move = Move(ev.value, size, relative, largest, trial.fraction, step.newton)
    return State(x=x, value=ev.value, aux=ev.aux, rounding=ev.rounding, iteration=iteration, anchored=True,
                 previous_value=state.value, step=step, trial=trial, change=change, size=size, relative=relative,
                 history=state.history + [move])


# --- step control ----------------------------------------------------------------------------------
@dataclass
class Trial:
    """What step control found: ``found`` (a point was accepted), ``x`` and ``evaluation`` (the accepted point, or
    the last one tried), ``fraction`` (of the step taken), ``shortened`` (times the step was shortened),
    ``rejected`` (why each rejected point was: "error", "non-finite", "invalid", "no decrease"), ``message``
    (why none was found)."""

    found: bool
    x: torch.Tensor | None = None
    evaluation: Evaluation | None = None
    fraction: float = 1.0
    shortened: int = 0
    rejected: tuple[str, ...] = ()
    message: str = ""


class StepControl:
    """How much of a proposed step to take."""

    def search(self, problem: Problem, state: State, step: Step) -> Trial:
        """An acceptable point along ``step`` from ``state``.

        Parameters
        ----------
        problem, state, step : the problem, the current state and the proposed step.

        Returns
        -------
        Trial with the accepted point, or ``found=False``.
        """
        raise NotImplementedError


@dataclass
class Backtracking(StepControl):
    """Backtracking line search: the first fraction 1, shrink, shrink^2, ... (down to ``min_fraction``) whose point
    is valid with the Armijo decrease f(x + a d) <= f(x) + armijo a slope (no increase when the slope is None)."""

    armijo: float = 1e-4
    shrink: float = 0.5
    min_fraction: float = 2.0**-40

    def search(self, problem: Problem, state: State, step: Step) -> Trial:
        """The first fraction of the step with a valid point and the Armijo decrease.

        Parameters
        ----------
        problem, state, step : the problem, the current state and the proposed step.

        Returns
        -------
        Trial with the accepted point, or ``found=False`` below ``min_fraction``.
        """
        slope = step.slope if step.slope is not None else 0.0
        alpha = 1.0
        rejected: list[str] = []
        while alpha >= self.min_fraction:
            x = _at(step, state.x, alpha)
            ev = _evaluate(problem, x)
            if ev.ok and ev.value <= state.value + self.armijo * alpha * slope:
                return Trial(True, x, ev, alpha, len(rejected), tuple(rejected))
            rejected.append(ev.fault or "no decrease")
            alpha *= self.shrink
        return Trial(False, None, None, alpha / self.shrink, len(rejected), tuple(rejected),
                     f"no fraction of the step down to {self.min_fraction:.3g} lowered the objective")


@dataclass
class RHalving(StepControl):
    """R's glm.fit: the full step, halved towards the previous point, x = (x + previous) / 2 as R computes it, while
    the value is non-finite or the point invalid, at most ``max_halvings`` times. With no previous point
    (``state.anchored`` False) nothing can be halved towards."""

    max_halvings: int = 25

    def search(self, problem: Problem, state: State, step: Step) -> Trial:
        """The full step, or its first halving towards ``state.x`` with a valid point.

        Parameters
        ----------
        problem, state, step : the problem, the current state (``state.x`` is R's coefold) and the proposed step.

        Returns
        -------
        Trial (``rejected``: R warns "divergence" for "non-finite", "out of bounds" for "invalid"), or found=False.
        """
        x = _at(step, state.x)
        ev = _evaluate(problem, x)
        rejected: list[str] = []
        for k in range(self.max_halvings + 1):
            if ev.ok:
                return Trial(True, x, ev, 0.5**k, k, tuple(rejected))
            rejected.append(cast(str, ev.fault))  # a point that is not ok always has a fault
            if not state.anchored:
                return Trial(False, x, ev, 1.0, 0, tuple(rejected),
                             "no valid point has been found and there is no previous point to halve towards")
            if k < self.max_halvings:
                x = (x + state.x) / 2
                ev = _evaluate(problem, x)
        return Trial(False, x, ev, 0.5**self.max_halvings, self.max_halvings, tuple(rejected),
                     f"cannot correct the step size: still {rejected[-1]} after {self.max_halvings} halvings")


@dataclass
class FullStep(RHalving):
    """The full step when its point is acceptable, else none (glm's polish then keeps R's point): no halving."""

    max_halvings: int = 0


# --- convergence tests -----------------------------------------------------------------------------
@dataclass
class Verdict:
    """A convergence test's decision to stop: ``converged``, ``reason`` (a :class:`Reason`), ``message``."""

    converged: bool
    reason: str
    message: str = ""


class Stage:
    """Where in an iteration a :class:`ConvergenceTest` is consulted."""

    PROPOSED = "proposed"  # a step was proposed; before step control (a converged verdict takes it if no worse)
    ACCEPTED = "accepted"  # step control took the step; the state is the one after it
    STALLED = "stalled"    # step control found no acceptable point along the step


class ConvergenceTest:
    """When to stop: :meth:`check` returns a :class:`Verdict` to stop, or None to go on."""

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """The test's verdict at one stage of an iteration.

        Parameters
        ----------
        stage : a :class:`Stage`.
        state : the current state (for ACCEPTED the state after the step: ``state.trial``, ``state.history``).
        step : the proposed step (for ACCEPTED the step taken).
        trial : what step control did (None at PROPOSED).

        Returns
        -------
        Verdict, or None to go on.
        """
        return None


class FirstOf(ConvergenceTest):
    """Several tests: the first that stops decides."""

    def __init__(self, *tests: ConvergenceTest) -> None:
        self.tests = tests

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """The first verdict of the tests, in order.

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        return next((v for t in self.tests if (v := t.check(stage, state, step, trial)) is not None), None)


def _eps(x: torch.Tensor) -> float:
    return torch.finfo(x.dtype if x.is_floating_point() else torch.float64).eps


@dataclass
class StepBelow(ConvergenceTest):
    """Converged when the proposed step is at most ``tol`` in the problem's scale (mle: every parameter moves by at
    most tol standard errors).

    A step can be small in standard errors only because the curvature vanishes (exp(-a), separation): when
    the last ``moving_steps`` steps were full Newton steps whose relative change did not shrink (each at
    least ``moving`` times the one before), the point is heading to infinity and the verdict is divergence.
    """

    tol: float
    moving: float = 0.9
    moving_steps: int = 3

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At PROPOSED: converged (or diverged, see the class) when the step is at most ``tol``.

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        if stage != Stage.PROPOSED:
            return None
        size = _size(step, _at(step, state.x), 1.0)
        if not size <= self.tol:
            return None
        relative = _relative_change(step.direction, _at(step, state.x))
        recent = state.history[-self.moving_steps:]
        if (step.newton and len(recent) == self.moving_steps and relative > 1e8 * _eps(state.x)
                and all(m.newton and m.fraction == 1.0 for m in recent)):
            rel = [m.relative for m in recent] + [relative]
            if all(b >= self.moving * a for a, b in zip(rel, rel[1:])):
                return Verdict(False, Reason.DIVERGED,
                               f"the step is {size:.3g} in the problem's scale only because the curvature vanishes: "
                               f"the point keeps moving by a relative {relative:.3g} per iteration (the optimum is "
                               "at infinity)")
        return Verdict(True, Reason.STEP, f"the step is {size:.3g} in the problem's scale (tolerance {self.tol:g})")


@dataclass
class RelativeChange(ConvergenceTest):
    """R's glm.fit rule: converged when |value - previous| / (|value| + 0.1) < epsilon."""

    epsilon: float = 1e-8

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At ACCEPTED: converged when the step changed the value by a relative amount below ``epsilon``.

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        if stage != Stage.ACCEPTED or state.previous_value is None:
            return None
        change = abs(state.value - state.previous_value) / (abs(state.value) + 0.1)
        if change < self.epsilon:
            return Verdict(True, Reason.CHANGE, f"relative change {change:.3g} < epsilon {self.epsilon:g}")
        return None


@dataclass
class PolishRule(ConvergenceTest):
    """glm's polish: converged when the remaining error estimated from successive relative changes is at rounding.

    With r = change / previous change, the remaining error is change r^2 after a Newton step, change r / (1 - r)
    after a linearly convergent one; converged when it is below eps, the change below 4 eps, or the changes stop
    shrinking below 1e4 eps. Diverged (the optimum is at infinity: separation, a rate at zero) when from the
    third step on a change above 1e8 eps is more than 0.9 of the one before. ``previous_change``: the relative
    change of the last step before the polish (math.inf if unknown).
    """

    previous_change: float = math.inf

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At ACCEPTED: the polish verdict (see the class) from ``state.relative`` and ``step.newton``.

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        if stage != Stage.ACCEPTED:
            return None
        change, eps, k = state.relative, _eps(state.x), state.iteration
        prev = state.history[-2].relative if len(state.history) >= 2 else self.previous_change
        if change > 1e8 * eps and k >= 3 and change > 0.9 * prev:
            return Verdict(False, Reason.DIVERGED, f"the changes stopped shrinking at a relative {change:.3g}: "
                           "the optimum is at infinity")
        r = change / prev if prev > 0 else 1.0
        remaining = math.inf if r >= 1 else (change * r * r if step.newton else change * r / (1 - r))
        if change <= 4 * eps or remaining <= eps or (change < 1e4 * eps and r >= 1):
            return Verdict(True, Reason.POLISHED, f"relative change {change:.3g}, remaining error {remaining:.3g}")
        return None


@dataclass
class FloatingPointFloor(ConvergenceTest):
    """Converged when no step lowers the value in floating point and the predicted decrease |g . d| (for Newton the
    decrement g' H^-1 g) is within ``ulps`` times the value's rounding level, eps |value| or the problem's
    ``Evaluation.rounding`` if larger: the objective cannot resolve a better point. "No step lowers it": the
    line search found no acceptable fraction, or the last ``times`` steps taken left the value where it was
    (one such step alone is not enough: the gradient may still be accurate where the value is not)."""

    ulps: float = 8.0
    times: int = 2

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At STALLED, or ACCEPTED after steps that did not lower the value: converged at the rounding level.

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        values = [m.value for m in state.history[-self.times - 1:]]
        if stage == Stage.ACCEPTED and len(values) > self.times and all(b >= a for a, b in zip(values, values[1:])):
            value = cast(float, state.previous_value)  # set by every accepted move, and history has some
        elif stage == Stage.STALLED:
            value = state.value
        else:
            return None
        if step.slope is None or abs(step.slope) > self.ulps * max(_eps(state.x) * abs(value), state.rounding):
            return None
        return Verdict(True, Reason.FLOOR, f"the predicted decrease {abs(step.slope):.3g} is at the rounding level "
                       f"of the objective ({value:.17g}): no step lowers it in floating point")


@dataclass
class Divergence(ConvergenceTest):
    """Diverged when each of the last ``steps`` steps was taken in full, ``growth`` times longer than the one before,
    while the value fell every time: the objective decreases without bound (nll = -a, -log(a), -a^2)."""

    growth: float = 1.5
    steps: int = 10

    def check(self, stage: str, state: State, step: Step, trial: Trial | None = None) -> Verdict | None:
        """At ACCEPTED: diverged when the steps keep growing while the value falls (see the class).

        Parameters
        ----------
        stage, state, step, trial : as in :meth:`ConvergenceTest.check`.

        Returns
        -------
        Verdict, or None.
        """
        recent = state.history[-(self.steps + 1):]
        if stage != Stage.ACCEPTED or len(recent) <= self.steps:
            return None
        if all(b.fraction == 1.0 and b.largest >= self.growth * a.largest and b.value < a.value
               for a, b in zip(recent, recent[1:])):
            return Verdict(False, Reason.DIVERGED,
                           f"the last {self.steps} steps each grew by at least {self.growth:g} times while the "
                           f"objective kept falling (now {state.value:.6g}): it has no minimum")
        return None


# --- the driver ----------------------------------------------------------------------------------
@dataclass
class Result:
    """What :func:`solve` ended with: ``x``, ``value`` (``state.aux`` has the problem's by-products there),
    ``iterations`` (the one in progress when it stopped counts), ``converged``, ``reason`` (a :class:`Reason`),
    ``message``, ``state`` and ``start`` (final and initial :class:`State`), ``shortened`` (iterations in which
    step control shortened the step: R's "boundary")."""

    x: torch.Tensor
    value: float
    iterations: int
    converged: bool
    reason: str
    message: str
    state: State
    start: State
    shortened: int = 0


def _take_if_no_worse(problem: Problem, state: State, step: Step, iteration: int) -> State:
    # taken unless the value rises beyond its rounding level: the gradient resolves the optimum better than the value
    x = _at(step, state.x)
    ev = _evaluate(problem, x)
    if ev.ok and ev.value <= state.value + 8 * max(_eps(state.x) * abs(state.value), state.rounding):
        return _advance(state, step, Trial(True, x, ev), iteration)
    return replace(state, iteration=iteration)


def solve(problem: Problem, x0: torch.Tensor, *, control: StepControl, test: ConvergenceTest, maxit: int,
          initial: Evaluation | None = None, anchored: bool = True,
          callback: Callable[[State], None] | None = None) -> Result:
    """Minimise the problem's objective from ``x0``: propose a step, let step control take it, test convergence.

    Parameters
    ----------
    problem : the :class:`Problem`.
    x0 : the starting point.
    control : a :class:`StepControl` (:class:`Backtracking`, :class:`RHalving`, :class:`FullStep`).
    test : a :class:`ConvergenceTest` (several with :class:`FirstOf`).
    maxit : most iterations.
    initial : the evaluation at the start when the problem has it (glm: the deviance at the starting means);
        by default ``problem.evaluate(x0)``.
    anchored : whether x0 is a point step control may shorten steps towards (glm without start=: no).
    callback : called with the state after every accepted step (glm: R's warnings when a step was halved).

    Returns
    -------
    Result: final point, value, iterations, converged, reason and message.
    """
    ev = initial if initial is not None else _evaluate(problem, x0)
    if not ev.ok:
        raise FitError(f"the objective at the starting point is {ev.fault}"
                       + (f" ({type(ev.error).__name__}: {ev.error})" if ev.error is not None else "")) from ev.error
    state = start = State(x=x0, value=ev.value, aux=ev.aux, rounding=ev.rounding, anchored=anchored)
    shortened = 0

    def stop(st: State, iterations: int, verdict: Verdict) -> Result:
        return Result(st.x, st.value, iterations, verdict.converged, verdict.reason, verdict.message, st, start,
                      shortened)

    for it in range(1, maxit + 1):
        step = problem.propose(state)
        if step is None:
            return stop(state, it, Verdict(False, Reason.NO_STEP, "the problem could not propose a step"))
        verdict = test.check(Stage.PROPOSED, state, step)
        if verdict is not None:
            return stop(_take_if_no_worse(problem, state, step, it) if verdict.converged else state, it, verdict)
        trial = control.search(problem, state, step)
        if not trial.found:
            verdict = test.check(Stage.STALLED, state, step, trial)
            return stop(state, it, verdict or Verdict(False, Reason.NO_POINT, trial.message))
        shortened += trial.shortened > 0
        state = _advance(state, step, trial, it)
        if callback is not None:
            callback(state)
        verdict = test.check(Stage.ACCEPTED, state, step, trial)
        if verdict is not None:
            return stop(state, it, verdict)
    return stop(state, maxit, Verdict(False, Reason.MAXIT, f"no convergence in {maxit} iterations"))
