"""A GLM on a row-block source: the passes IRLS makes over the data (R's glm.fit, one block of rows at a time).

The design is never held whole: each pass reads the source's blocks and keeps only per-row vectors
(linear predictor, means) and p x p sums. One pass evaluates the linear predictor, the means, the
deviance and whether the point is valid at some coefficients, and, in the same pass, accumulates the
normal equations of the next step (Fisher scoring: X'WX and X'Wr; Newton with the observed
information: X' diag(d2) X and -X'd1). The QR step (rank detection; the covariance at the estimate)
reads the blocks through lm's QR solver.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from torchlm import threads
from torchlm.errors import DataError, OptionError, warn
from torchlm.frame.factor_block import FactorDesign
from torchlm.models.families import Family
from torchlm.solvers.autograd import quiet
from torchlm.solvers.factor_passes import FactorTerms, factor_pass
from torchlm.solvers.least_squares import LinearResidual, QRFit, condition_estimate, qr_solve
from torchlm.solvers.newton import (
    Evaluation,
    FullStep,
    PolishRule,
    Reason,
    RelativeChange,
    RHalving,
    State,
    Step,
    solve,
)
from torchlm.sources.row_blocks import RowBlockSource


@dataclass
class Pass:
    """What one pass over the blocks found at some coefficients.

    Attributes
    ----------
    eta, mu : (n,) linear predictor (offset included) and means.
    deviance : sum of the family's deviance residuals (inf when not finite).
    valid : eta and mu are inside the link's and the family's ranges and the deviance is finite.
    H, g : the accumulated normal equations of the next step over the estimable columns (None when
        not asked for, or the point is not valid).
    """

    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    valid: bool
    H: torch.Tensor | None = None
    g: torch.Tensor | None = None


@dataclass
class _BlockPass:
    """One block's part of a pass (see GLMPasses._block)."""

    rows: slice
    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    valid: bool
    H: torch.Tensor | None
    g: torch.Tensor | None
    error: DataError | None


@dataclass
class _Sums:
    """A pass's running totals over the blocks, in block order."""

    H: torch.Tensor | None
    g: torch.Tensor | None
    deviance: float = 0.0
    valid: bool = True
    error: DataError | None = None


