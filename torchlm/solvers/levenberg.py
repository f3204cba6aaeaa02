"""Levenberg-Marquardt as minpack.lm's nlsLM (MINPACK's lmdif, Moré 1978), and bounded least squares for "port".

The iteration is MINPACK's step for step (qrfac with column pivoting, lmpar's search for the damping
parameter with qrsolv's Givens rotations, the trust region's updates, the tests info 1-8) and minpack.lm's
iteration count (``niter``, the outer iterations; ``maxiter`` stops at the start of that one). The Jacobian
is autograd's instead of lmdif's forward differences, so the small p x p work runs on the triangular
factor of [J | e] (a point's :class:`~torchlm.solvers.nonlinear_ls.Point`), in float64 on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchlm.solvers.nonlinear_ls import EPS, NlsControl, Outcome, Point, Residual, evaluate_point

DWARF = 2.2250738585072014e-308

# minpack.lm's messages (fcn_message.c), by info
LM_MESSAGES = {
    1: "Relative error in the sum of squares is at most `ftol'.",
    2: "Relative error between `par' and the solution is at most `ptol'.",
    3: "Conditions for `info = 1' and `info = 2' both hold.",
    4: "The cosine of the angle between `fvec' and any column of the Jacobian is at most `gtol' in absolute value.",
    5: "Number of calls to `fcn' has reached or exceeded `maxfev' == {maxfev}.",
    6: "`ftol' is too small. No further reduction in the sum of squares is possible.",
    7: "`ptol' is too small. No further improvement in the approximate solution `par' is possible.",
    8: "`gtol' is too small. `fvec' is orthogonal to the columns of the Jacobian to machine precision.",
    -1: "Number of iterations has reached `maxiter' == {maxiter}.",
}


def qrfac(A: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MINPACK's qrfac with column pivoting of A (m x n), the reflections also applied to f (lmdif's qtf).

    Returns
    -------
    tuple of numpy.ndarray
        R (n x n, upper triangular, columns in pivot order, MINPACK's rdiag on the diagonal), ipvt (0-based
        column of A at each position), acnorm (A's column norms) and qtf (the first n of Q'f).
    """
    a = np.array(A, dtype=np.float64)
    f = np.array(f, dtype=np.float64)
    m, n = a.shape
    acnorm = np.sqrt((a * a).sum(axis=0))
    rdiag, wa = acnorm.copy(), acnorm.copy()
    ipvt = np.arange(n)
    for j in range(min(m, n)):
        kmax = j + int(np.argmax(rdiag[j:]))
        if kmax != j:
            a[:, [j, kmax]] = a[:, [kmax, j]]
            rdiag[kmax], wa[kmax] = rdiag[j], wa[j]
            ipvt[[j, kmax]] = ipvt[[kmax, j]]
        ajnorm = float(np.sqrt(a[j:, j] @ a[j:, j]))
        if ajnorm != 0.0:
            if a[j, j] < 0:
                ajnorm = -ajnorm
            a[j:, j] /= ajnorm
            a[j, j] += 1.0
            for k in range(j + 1, n):
                a[j:, k] -= (a[j:, j] @ a[j:, k]) / a[j, j] * a[j:, j]
                if rdiag[k] != 0.0:
                    temp = a[j, k] / rdiag[k]
                    rdiag[k] *= math.sqrt(max(0.0, 1.0 - temp * temp))
                    if 0.05 * (rdiag[k] / wa[k]) ** 2 <= EPS:
                        rdiag[k] = float(np.sqrt(a[j + 1:, k] @ a[j + 1:, k]))
                        wa[k] = rdiag[k]
            f[j:] -= (a[j:, j] @ f[j:]) / a[j, j] * a[j:, j]
        rdiag[j] = -ajnorm
    R = np.zeros((n, n))
    k = min(m, n)
    R[:k] = np.triu(a[:k])
    R[np.arange(k), np.arange(k)] = rdiag[:k]
    qtf = np.zeros(n)
    qtf[:k] = f[:k]
    return R, ipvt, acnorm, qtf


