"""Standard errors without a dense Hessian: Hessian-vector products by autograd and conjugate gradients.

A dense Hessian of p parameters takes 8 p^2 bytes and p Hessian-vector products. A column of its inverse,
H^-1 b, takes one conjugate-gradient (CG) solve: a few dozen to a few thousand products H v, each about
twice the cost of one gradient over all rows, in memory of a few vectors of p. Standard errors of r chosen
parameters are r solves (batched: the products of every unfinished column are one vmapped pass over the
rows), exact to CG's tolerance. Standard errors of all p parameters would be p solves; the Hutchinson
estimate of diag(H^-1) (:meth:`MatrixFreeCovariance.approximate_std_errors`) is offered instead, with its
Monte Carlo error, as an approximation.

CG needs H positive definite, which it is at a strict minimum. Along every direction CG steps in, it
measures the curvature p'Hp / p'Dp on the unit-diagonal scale (D the diagonal of H, or an estimate of
it), as the dense path measures eigenvalues: below -singular_tol is negative curvature (a saddle point:
NotAtMinimumError), within singular_tol of 0 a flat direction (that column has no finite variance).
Directions CG never steps in are not examined: a saddle orthogonal to every right-hand side goes unseen.
"""

from __future__ import annotations

import math
import numbers
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch.func import grad, grad_and_value, jvp, vjp, vmap

from torchlm.errors import ModelInputError, NotAtMinimumError, TorchlmWarning, warn
from torchlm.results.curvature import _combination
from torchlm.solvers.autograd import quiet

# cg_control's keys: relative residual, iterations (None: min(max(4p, 100), 2000)), probes of the diagonal
# estimate (Jacobi preconditioner), tangents per vmapped pass (None: from the rows), seed of the probes,
# Lanczos steps of the check for negative curvature (0: none)
DEFAULT_CONTROL: dict[str, Any] = {"tol": 1e-8, "maxiter": None, "probes": 16, "block": None, "seed": 0,
                                   "lanczos": 20}
EXACT_DIAGONAL = 512  # up to this many parameters the diagonal is taken exactly (p products)


def cg_control(control: Any) -> dict[str, Any]:
    """tl.infer's ``cg_control`` checked and completed with the defaults.

    Returns
    -------
    dict with keys tol, maxiter, probes, block, seed.
    """
    if control is None:
        return dict(DEFAULT_CONTROL)
    if not isinstance(control, dict):
        raise ModelInputError(f"cg_control must be a dict (keys {', '.join(DEFAULT_CONTROL)}), not "
                              f"{type(control).__name__}")
    unknown = [k for k in control if k not in DEFAULT_CONTROL]
    if unknown:
        raise ModelInputError(f"cg_control has no key {unknown[0]!r}; keys: {', '.join(DEFAULT_CONTROL)}")
    out = {**DEFAULT_CONTROL, **control}
    tol = out["tol"]
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and 0 < float(tol) < 1):
        raise ModelInputError(f"cg_control['tol'] must be a number in (0, 1), not {tol!r}")
    for key, least in (("maxiter", 1), ("probes", 1), ("block", 1), ("seed", 0), ("lanczos", 0)):
        v = out[key]
        if key in ("maxiter", "block") and v is None:
            continue
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= least):
            raise ModelInputError(f"cg_control[{key!r}] must be a whole number >= {least}, not {v!r}")
    return out