class GLMPasses:
    """The passes of IRLS for one GLM: a source, the per-row vectors, the family, and fixed coefficients.

    Parameters
    ----------
    source : the design's row blocks.
    y, weights, offset : (n,) tensors on the fit's device (after the family's initialize).
    family : the GLM family (its link included).
    columns : design columns whose coefficients are estimated (default all).
    fixed : {design column: value} coefficients held fixed (their columns enter the offset), as
        profile likelihood needs.
    """

    def __init__(self, source: RowBlockSource, y: torch.Tensor, weights: torch.Tensor, offset: torch.Tensor,
                 family: Family, *, columns: list[int] | None = None, fixed: dict[int, float] | None = None):
        self.source, self.family, self.link = source, family, family.link
        self.y, self.weights = y, weights
        self.columns = list(range(len(source.names))) if columns is None else list(columns)
        self.device, self.dtype = y.device, y.dtype
        self.offset = offset if not fixed else offset + self._fixed_part(dict(fixed))
        self.positive = weights > 0
        self.all_positive = bool(self.positive.all())
        design = getattr(source, "design", None)  # a factor kept as codes: passes from its structure
        self._factor = FactorTerms.of(design, self.device, self.dtype) if isinstance(design, FactorDesign) else None

    def _fixed_part(self, fixed: dict[int, float]) -> torch.Tensor:
        """sum_j value_j x_j over the fixed coefficients' columns: they enter as an offset (one pass)."""
        cols = list(fixed)
        values = torch.tensor([fixed[j] for j in cols], dtype=self.dtype, device=self.device)
        out = torch.empty_like(self.y)
        for blk in self.source.blocks(columns=cols, device=self.device, dtype=self.dtype):
            out[blk.rows] = blk.X @ values
        return out

    @property
    def p(self) -> int:
        """Number of estimated coefficients."""
        return len(self.columns)

    def blocks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """(rows, X of the estimated columns) for each block of the source.

        Yields
        ------
        (rows slice, X block) pairs.
        """
        for blk in self.source.blocks(columns=self.columns, device=self.device, dtype=self.dtype):
            yield blk.rows, blk.X

    def working(self, eta: torch.Tensor, mu: torch.Tensor,
                rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """R's square roots of the working weights and working residuals (y - mu) / mu'(eta), 0 off R's good rows.

        Returns
        -------
        (sqrt of the working weights, working residuals), each like eta.
        """
        fam, link = self.family, self.link
        y, w, positive = self.y[rows], self.weights[rows], self.positive[rows]
        var = fam.variance(mu)
        v = var if self.all_positive else var[positive]
        if bool(torch.isnan(v).any()):
            raise DataError("NAs in V(mu) during the fit")
        if bool((v == 0).any()):
            raise DataError("0s in V(mu) during the fit: fitted values reached the edge of the family's range")
        me = link.mu_eta(eta)
        good = positive & (me != 0)
        if self.all_positive and bool(good.all()):
            # every row is informative (the usual case): the masked expressions below, without their passes
            return _safe_sqrt_weights(w, me, var), (y - mu) / me
        if rows == slice(None) and not bool(good.any()):
            raise DataError("no observations informative at iteration (all weights or d mu / d eta are zero)")
        zero = torch.zeros_like(eta)
        rw = torch.where(good, (y - mu) / torch.where(good, me, torch.ones_like(me)), zero)
        sw = torch.where(good, _safe_sqrt_weights(w, me, torch.where(good, var, torch.ones_like(var))), zero)
        return sw, rw

    def _newton_terms(self, eta: torch.Tensor, rows: slice):
        """First and second derivatives in eta of half the deviance, row by row (autograd: jvp of grad with ones)."""
        y, w, link, fam = self.y[rows], self.weights[rows], self.link, self.family

        def nll(e):
            return 0.5 * fam.dev_resids(y, link.linkinv(e), w).sum()

        return quiet(torch.func.jvp)(torch.func.grad(nll), (eta,), (torch.ones_like(eta),))

    def _block(self, item: tuple[slice, torch.Tensor], coef: torch.Tensor, want: str | None,
               cols: torch.Tensor | None) -> _BlockPass:
        """One block's share of a pass: its eta, mu, deviance, validity and normal equations (run on a pool thread)."""
        rows, X = item
        e = X @ coef + self.offset[rows]
        m = self.link.linkinv(e)
        dev = float(self.family.dev_resids(self.y[rows], m, self.weights[rows]).sum())
        valid = self.link.valideta(e) and self.family.validmu(m)
        H = g = error = None
        if want and valid and math.isfinite(dev):
            Xe = X if cols is None else X.index_select(1, cols)
            try:
                if want == "fisher":
                    sw, rw = self.working(e, m, rows)
                    h, v = sw * sw, sw * sw * rw
                else:
                    d1, h = self._newton_terms(e, rows)
                    v = -d1
            except DataError as exc:  # an error only if the whole point turns out valid (see at())
                error = exc
            else:
                g = Xe.T @ v
                H = (Xe * h[:, None]).T @ Xe
        return _BlockPass(rows, e, m, dev, bool(valid), H, g, error)

    def at(self, coef: torch.Tensor, want: str | None = None, est: list[int] | None = None) -> Pass:
        """One pass at ``coef``: eta, mu, deviance and validity; with ``want`` the next step's normal equations.

        The blocks' work runs on torchlm.threads' chunk pool (one intra-op thread each) and is
        combined here in block order, so the sums are the same for any number of threads. Newton
        terms come from torch.func, which is not for concurrent use: those passes run serially.

        Parameters
        ----------
        coef : (p,) coefficients of the estimated columns (non-estimable ones 0).
        want : None, "fisher" (X'WX, X'W r at the working weights) or "newton" (observed information).
        est : estimable positions among the estimated columns, for the normal equations.

        Returns
        -------
        Pass
        """
        if self._factor is not None:
            return Pass(*factor_pass(self, coef, want, est))
        n = self.y.shape[0]
        eta = torch.empty(n, dtype=self.dtype, device=self.device)
        mu = torch.empty_like(eta)
        # int64 also when est is empty (a rank-0 fit), where as_tensor would make float32
        cols = (None if est is None or list(est) == list(range(self.p))
                else torch.as_tensor(est, dtype=torch.int64, device=self.device))
        k = self.p if est is None else len(est)
        acc = _Sums(H=torch.zeros(k, k, dtype=self.dtype, device=self.device) if want else None,
                    g=torch.zeros(k, dtype=self.dtype, device=self.device) if want else None)

        def combine(acc: _Sums, b: _BlockPass) -> _Sums:
            eta[b.rows], mu[b.rows] = b.eta, b.mu
            acc.deviance += b.deviance
            acc.valid = acc.valid and b.valid
            acc.error = acc.error or b.error
            if b.H is not None and b.g is not None and acc.H is not None and acc.g is not None:
                acc.H += b.H
                acc.g += b.g
            return acc

        if want == "newton" or self.device.type != "cpu":
            for item in self.blocks():
                combine(acc, self._block(item, coef, want, cols))
        else:
            threads.reduce_chunks(lambda item: self._block(item, coef, want, cols), self.blocks(), combine, acc)
        dev = acc.deviance
        ok = acc.valid and math.isfinite(dev)
        if ok and acc.error is not None:
            raise acc.error
        return Pass(eta, mu, dev if math.isfinite(dev) else float("inf"), ok,
                    acc.H if ok else None, acc.g if ok else None)

    def qr_step(self, eta: torch.Tensor, mu: torch.Tensor, tol: float) -> QRFit:
        """A full IRLS step at (eta, mu): weighted least squares of the working response, by QR with R's rank detection.

        Returns
        -------
        QRFit over the estimated columns (its pivot indexes them).
        """
        sw, rw = self.working(eta, mu)
        z = (eta - self.offset) + rw
        p = self.p
        if self._factor is not None:
            fit = self._factor.qr(z, sw * sw, tol, None if p == self._factor.p else self.columns)
            if fit is not None:
                return fit

        def chunks():
            for rows, X in self.blocks():
                yield LinearResidual(X, z[rows], sw[rows])

        names = [self.source.names[j] for j in self.columns]
        fit = qr_solve(chunks, p, tol, self.device, self.dtype, accurate=False, names=names)
        if fit.rank > self.y.shape[0]:
            raise DataError(f"X matrix has rank {fit.rank}, but only {self.y.shape[0]} observations")
        return fit


def _safe_sqrt_weights(w: torch.Tensor, me: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """R's sqrt(w mu'(eta)^2 / V(mu)); where that overflows (means near 1e300), sqrt(w) |mu'| / sqrt(V).

    R's expression is kept where it is finite, so ordinary fits round as R's do.

    Returns
    -------
    torch.Tensor
    """
    sw = torch.sqrt(w * me * me / var)
    if bool(torch.isfinite(sw).all()):
        return sw
    return torch.where(torch.isfinite(sw), sw, torch.sqrt(w) * me.abs() / torch.sqrt(var))


def cholesky_step(b: torch.Tensor, est: list[int], P: Pass) -> torch.Tensor | None:
    """b + H^{-1} g on the estimable coefficients, from a pass's normal equations; None if H is not positive definite.

    Returns
    -------
    torch.Tensor or None
    """
    if P.H is None or P.g is None:
        return None
    if not (bool(torch.isfinite(P.H).all()) and bool(torch.isfinite(P.g).all())):
        return None  # X'WX beyond float64's range (columns near 1e300): the QR step scales them
    L, info = torch.linalg.cholesky_ex(P.H)
    if int(info) != 0:
        return None
    new = b.clone()
    new[est] += torch.cholesky_solve(P.g.unsqueeze(1), L).squeeze(1)
    return new


CONTROL_DEFAULTS = {"epsilon": 1e-8, "maxit": 25, "polish": 100}
# IRLS steps after the first use the Gram matrix when the first QR step's (column-equilibrated)
# condition number is below this: their rounding, cond^2 eps relative to the step, is then negligible
GRAM_CONDITION = 1e5


@dataclass
class IRLSFit:
    """State at the end of IRLS.

    coef : (p,) estimates, NaN for aliased columns.
    qr : weighted least-squares factor of sqrt(W) X at the final estimate (W the working weights).
    eta, mu : linear predictor and mean (offset included), torch (n,).
    deviance : sum of the family's deviance residuals.
    iterations : Fisher scoring iterations until R's convergence rule held (what R reports).
    polish_steps : further iterations taken to reach the exact maximum-likelihood estimate.
    weights_eta, weights_mu : the point whose working weights ``qr`` factors: R's glm.fit keeps those
        of its last iteration's start (one step before the estimate); the estimate itself for an exact fit.
    """

    coef: np.ndarray
    qr: QRFit
    eta: torch.Tensor
    mu: torch.Tensor
    deviance: float
    iterations: int
    polish_steps: int
    converged: bool
    boundary: bool
    weights_eta: torch.Tensor
    weights_mu: torch.Tensor


def control_settings(control: dict | None, *, exact: bool = False) -> dict:
    """R's glm.control settings with the defaults filled in; unknown or invalid settings are errors.

    epsilon : a positive finite number; maxit : a whole number >= 1; polish : a whole number >= 0;
    exact : True to iterate past R's rule to the exact maximum-likelihood estimate (tl.glm's ``exact=``);
    the polish setting applies only then.

    Raises
    ------
    OptionError
        naming the setting, for an unknown key or a value of the wrong type or range.

    Returns
    -------
    dict with epsilon, maxit, polish and exact.
    """
    if control is not None and not isinstance(control, dict):
        raise OptionError(f"control must be a dict of glm.control settings {sorted(CONTROL_DEFAULTS)}, "
                          f"not {type(control).__name__}")
    c = dict(CONTROL_DEFAULTS)
    for k, v in (control or {}).items():
        if k not in c:
            raise OptionError(f"unknown control setting {k!r}; available: {sorted(c)}")
        c[k] = v
    eps = c["epsilon"]
    if not _is_real(eps) or not (math.isfinite(float(eps)) and float(eps) > 0):
        raise OptionError(f"control epsilon must be a positive finite number (R's default 1e-8), not {eps!r}")
    c["epsilon"] = float(eps)
    for k, least in (("maxit", 1), ("polish", 0)):
        v = c[k]
        if not _is_real(v) or not math.isfinite(float(v)) or float(v) != int(v) or int(v) < least:
            raise OptionError(f"control {k} must be a whole number of at least {least} (default "
                              f"{CONTROL_DEFAULTS[k]}), not {v!r}")
        c[k] = int(v)
    if not isinstance(exact, (bool, np.bool_)):
        raise OptionError(f"exact must be True or False, not {exact!r}")
    c["exact"] = bool(exact)
    return c


def _is_real(v: object) -> bool:
    """A real number (Python or numpy), not a bool or a string."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _start(passes: GLMPasses, start, mustart) -> tuple[Pass, torch.Tensor | None]:
    """R's starting point: eta from ``start`` (one pass) or linkfun(mustart); an error if it is not valid."""
    fam, link = passes.family, passes.link
    if start is not None:
        P = passes.at(start)
        eta, mu = P.eta, P.mu
    else:
        eta = link.linkfun(mustart)
        mu = link.linkinv(eta)
    if not (fam.validmu(mu) and link.valideta(eta)):
        raise DataError("cannot find valid starting values: please specify some (start= coefficients whose "
                        f"linear predictor is inside the range of the {link.name} link and the family)")
    dev = float(fam.dev_resids(passes.y, mu, passes.weights).sum())
    return Pass(eta, mu, dev, True), None if start is None else start.clone()


class _IRLSProblem:
    """R's IRLS as a Problem of the Newton driver: the deviance at coefficients, one pass each; the step a WLS solve.

    The first step, and every step where the Gram matrix is not used, is a QR solve with R's rank
    detection; after it, steps on a well-conditioned design come from the normal equations the
    evaluating pass accumulated (IRLS steps after the first use the Gram matrix when the first QR
    step's column-equilibrated condition number is below GRAM_CONDITION: their rounding, cond^2 eps
    relative to the step, is then negligible).
    """

    def __init__(self, passes: GLMPasses, tol: float):
        self.passes, self.tol = passes, tol
        self.est: list[int] = []
        self.use_gram = False
        self.origin: Pass | None = None  # the point the last step was proposed from (R's final working weights)

    def evaluate(self, coef: torch.Tensor) -> Evaluation:
        """The deviance at ``coef`` (one pass), with the next step's normal equations when the Gram step is in use."""
        P = self.passes.at(coef, "fisher" if self.use_gram else None, self.est)
        return Evaluation(P.deviance, valid=P.valid, aux=P)

    def propose(self, state: State) -> Step | None:
        """The next IRLS coefficients from the working least squares at the current point (None if not finite)."""
        P, coef = state.aux, state.x
        self.origin = P
        new = cholesky_step(coef, self.est, P) if self.use_gram else None
        if new is None:
            qr = self.passes.qr_step(P.eta, P.mu, self.tol)
            self.est = qr.pivot[: qr.rank]
            new = _as_coef(qr, coef)
            self.use_gram = qr.rank > 0 and condition_estimate(qr.factor) < GRAM_CONDITION
        if not bool(torch.isfinite(new[self.est]).all()):
            warn(f"non-finite coefficients at iteration {state.iteration + 1}", stacklevel=5)
            return None
        return Step(direction=new - coef, newton=False, point=new)


def _halving_warnings(state: State) -> None:
    """R's glm.fit warnings for a halved step: divergence (non-finite deviance), then out of bounds (invalid)."""
    said = set()
    for fault in state.trial.rejected if state.trial else ():
        if fault not in said:
            said.add(fault)
            warn("step size truncated due to divergence" if fault in ("non-finite", "error")
                          else "step size truncated: out of bounds", stacklevel=5)


def irls(passes: GLMPasses, *, start: torch.Tensor | None = None, mustart: torch.Tensor | None,
         control: dict, tol: float) -> IRLSFit:
    """Fit a GLM by iteratively reweighted least squares, as R's glm.fit (or on to the exact MLE).

    R stops when the relative change of the deviance is below epsilon, which leaves fits (non-canonical
    ones most) short of the maximum, and reports the covariance of its last iteration; this is the
    default. With control["exact"], Newton steps continue ("polish") until the coefficients stop
    changing, so the estimate and its covariance are at the maximum-likelihood estimate. Each
    iteration is one pass over the row blocks (plus a QR pass where the Gram step is not used).

    Parameters
    ----------
    passes : the GLM's passes over its row-block source (response after the family's initialize).
    start : starting coefficients, or None; mustart : starting means (used when start is None).
    control : glm.control settings (epsilon, maxit, polish, exact); tol : rank-detection tolerance.

    Returns
    -------
    IRLSFit
    """
    family = passes.family
    p = passes.p
    if p == 0:
        return _empty_fit(passes)
    P0, start_coef = _start(passes, start, mustart)
    maxit = int(control["maxit"])
    problem = _IRLSProblem(passes, tol)
    x0 = start_coef if start_coef is not None else torch.zeros(p, dtype=passes.dtype, device=passes.device)
    res = solve(problem, x0, control=RHalving(maxit), test=RelativeChange(control["epsilon"]), maxit=maxit,
                initial=Evaluation(P0.deviance, aux=P0), anchored=start_coef is not None,
                callback=_halving_warnings)
    if res.reason == Reason.NO_POINT:
        if not res.state.anchored:
            raise DataError("no valid set of coefficients has been found: please supply starting values")
        rejected = res.state.trial.rejected if res.state.trial else ()
        raise DataError("inner loop 2; cannot correct step size" if rejected and rejected[-1] == "invalid"
                        else "inner loop 1; cannot correct step size")
    coef, P, est = res.x, res.state.aux, problem.est
    conv, boundary = res.converged, res.shortened > 0
    polish = 0
    exact = bool(control.get("exact", False))
    if exact and conv and not boundary:
        # the relative change of R's last step (unknown after a first step from means alone)
        first = res.iterations == 1 and start_coef is None
        coef, P, polish = _polish(passes, coef, P, math.inf if first else res.state.relative, est, tol,
                                  int(control["polish"]))
    # R's glm.fit keeps the QR (hence the covariance, hat values and working weights) of its last
    # iteration, taken at that iteration's start; the exact fit takes it at the estimate itself
    at = P if exact or problem.origin is None else problem.origin
    qr = passes.qr_step(at.eta, at.mu, tol)
    if not conv:
        warn("glm.fit: algorithm did not converge", stacklevel=3)
    if boundary:
        warn("glm.fit: algorithm stopped at boundary value", stacklevel=3)
    if family.boundary_message and family.at_boundary(P.mu):
        warn(family.boundary_message, stacklevel=3)
    out = np.full(p, np.nan)
    est = qr.pivot[: qr.rank]
    out[est] = coef.cpu().double().numpy()[est]
    return IRLSFit(coef=out, qr=qr, eta=P.eta, mu=P.mu, deviance=P.deviance, iterations=res.iterations,
                   polish_steps=polish, converged=conv, boundary=boundary, weights_eta=at.eta, weights_mu=at.mu)


def _empty_fit(passes: GLMPasses) -> IRLSFit:
    """R's glm.fit for a model with no coefficients (y ~ 0): no iterations, the mean is linkinv(offset)."""
    fam = passes.family
    eta = passes.offset.clone()
    mu = fam.link.linkinv(eta)
    if not (fam.validmu(mu) and fam.link.valideta(eta)):
        raise DataError("invalid linear predictor values in empty model (y ~ 0): the offset is outside the "
                        "link's range")
    qr = QRFit(coef=np.zeros(0), R=torch.zeros(0, 0, dtype=eta.dtype, device=eta.device), pivot=[], rank=0,
               effects=np.zeros(0), rss=None)
    return IRLSFit(coef=np.zeros(0), qr=qr, eta=eta, mu=mu,
                   deviance=float(fam.dev_resids(passes.y, mu, passes.weights).sum()),
                   iterations=0, polish_steps=0, converged=True, boundary=False, weights_eta=eta, weights_mu=mu)


def _as_coef(fit: QRFit, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.nan_to_num(fit.coef), dtype=like.dtype, device=like.device)


class _PolishProblem:
    """Newton steps past R's stopping rule, as a Problem of the Newton driver.

    Canonical links: Fisher scoring is Newton's method (quadratic convergence); otherwise Newton with
    the observed information, falling back to a Fisher (QR) step, which converges only linearly.
    """

    def __init__(self, passes: GLMPasses, est: list[int], tol: float):
        self.passes, self.est, self.tol = passes, est, tol
        self.want = "fisher" if passes.family.canonical else "newton"

    def evaluate(self, coef: torch.Tensor) -> Evaluation:
        """The deviance at ``coef`` with the next Newton step's normal equations (one pass)."""
        P = self.passes.at(coef, self.want, self.est)
        return Evaluation(P.deviance, valid=P.valid, aux=P)

    def propose(self, state: State) -> Step:
        """A Newton step from the pass's normal equations, or a Fisher (QR) step if they are not positive definite."""
        P, coef = state.aux, state.x
        new = cholesky_step(coef, self.est, P)
        quadratic = True
        if new is None:
            new = _as_coef(self.passes.qr_step(P.eta, P.mu, self.tol), coef)
            quadratic = self.passes.family.canonical
        return Step(direction=new - coef, newton=quadratic, point=new)


def _polish(passes: GLMPasses, coef: torch.Tensor, P: Pass, prev_change: float, est: list[int], tol: float,
            max_steps: int) -> tuple[torch.Tensor, Pass, int]:
    """Newton steps past R's stopping rule until the coefficients stop changing (the exact MLE).

    Stops when the remaining error, estimated from successive changes (the driver's PolishRule), is
    at rounding level. If the steps stop shrinking while still large, the maximum is at infinity
    (separation, or a rate at zero), and a step to an invalid point ends the polish too: the point
    where R's rule stopped is kept rather than drifting.

    Returns
    -------
    (coef, Pass at coef, number of steps)
    """
    problem = _PolishProblem(passes, est, tol)
    if P.H is None or problem.want == "newton":
        P = passes.at(coef, problem.want, est)
    res = solve(problem, coef, control=FullStep(), test=PolishRule(prev_change), maxit=max_steps,
                initial=Evaluation(P.deviance, aux=P))
    if res.reason in (Reason.DIVERGED, Reason.NO_POINT):
        return coef, P, 0
    return res.x, res.state.aux, res.iterations