def qrsolv(r: np.ndarray, ipvt: np.ndarray, diag: np.ndarray, qtb: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """MINPACK's qrsolv: x minimising ||A x - b||, ||D x|| jointly, from A's pivoted factor (Givens rotations).

    Returns
    -------
    tuple of numpy.ndarray
        x, sdiag (the diagonal of S) and S's strict upper triangle transposed (in the lower triangle).
    """
    n = r.shape[0]
    s = r.copy()
    for j in range(n):
        s[j:, j] = r[j, j:]
    x = np.diag(r).copy()
    wa = qtb.copy()
    sdiag = np.zeros(n)
    for j in range(n):
        lj = ipvt[j]
        if diag[lj] != 0.0:
            sdiag[j:] = 0.0
            sdiag[j] = diag[lj]
            qtbpj = 0.0
            for k in range(j, n):
                if sdiag[k] == 0.0:
                    continue
                if abs(s[k, k]) < abs(sdiag[k]):
                    cotan = s[k, k] / sdiag[k]
                    sin = 0.5 / math.sqrt(0.25 + 0.25 * cotan * cotan)
                    cos = sin * cotan
                else:
                    tan = sdiag[k] / s[k, k]
                    cos = 0.5 / math.sqrt(0.25 + 0.25 * tan * tan)
                    sin = cos * tan
                s[k, k] = cos * s[k, k] + sin * sdiag[k]
                temp = cos * wa[k] + sin * qtbpj
                qtbpj = -sin * wa[k] + cos * qtbpj
                wa[k] = temp
                col, sd = s[k + 1:, k].copy(), sdiag[k + 1:].copy()
                s[k + 1:, k] = cos * col + sin * sd
                sdiag[k + 1:] = -sin * col + cos * sd
        sdiag[j] = s[j, j]
        s[j, j] = x[j]
    nsing = n
    for j in range(n):
        if sdiag[j] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa[j] = 0.0
    for j in range(nsing - 1, -1, -1):
        total = float(s[j + 1:nsing, j] @ wa[j + 1:nsing])
        wa[j] = (wa[j] - total) / sdiag[j]
    out = np.zeros(n)
    out[ipvt] = wa
    return out, sdiag, s


def lmpar(r: np.ndarray, ipvt: np.ndarray, diag: np.ndarray, qtb: np.ndarray, delta: float,
          par: float) -> tuple[float, np.ndarray]:
    """MINPACK's lmpar: the damping parameter whose step has ||D x|| within 10% of ``delta``, and that step.

    Returns
    -------
    tuple of (float, numpy.ndarray)
        par and x (lmdif's wa1: the negative of the step).
    """
    n = r.shape[0]
    nsing = n
    wa1 = qtb.copy()
    for j in range(n):
        if r[j, j] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa1[j] = 0.0
    for j in range(nsing - 1, -1, -1):
        wa1[j] /= r[j, j]
        wa1[:j] -= r[:j, j] * wa1[j]
    x = np.zeros(n)
    x[ipvt] = wa1
    it = 0
    wa2 = diag * x
    dxnorm = float(np.sqrt(wa2 @ wa2))
    fp = dxnorm - delta
    if fp <= 0.1 * delta:
        return 0.0, x
    parl = 0.0
    if nsing >= n:
        wa1 = diag[ipvt] * (wa2[ipvt] / dxnorm)
        for j in range(n):
            wa1[j] = (wa1[j] - float(r[:j, j] @ wa1[:j])) / r[j, j]
        temp = float(np.sqrt(wa1 @ wa1))
        parl = ((fp / delta) / temp) / temp
    wa1 = np.array([float(r[: j + 1, j] @ qtb[: j + 1]) for j in range(n)]) / diag[ipvt]
    gnorm = float(np.sqrt(wa1 @ wa1))
    paru = gnorm / delta
    if paru == 0.0:
        paru = DWARF / min(delta, 0.1)
    par = min(max(par, parl), paru)
    if par == 0.0:
        par = gnorm / dxnorm
    while True:
        it += 1
        if par == 0.0:
            par = max(DWARF, 0.001 * paru)
        x, sdiag, s = qrsolv(r, ipvt, math.sqrt(par) * diag, qtb)
        wa2 = diag * x
        dxnorm = float(np.sqrt(wa2 @ wa2))
        temp = fp
        fp = dxnorm - delta
        if abs(fp) <= 0.1 * delta or (parl == 0.0 and fp <= temp and temp < 0.0) or it == 10:
            break
        wa1 = diag[ipvt] * (wa2[ipvt] / dxnorm)
        for j in range(n):
            wa1[j] /= sdiag[j]
            wa1[j + 1:] -= s[j + 1:, j] * wa1[j]
        temp = float(np.sqrt(wa1 @ wa1))
        parc = ((fp / delta) / temp) / temp
        if fp > 0.0:
            parl = max(parl, par)
        if fp < 0.0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, x


def _factor_parts(pt: Point) -> tuple[np.ndarray, np.ndarray]:
    """The factor of [J | e] on the CPU: J's part (rows x p) and e's column."""
    F = pt.R.detach().cpu().numpy().astype(np.float64)
    return F[:, : pt.p], F[:, pt.p]


def _clamp(x: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None) -> np.ndarray:
    # minpack.lm's fcn: a trial point outside the bounds is moved onto them (in place, so it is the point kept)
    if lower is not None:
        x = np.maximum(x, lower)
    if upper is not None:
        x = np.minimum(x, upper)
    return x


class _LMState:
    """lmdif's variables across its loops."""

    def __init__(self, pt: Point, control: NlsControl) -> None:
        self.pt = pt
        self.x = pt.x.detach().cpu().numpy().astype(np.float64)
        self.fnorm = math.sqrt(pt.rss)
        self.par = 0.0
        self.iter = 1
        self.niter = 0
        self.nfev = 1
        self.delta = 0.0
        self.xnorm = 0.0
        self.diag = np.ones(pt.p)
        self.maxfev = control.maxfev if control.maxfev is not None else 100 * (pt.p + 1)


def levenberg_marquardt(fn: Residual, start: Point, control: NlsControl, lower: np.ndarray | None = None,
                        upper: np.ndarray | None = None, maxiter: int | None = None) -> Outcome:
    """minpack.lm's nls.lm from ``start``: MINPACK's lmdif with an autograd Jacobian, minpack.lm's bounds (trial
    points clamped onto them) and iteration limit.

    Parameters
    ----------
    fn : the residual function.
    start : the starting point, evaluated.
    control : ftol, ptol, gtol, factor, maxfev, maxiter.
    lower, upper : bounds (arrays of p, -inf / inf where none) or None.
    maxiter : the iteration limit instead of ``control.maxiter``.

    Returns
    -------
    Outcome
        converged for MINPACK's info 1-4; ``iterations`` is minpack.lm's niter, ``tolerance`` nlsLM's finTol
        (ftol), ``code`` MINPACK's info (-1 for the iteration limit) and ``message`` minpack.lm's.
    """
    limit = control.maxiter if maxiter is None else maxiter
    st = _LMState(start, control)
    info = _lm_outer(fn, st, control, lower, upper, limit)
    message = LM_MESSAGES.get(info, "Improper input parameters.").format(maxfev=st.maxfev, maxiter=limit)
    return Outcome(st.pt, info in (1, 2, 3, 4), st.niter, control.ftol, info, message, "lm", st.nfev)


def _lm_outer(fn: Residual, st: _LMState, control: NlsControl, lower: np.ndarray | None, upper: np.ndarray | None,
              limit: int) -> int:
    """lmdif's outer loop (a Jacobian per pass); returns MINPACK's info."""
    p = st.pt.p
    while True:
        st.nfev += p  # lmdif's forward differences cost p evaluations; counted as minpack.lm counts them
        st.niter += 1
        if st.niter == limit:
            return -1
        A, f = _factor_parts(st.pt)
        r, ipvt, acnorm, qtf = qrfac(A, f)
        if st.iter == 1:
            st.diag = np.where(acnorm == 0.0, 1.0, acnorm)
            st.xnorm = float(np.linalg.norm(st.diag * st.x))
            st.delta = control.factor * st.xnorm if st.xnorm != 0 else control.factor
        gnorm = 0.0
        if st.fnorm != 0.0:
            for j in range(p):
                lj = ipvt[j]
                if acnorm[lj] != 0.0:
                    gnorm = max(gnorm, abs(float(r[: j + 1, j] @ (qtf[: j + 1] / st.fnorm)) / acnorm[lj]))
        if gnorm <= control.gtol:
            return 4
        st.diag = np.maximum(st.diag, acnorm)
        info = _lm_inner(fn, st, control, r, ipvt, qtf, gnorm, lower, upper)
        if info:
            return info


def _lm_inner(fn: Residual, st: _LMState, control: NlsControl, r: np.ndarray, ipvt: np.ndarray, qtf: np.ndarray,
              gnorm: float, lower: np.ndarray | None, upper: np.ndarray | None) -> int:
    """lmdif's inner loop: trial steps until one succeeds (0) or a test stops the iteration (its info)."""
    x_dev = st.pt.x
    while True:
        st.par, wa1 = lmpar(r, ipvt, st.diag, qtf, st.delta, st.par)
        step = -wa1
        trial = _clamp(st.x + step, lower, upper)
        pnorm = float(np.linalg.norm(st.diag * step))
        if st.iter == 1:
            st.delta = min(st.delta, pnorm)
        new = evaluate_point(fn, torch.as_tensor(trial, dtype=x_dev.dtype, device=x_dev.device))
        st.nfev += 1
        fnorm1 = math.sqrt(new.rss) if new is not None else math.inf
        actred = 1.0 - (fnorm1 / st.fnorm) ** 2 if 0.1 * fnorm1 < st.fnorm else -1.0
        wa3 = np.triu(r) @ step[ipvt]
        temp1 = float(np.linalg.norm(wa3)) / st.fnorm
        temp2 = math.sqrt(st.par) * pnorm / st.fnorm
        prered = temp1**2 + temp2**2 / 0.5
        dirder = -(temp1**2 + temp2**2)
        ratio = actred / prered if prered != 0.0 else 0.0
        if ratio <= 0.25:
            temp = 0.5 if actred >= 0.0 else 0.5 * dirder / (dirder + 0.5 * actred)
            if 0.1 * fnorm1 >= st.fnorm or temp < 0.1:
                temp = 0.1
            st.delta = temp * min(st.delta, pnorm / 0.1)
            st.par /= temp
        elif st.par == 0.0 or ratio >= 0.75:
            st.delta = pnorm / 0.5
            st.par *= 0.5
        if ratio >= 1e-4 and new is not None:
            st.x, st.pt = trial, new
            st.xnorm = float(np.linalg.norm(st.diag * st.x))
            st.fnorm = fnorm1
            st.iter += 1
        info = _lm_tests(actred, prered, ratio, st, control, gnorm)
        if info:
            return info
        if ratio >= 1e-4:
            return 0


def _lm_tests(actred: float, prered: float, ratio: float, st: _LMState, control: NlsControl, gnorm: float) -> int:
    """lmdif's convergence and termination tests after a trial step (0: go on)."""
    info = 0
    small = abs(actred) <= control.ftol and prered <= control.ftol and 0.5 * ratio <= 1.0
    if small:
        info = 1
    if st.delta <= control.ptol * st.xnorm:
        info = 3 if small else 2
    if info:
        return info
    if st.nfev >= st.maxfev:
        info = 5
    if abs(actred) <= EPS and prered <= EPS and 0.5 * ratio <= 1.0:
        info = 6
    if st.delta <= EPS * st.xnorm:
        info = 7
    if gnorm <= EPS:
        info = 8
    return info


# --- bounds: R's algorithm = "port" -------------------------------------------------------------------
PORT_MESSAGES = {3: "X-convergence (3)", 4: "relative convergence (4)",
                 5: "both X-convergence and relative convergence (5)", 6: "absolute function convergence (6)",
                 8: "false convergence (8)", 9: "function evaluation limit reached without convergence (9)",
                 10: "iteration limit reached without convergence (10)", 300: "initial par violates constraints"}


def _free_columns(A: np.ndarray, f: np.ndarray, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The parameters not held at a bound: at a bound, a parameter is held while the gradient pushes it out."""
    g = A.T @ f
    held = ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))
    return ~held


def _relative_reduction(A: np.ndarray, f: np.ndarray, free: np.ndarray, fnorm: float) -> float:
    """PORT's relative function convergence measure: the Gauss-Newton step's predicted relative reduction."""
    if not free.any() or fnorm == 0.0:
        return 0.0
    q = np.linalg.qr(A[:, free])[0]
    proj = q.T @ f
    return float(proj @ proj) / fnorm**2


def bounded_least_squares(fn: Residual, start: Point, control: NlsControl, lower: np.ndarray,
                          upper: np.ndarray) -> Outcome:
    """R's nls(algorithm = "port"): least squares with bounds, by a projected Levenberg-Marquardt iteration.

    Parameters at a bound whose gradient pushes outwards are held; the others take MINPACK's damped step
    within a trust region, projected onto the bounds. Stops as PORT does: relative function convergence
    (the Gauss-Newton step's predicted relative reduction at most ``rel_tol``), X-convergence (a full step
    of relative size at most ``x_tol``), or the iteration or evaluation limits.

    Parameters
    ----------
    fn : the residual function.
    start : the starting point (within the bounds), evaluated.
    control : rel_tol, x_tol, abs_tol, iter_max, eval_max, factor.
    lower, upper : arrays of p (-inf / inf where there is no bound).

    Returns
    -------
    Outcome
        ``code`` and ``message`` as PORT's (R's port_msg).
    """
    x = start.x.detach().cpu().numpy().astype(np.float64)
    if (x < lower).any() or (x > upper).any():
        return Outcome(start, False, 0, math.nan, 300, PORT_MESSAGES[300], "port")
    pt, fnorm, par, nfev = start, math.sqrt(start.rss), 0.0, 1
    A, f = _factor_parts(pt)
    diag = np.maximum(np.sqrt((A * A).sum(axis=0)), 1e-300)
    delta = control.factor * float(np.linalg.norm(diag * x)) or control.factor
    for it in range(1, control.iter_max + 1):
        A, f = _factor_parts(pt)
        if 0.5 * pt.rss <= control.abs_tol:
            return Outcome(pt, True, it - 1, 0.0, 6, PORT_MESSAGES[6], "port", nfev)
        free = _free_columns(A, f, x, lower, upper)
        rel = _relative_reduction(A, f, free, fnorm)  # PORT's NREDUC / f at the iteration's start
        diag = np.maximum(diag, np.sqrt((A * A).sum(axis=0)))
        idx = np.flatnonzero(free)
        r, ipvt, _, qtf = qrfac(A[:, idx], f)
        while True:
            par, wa1 = lmpar(r, ipvt, diag[idx], qtf, delta, par)
            step = np.zeros_like(x)
            step[idx] = -wa1
            trial = np.clip(x + step, lower, upper)
            d = trial - x
            pnorm = float(np.linalg.norm(diag * d))
            new = evaluate_point(fn, torch.as_tensor(trial, dtype=pt.x.dtype, device=pt.x.device))
            nfev += 1
            predicted = fnorm**2 - float(np.sum((A @ d + f) ** 2))
            actual = fnorm**2 - (new.rss if new is not None else math.inf)
            ratio = actual / predicted if predicted > 0 else (1.0 if actual == 0 == predicted else -1.0)
            if ratio < 0.25:
                delta = 0.25 * min(delta, pnorm) if pnorm > 0 else 0.25 * delta
                par = 4 * par if par > 0 else par
            elif ratio > 0.75:
                delta, par = max(delta, 2 * pnorm), 0.5 * par
            if ratio >= 1e-4 and new is not None:
                break
            if nfev >= control.eval_max:
                return Outcome(pt, False, it, rel, 9, PORT_MESSAGES[9], "port", nfev)
            if delta <= EPS * float(np.linalg.norm(diag * x)):
                return Outcome(pt, False, it, rel, 8, PORT_MESSAGES[8], "port", nfev)
        # PORT's tests after a step: relative function convergence (the predicted reduction of the full step
        # at the iteration's start) and X-convergence (an undamped step of relative size at most x.tol)
        reldx = float(np.abs(d).max()) / max(float((np.abs(trial) + np.abs(x)).max()), 1e-300)
        x, pt, fnorm = trial, new, math.sqrt(new.rss)
        if actual <= 2 * max(predicted, 0.0):
            code = (2 if rel <= control.rel_tol else 0) + (1 if par == 0.0 and reldx <= control.x_tol else 0)
            if code:
                return Outcome(pt, True, it, rel, code + 2, PORT_MESSAGES[code + 2], "port", nfev)
        if nfev >= control.eval_max:
            return Outcome(pt, False, it, rel, 9, PORT_MESSAGES[9], "port", nfev)
    return Outcome(pt, False, control.iter_max, math.nan, 10, PORT_MESSAGES[10], "port", nfev)


def held_at_bounds(pt: Point, lower: np.ndarray, upper: np.ndarray) -> torch.Tensor:
    """Which parameters sit at a bound that the gradient pushes against (held in the polish).

    Returns
    -------
    torch.Tensor
        (p,) bool.
    """
    A, f = _factor_parts(pt)
    x = pt.x.detach().cpu().numpy().astype(np.float64)
    return torch.as_tensor(~_free_columns(A, f, x, lower, upper), device=pt.x.device)