class HessianOperator:
    """H @ V for the Hessian H of sum_c f_c(theta), without forming H.

    Each product is forward-over-reverse (torch.func.jvp of grad), vmapped over ``block`` columns at a time
    and summed over the objectives (row chunks) that ``objectives()`` yields; an objective with an operation
    that has no forward-mode derivative in torch gets reverse-over-reverse products (vjp of grad) instead.
    ``guard()`` is entered around every evaluation (tl.infer: the model's lock and eval mode).
    """

    def __init__(self, objectives: Callable[[], Iterable[Callable]], theta: torch.Tensor, block: int = 32,
                 guard: Callable[[], AbstractContextManager] = nullcontext):
        self.objectives, self.theta, self.block, self.guard = objectives, theta.detach(), block, guard
        self.k = theta.numel()
        self.products = 0  # Hessian-vector products so far (columns times passes)
        self._forward = True

    def value_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The summed objective and its gradient at theta.

        Returns
        -------
        (float, torch.Tensor of shape (p,))
        """
        g, value = torch.zeros_like(self.theta), 0.0
        with self.guard():
            for f in self.objectives():
                gk, v = quiet(grad_and_value(f))(self.theta)
                g += gk.detach()
                value += float(v.detach())
        return value, g

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        """H @ V.

        Parameters
        ----------
        V : (p, m) tensor of directions.

        Returns
        -------
        torch.Tensor of shape (p, m).
        """
        out = torch.zeros_like(V)
        T = V.T.contiguous()
        with self.guard():
            for f in self.objectives():
                out += self._products(grad(f), T).T
        self.products += V.shape[1]
        return out

    def _products(self, df: Callable, T: torch.Tensor) -> torch.Tensor:
        theta = self.theta

        def forward(t: torch.Tensor) -> torch.Tensor:
            return jvp(df, (theta,), (t,))[1]

        if self._forward:
            try:
                return quiet(vmap(forward, chunk_size=self.block))(T).detach()
            except NotImplementedError:  # "Trying to use forward AD with ... that does not support it"
                self._forward = False
        pullback = quiet(vjp)(df, theta)[1]

        def reverse(t: torch.Tensor) -> torch.Tensor:
            return pullback(t)[0]

        return quiet(vmap(reverse, chunk_size=self.block))(T).detach()

    def diagonal(self, probes: int, seed: int, labels: list[str]) -> torch.Tensor:
        """diag(H) as CG's (Jacobi) preconditioner: exact up to EXACT_DIAGONAL parameters (a negative entry is
        negative curvature: NotAtMinimumError), else Hutchinson's estimate mean(v * Hv) over Rademacher v;
        entries floored at a positive value.

        Returns
        -------
        torch.Tensor of shape (p,), positive.
        """
        k, th = self.k, self.theta
        if k <= max(probes, EXACT_DIAGONAL):
            d = torch.cat([self(torch.eye(k, dtype=th.dtype, device=th.device)[:, i:i + 256]).diagonal(offset=-i)
                           for i in range(0, k, 256)])
            if bool((d < 0).any()):
                bad = [labels[i] for i in torch.nonzero(d < 0).flatten().tolist()]
                raise NotAtMinimumError(
                    f"the Hessian has negative curvature: its diagonal is negative for {_names(bad)}, so the "
                    "parameters are at a saddle point or maximum, not a minimum, and have no standard errors there; "
                    "train further (or from another start) and check the loss")
        else:
            gen = torch.Generator(device=th.device).manual_seed(seed)
            v = torch.randint(0, 2, (k, probes), generator=gen, device=th.device).to(th.dtype) * 2 - 1
            d = (v * self(v)).mean(dim=1)
        positive = d[d > 0]
        floor = float(positive.median()) * 1e-3 if positive.numel() else 1.0
        return torch.where(d > floor, d, torch.full_like(d, floor))


def check_curvature(H: Callable[[torch.Tensor], torch.Tensor], diag: torch.Tensor, steps: int, seed: int,
                    singular_tol: float, labels: list[str]) -> float:
    """The smallest Ritz value of the unit-diagonal Hessian D^-1/2 H D^-1/2 after ``steps`` Lanczos steps
    (fully reorthogonalised) from a random start; NotAtMinimumError when it is below -singular_tol.

    Ritz values lie within the spectrum, so a negative one proves negative curvature; the leftmost
    eigenvalue is found first, but a few steps can miss a small negative one.

    Returns
    -------
    float, the smallest Ritz value (nan for steps = 0).
    """
    k = diag.numel()
    steps = min(steps, k)
    if steps == 0:
        return float("nan")
    s = diag.rsqrt()
    gen = torch.Generator(device=diag.device).manual_seed(seed + 1)
    q = torch.randn(k, generator=gen, device=diag.device, dtype=diag.dtype)
    Q = [q / q.norm()]
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(steps):
        w = s * H((s * Q[j]).reshape(-1, 1))[:, 0]
        alpha.append(float(Q[j] @ w))
        Qm = torch.stack(Q, dim=1)
        w = w - Qm @ (Qm.T @ w)
        w = w - Qm @ (Qm.T @ w)  # twice is enough (Kahan-Parlett)
        b = float(w.norm())
        if j == steps - 1 or b <= 1e-10 * max(abs(a) for a in alpha):
            break
        beta.append(b)
        Q.append(w / b)
    T = torch.diag(torch.tensor(alpha, dtype=diag.dtype))
    if beta:
        off = torch.tensor(beta[:len(alpha) - 1], dtype=diag.dtype)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    w_, y = torch.linalg.eigh(T)
    low = float(w_[0])
    if low < -singular_tol:
        u = s * (torch.stack(Q[:len(alpha)], dim=1) @ y[:, 0].to(diag.device))
        raise NotAtMinimumError(
            f"the Hessian has negative curvature (an eigenvalue at most {low:.3g} on the unit-diagonal scale, found "
            f"by Lanczos) along roughly {_combination(u.cpu().numpy(), labels)}: the parameters are at a saddle "
            "point or maximum, not a minimum, and have no standard errors there; train further (or from another "
            "start) and check the loss")
    return low


@dataclass
class Solution:
    """Conjugate gradients' solution of H X = B, column by column.

    Attributes
    ----------
    X : (p, m) solutions (the last iterate where a column did not converge).
    iterations : (m,) iterations per column.
    residual : (m,) final ||B - H X|| / ||B|| per column.
    converged : (m,) bool.
    flat : (m,) bool: CG met a direction of (near) zero curvature in that column.
    flat_directions : the first such direction of each flat column, by column.
    """

    X: torch.Tensor
    iterations: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    flat: np.ndarray
    flat_directions: dict[int, torch.Tensor]


def conjugate_gradients(H: Callable[[torch.Tensor], torch.Tensor], B: torch.Tensor, diag: torch.Tensor, *,
                        tol: float, maxiter: int, singular_tol: float, labels: list[str]) -> Solution:
    """Solve H X = B by preconditioned conjugate gradients (Jacobi: ``diag``), each column on its own but
    their products in one call of H per iteration; converged and flat columns drop out.

    Raises NotAtMinimumError where a direction has curvature p'Hp / p'Dp below -singular_tol.

    Returns
    -------
    Solution
    """
    k, m = B.shape
    X = torch.zeros_like(B)
    R = B.clone()
    Z = R / diag[:, None]
    P = Z.clone()
    rz = (R * Z).sum(0)
    bnorm = B.norm(dim=0)
    iters = np.zeros(m, dtype=int)
    resid = np.where(bnorm.cpu().numpy() > 0, 1.0, 0.0)
    done = bnorm.cpu().numpy() == 0
    flat = np.zeros(m, bool)
    directions: dict[int, torch.Tensor] = {}
    for _ in range(maxiter):
        idx = np.flatnonzero(~done & ~flat)
        if not idx.size:
            break
        it = torch.as_tensor(idx, device=B.device)
        Pa = P[:, it]
        HP = H(Pa)
        pHp = (Pa * HP).sum(0)
        q = (pHp / (Pa * Pa * diag[:, None]).sum(0)).cpu().numpy()
        if (q < -singular_tol).any():
            j = int(np.argmin(q))
            raise NotAtMinimumError(
                f"the Hessian has negative curvature ({q[j]:.3g} on the unit-diagonal scale) along a direction "
                f"conjugate gradients met, roughly {_combination(Pa[:, j].cpu().numpy(), labels)}: the parameters "
                "are at a saddle point or maximum, not a minimum, and have no standard errors there; train "
                "further (or from another start) and check the loss")
        now_flat = q <= singular_tol
        for c in np.flatnonzero(now_flat):
            flat[idx[c]] = True
            directions[int(idx[c])] = Pa[:, c].clone()
        go = torch.as_tensor(~now_flat, device=B.device)
        alpha = torch.where(go, rz[it] / torch.where(go, pHp, torch.ones_like(pHp)), torch.zeros_like(pHp))
        X[:, it] += alpha * Pa
        R[:, it] -= alpha * HP
        iters[idx] += 1
        rn = (R[:, it].norm(dim=0) / bnorm[it]).cpu().numpy()
        resid[idx] = rn
        done[idx] |= (rn <= tol) & ~now_flat
        Zi = R[:, it] / diag[:, None]
        rz_new = (R[:, it] * Zi).sum(0)
        P[:, it] = Zi + (rz_new / rz[it]) * Pa
        rz[it] = rz_new
    return Solution(X, iters, resid, done & ~flat, flat, directions)


def default_maxiter(k: int) -> int:
    """CG's default iteration limit for p = k parameters: min(max(4k, 100), 2000). In exact arithmetic CG ends
    within k iterations; in floating point it takes about sqrt(condition number) / 2 * log(2 / tol).

    Returns
    -------
    int
    """
    return min(max(4 * k, 100), 2000)


class MatrixFreeCovariance:
    """The covariance scale * H^-1 of all the estimated parameters, held as solves with H, not as a matrix.

    Attributes
    ----------
    labels : the element labels of every estimated parameter (p of them).
    scale : the covariance's factor of H^-1 (1 for a negative log-likelihood).
    control : the CG settings (tol, maxiter, probes, block, seed).
    info : what the solves behind the result took (iterations, Hessian-vector products, residuals,
        newton_distance: sqrt(g' H^-1 g / scale), the largest distance of any linear combination of the
        parameters from where one Newton step puts it, in its standard errors).
    """

    def __init__(self, operator: HessianOperator, labels: list[str], scale: float, diag: torch.Tensor,
                 control: dict[str, Any], singular_tol: float):
        self.operator, self.labels, self.scale = operator, list(labels), float(scale)
        self.diag, self.control, self.singular_tol = diag, control, singular_tol
        self.info: dict[str, Any] = {}
        self._index = {n: i for i, n in enumerate(self.labels)}

    def solve(self, B: Any, what: list[str] | None = None) -> torch.Tensor:
        """H^-1 B by conjugate gradients (unscaled), warning for columns that did not converge or met a flat
        direction (those are NaN).

        Parameters
        ----------
        B : (p,) or (p, m) array or tensor.
        what : names of the columns, for the warnings.

        Returns
        -------
        torch.Tensor of shape (p, m) (or (p,) for a vector).
        """
        th = self.operator.theta
        Bt = torch.as_tensor(np.asarray(B, dtype=np.float64) if not isinstance(B, torch.Tensor) else B)
        Bt = Bt.to(device=th.device, dtype=th.dtype)
        vector = Bt.ndim == 1
        Bt = Bt.reshape(self.operator.k, -1)
        sol = self.run(Bt)
        self.report(sol, what or [f"column {j}" for j in range(Bt.shape[1])])
        X = sol.X.clone()
        X[:, torch.as_tensor(sol.flat, device=X.device)] = float("nan")
        return X[:, 0] if vector else X

    def run(self, B: torch.Tensor) -> Solution:
        """conjugate_gradients with this covariance's settings, without warnings.

        Returns
        -------
        Solution
        """
        c = self.control
        maxiter = c["maxiter"] if c["maxiter"] is not None else default_maxiter(self.operator.k)
        return conjugate_gradients(self.operator, B, self.diag, tol=c["tol"], maxiter=maxiter,
                                   singular_tol=self.singular_tol, labels=self.labels)

    def report(self, sol: Solution, what: list[str]) -> None:
        """Warn about the columns of a solution that did not converge (TorchlmWarning).

        Returns
        -------
        None
        """
        bad = [n for n, ok, f in zip(what, sol.converged, sol.flat) if not ok and not f]
        if bad:
            worst = float(np.max(sol.residual[~sol.converged & ~sol.flat]))
            warn(f"conjugate gradients did not converge in {int(sol.iterations.max())} iterations for "
                 f"{_names(bad)} (relative residual up to {worst:.3g}, tolerance {self.control['tol']:g}): their "
                 "variances are too small (CG's estimate of b'H^-1 b grows towards it); raise "
                 "cg_control={'maxiter': ...}, or the Hessian is near singular", TorchlmWarning, stacklevel=3)

    def _vectors(self, C: Any) -> tuple[np.ndarray, list[str]]:
        """C as a (p, m) array over ``labels``, and names for its columns."""
        if isinstance(C, dict) or (isinstance(C, list) and C and all(isinstance(c, dict) for c in C)):
            dicts = [C] if isinstance(C, dict) else C
            out = np.zeros((len(self.labels), len(dicts)))
            for j, d in enumerate(dicts):
                for name, v in d.items():
                    if name not in self._index:
                        raise ModelInputError(f"{name!r} is not an element label of the estimated parameters "
                                              f"(such as {self.labels[0]!r})")
                    out[self._index[name], j] = float(v)
            return out, [" + ".join(f"{v:g}*{n}" for n, v in d.items()) for d in dicts]
        a = np.asarray(C, dtype=np.float64)
        if a.ndim not in (1, 2) or a.shape[0] != len(self.labels) or not np.isfinite(a).all():
            raise ModelInputError(f"C must be finite with {len(self.labels)} rows (one per estimated parameter) "
                                  f"or a dict element label -> coefficient, not shape {a.shape}")
        a = a.reshape(len(self.labels), -1)
        return a, [f"c{j}" for j in range(a.shape[1])]

    def covariance(self, C: Any) -> pd.DataFrame:
        """The covariance of linear combinations C' theta of the parameters: scale * C' H^-1 C.

        Parameters
        ----------
        C : (p,) or (p, m) coefficients over ``labels``, a dict element label -> coefficient (one
            combination), or a list of such dicts.

        Returns
        -------
        pandas.DataFrame (m, m); its diagonal's square roots are the combinations' standard errors.
        """
        a, names = self._vectors(C)
        X = self.solve(a, names).reshape(len(self.labels), -1)
        A = torch.as_tensor(a, dtype=X.dtype, device=X.device)
        # second order in CG's errors (see solve_reported)
        V = self.scale * (A.T @ X + X.T @ A - X.T @ self.operator(X)).cpu().numpy()
        return pd.DataFrame((V + V.T) / 2, index=names, columns=names)

    def columns(self, parm: Any) -> pd.DataFrame:
        """Whole columns of the covariance: every parameter's covariance with each of ``parm``.

        Parameters
        ----------
        parm : element labels (a str or a list).

        Returns
        -------
        pandas.DataFrame (p, r), indexed by ``labels``.
        """
        parm = [parm] if isinstance(parm, str) else list(parm)
        a, _ = self._vectors([{n: 1.0} for n in parm])
        X = self.solve(a, parm).reshape(len(self.labels), -1).cpu().numpy()
        return pd.DataFrame(self.scale * X, index=self.labels, columns=parm)

    def approximate_std_errors(self, probes: int = 64, seed: int = 0) -> pd.DataFrame:
        """APPROXIMATE standard errors of every parameter: Hutchinson's estimate of diag(H^-1),
        mean over K Rademacher probes v of v * (H^-1 v), with K CG solves.

        The estimate of (H^-1)_ii is unbiased with variance sum_{j != i} (H^-1)_ij^2 / K: it is accurate only
        where the inverse Hessian is close to diagonal. Its Monte Carlo standard error (the spread over the
        probes / sqrt(K)) is returned with it; an estimate at or below 0 gives NaN.

        Parameters
        ----------
        probes : K, the number of probes (and CG solves).
        seed : seed of the probes.

        Returns
        -------
        pandas.DataFrame indexed by ``labels``: "Variance (approx.)", "MC error of the variance",
        "Std. Error (approx.)" (sqrt(scale * variance)), "relative MC error of the Std. Error" (half the
        variance's).
        """
        for name, value, least in (("probes", probes, 2), ("seed", seed, 0)):
            if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= least):
                raise ModelInputError(f"{name} must be a whole number >= {least}, not {value!r}")
        th = self.operator.theta
        gen = torch.Generator(device=th.device).manual_seed(seed)
        v = torch.randint(0, 2, (self.operator.k, probes), generator=gen, device=th.device).to(th.dtype) * 2 - 1
        X = self.solve(v, [f"probe {j}" for j in range(probes)])
        each = (v * X).cpu().numpy()
        var = self.scale * each.mean(axis=1)
        mc = self.scale * each.std(axis=1, ddof=1) / math.sqrt(probes)
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.where(var > 0, np.sqrt(np.abs(var)), np.nan)
            rel = np.where(var > 0, mc / np.abs(var) / 2, np.nan)
        return pd.DataFrame({"Variance (approx.)": var, "MC error of the variance": mc, "Std. Error (approx.)": se,
                             "relative MC error of the Std. Error": rel}, index=self.labels)


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


@dataclass
class Reported:
    """What the matrix-free solves give tl.infer for the reported parameters S (r of p).

    cov : (r, r) unscaled block of H^-1; NaN-free (rows of flat columns 0).
    columns : (p, r) the columns H^-1 e_j of S (for the projected scores of robust covariances).
    newton : (r,) the reported part of the Newton step H^-1 g.
    hessian : (r, r) block H_SS of the Hessian.
    identifiable : (r,) False where CG met a flat direction.
    flat : descriptions of the flat directions met.
    """

    cov: np.ndarray
    columns: torch.Tensor
    newton: np.ndarray
    hessian: np.ndarray
    identifiable: np.ndarray
    flat: list[str]


def solve_reported(mf: MatrixFreeCovariance, keep: np.ndarray, g: torch.Tensor) -> Reported:
    """The r CG solves H x = e_j for the reported parameters and one for the Newton step, batched.

    Returns
    -------
    Reported
    """
    op, th = mf.operator, mf.operator.theta
    idx = np.flatnonzero(keep)
    r = idx.size
    E = torch.zeros(op.k, r, dtype=th.dtype, device=th.device)
    E[torch.as_tensor(idx, device=th.device), torch.arange(r, device=th.device)] = 1.0
    sol = mf.run(torch.cat([E, g.reshape(-1, 1)], dim=1))
    names = [mf.labels[i] for i in idx]
    mf.report(sol, names + ["the Newton step (of the check that the fit is at an optimum)"])
    Zc = sol.X[:, :r]
    ok = ~sol.flat[:r]
    at = torch.as_tensor(idx, device=th.device)
    # e_i'x_j + e_j'x_i - x_i'H x_j: its error is second order in CG's errors, as the diagonal's (e_i'x_j alone
    # is first order), for one more product per column
    B = Zc[at] + Zc[at].T - Zc.T @ op(Zc)
    block = ((B + B.T) / 2).cpu().numpy()
    block[~ok] = 0.0
    block[:, ~ok] = 0.0
    newton = sol.X[:, r]
    gHg = float(g @ newton)
    mf.info = {"iterations": int(sol.iterations.max()), "iterations_per_column": sol.iterations.copy(),
               "residual": float(sol.residual.max()), "residual_per_column": sol.residual.copy(),
               "products": op.products,
               "newton_distance": math.sqrt(max(gHg, 0.0) / mf.scale) if mf.scale > 0 else float("nan")}
    HS = op(E)[torch.as_tensor(idx, device=th.device)].cpu().numpy()
    flat = [_combination(d.cpu().numpy(), mf.labels) for d in list(sol.flat_directions.values())[:3]]
    return Reported(block, Zc, newton.cpu().numpy()[idx], (HS + HS.T) / 2, ok, flat)
