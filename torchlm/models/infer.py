"""tl.infer(): standard errors, tests and intervals for the parameters of a fitted torch.nn.Module and its loss.

The covariance comes from the Hessian of the loss summed over observations (whatever the loss's reduction),
scaled by what the loss is: a negative log-likelihood (scale 1), a squared error (2 sigma-hat^2 with n - p df)
or a quasi-likelihood (Pearson dispersion). Hessians are built from vmapped Hessian-vector products over
chunks of rows, per-observation gradients (for sandwich and cluster covariances) with vmap(grad). Past
max_params, or on request, no Hessian is formed: conjugate gradients on the products give the columns of
its inverse for the reported parameters (torchlm.inference.matrix_free).
"""

from __future__ import annotations

import copy
import math
import numbers
import threading
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from torchlm.errors import ModelInputError, TorchlmError
from torchlm.inference.matrix_free import HessianOperator, MatrixFreeCovariance, check_curvature, solve_reported
from torchlm.inference.matrix_free import cg_control as cg_control_checked
from torchlm.models.infer_losses import ELEMENTWISE, M_ESTIMATORS, LossSpec, loss_spec, scaling
from torchlm.results.curvature import Curvature, analyse_curvature, summed_hessian
from torchlm.results.estimates import Estimates, element_names, name_list, positive_number, user_stacklevel
from torchlm.results.likelihood import Likelihood
from torchlm.solvers.autograd import func_jacobian, quiet

MAX_PARAMS = 5000
# rows per reverse-mode Jacobian where vmap cannot trace the loss
SCORE_ROWS = 64
# rows x parameter tangents pushed through the model at once when building the Hessian
ROW_TANGENT_BUDGET = 2**18
PARAM_BLOCK = 64


@contextmanager
def _eval_mode(model: nn.Module):
    # dropout off and batch-norm on its running statistics: a deterministic, row-wise function; restored after
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, t in modes:
            m.train(t)


def _float64_model(model: nn.Module, device) -> nn.Module:
    """The model in float64: itself when it already is, else a converted deep copy (tensor attributes too)."""
    def tensors(mod):
        for k, v in vars(mod).items():
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter) and v.is_floating_point():
                yield k, v

    floats = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    floats += [v for m in model.modules() for _, v in tensors(m)]
    if all(t.dtype == torch.float64 for t in floats):
        return model
    try:
        m64 = copy.deepcopy(model)
    except Exception as e:
        raise ModelInputError(f"could not copy the model to convert it to float64 ({e}); "
                              "call model.double() and pass float64 data") from e
    m64.to(dtype=torch.float64)
    for m in m64.modules():
        for k, v in list(tensors(m)):
            # data kept as plain attributes (self.X = X) is not moved by .to(): convert it too
            object.__setattr__(m, k, v.to(device=device, dtype=torch.float64))
    return m64


def _select(model: nn.Module, params) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if not named:
        raise ModelInputError(f"the model ({type(model).__name__}) has no parameters (nn.Parameter): there is "
                              "nothing to estimate; register its weights as nn.Parameter")
    if params is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
        if not chosen:
            raise ModelInputError("the model has no free parameters: all are frozen (requires_grad=False)")
        return chosen
    if isinstance(params, str):
        params = [params]
    chosen, names = [], {n for n, _ in named}
    for want in params:
        hits = [(n, p) for n, p in named if n == want or n.startswith(want + ".")]
        if not hits:
            raise ModelInputError(f"{want!r} is not a parameter (or module prefix) of the model; "
                                  f"parameters: {name_list(sorted(names))}")
        frozen = [n for n, p in hits if not p.requires_grad]
        if frozen:
            raise ModelInputError(f"{name_list(frozen)} frozen (requires_grad=False): unfreeze to include")
        chosen += [h for h in hits if h[0] not in {c[0] for c in chosen}]
    order = [n for n, _ in named]
    return sorted(chosen, key=lambda h: order.index(h[0]))


def _as_data(x: Any, device: Any, what: str, floating: bool = False, lists: bool = False) -> Any:
    """An input or target as the model gets it: tensors (numpy arrays and array-likes converted) on the
    model's device, floating ones in float64 (integer ones too where ``floating``: a regression target
    given as integers); other objects unchanged (a flag, a dict). Non-finite values are refused."""
    if not isinstance(x, torch.Tensor):
        if not (isinstance(x, np.ndarray) or hasattr(x, "__array__") or (lists and isinstance(x, (list, tuple)))):
            return x
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise ModelInputError(f"{what} could not be made an array ({e}): pass a tensor or a numeric array") from e
        if a.dtype.kind not in "biuf":
            raise ModelInputError(f"{what} is an array of {a.dtype}, not numbers: pass a numeric tensor or array "
                                  "(encode categories as integer codes)")
        if a.ndim == 0:  # a numpy scalar: an argument like any other number, passed as given
            return x
        x = torch.as_tensor(a.astype(np.float64) if a.dtype.kind == "f" else a)
    x = x.detach().to(device)
    if floating and not x.is_floating_point() and not x.is_complex():
        x = x.to(torch.float64)
    if x.is_floating_point():
        x = x.to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ModelInputError(f"{what} has {bad} NaN or infinite value{'s' if bad > 1 else ''}: tl.infer needs "
                                  "finite data; drop or impute those rows")
    return x


def _arguments(inputs: Any, target: Any, loss: Any, device: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The model's positional inputs and the loss's target, as tensors (see _as_data)."""
    args: tuple[Any, ...]
    if inputs is None:
        args = ()
    elif isinstance(inputs, (tuple, list)):
        args = tuple(_as_data(a, device, f"input {i}") for i, a in enumerate(inputs))
    else:
        args = (_as_data(inputs, device, "inputs"),)
    # these torch losses need a floating target of the output's dtype (an integer one raises deep in torch);
    # class labels (CrossEntropyLoss, NLLLoss) and a user's loss get the target as given
    floating = isinstance(loss, (*ELEMENTWISE, *M_ESTIMATORS, nn.L1Loss))
    tgt = () if target is None else (_as_data(target, device, "target", floating=floating, lists=True),)
    return args, tgt


# tl.infer evaluates the model by torch.func.functional_call, which swaps tensors into the module's
# parameter slots, and in eval mode, which flips its training flags; both are restored afterwards. Two
# calls on one model at once would see, and could restore, each other's swaps (the model left holding
# plain tensors): each model has a lock, held while tl.infer (or its scores, later) uses it.
_model_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_model_locks_guard = threading.Lock()


_unhashable_models_lock = threading.RLock()


def _model_lock(model: nn.Module) -> threading.RLock:
    with _model_locks_guard:
        try:
            lock = _model_locks.get(model)
            if lock is None:
                lock = _model_locks[model] = threading.RLock()
        except TypeError:  # a module class made unhashable (its own __eq__): one lock for all of those
            return _unhashable_models_lock
        return lock


def _check_options(dispersion: Any, chunk_size: Any, max_params: Any, optimum_tol: Any, singular_tol: Any) -> None:
    """ModelInputError for an option of tl.infer of the wrong type or out of range."""
    if dispersion is not None and not (isinstance(dispersion, str) and dispersion == "estimate") and not (
            isinstance(dispersion, numbers.Real) and not isinstance(dispersion, bool)
            and math.isfinite(dispersion) and float(dispersion) > 0):
        raise ModelInputError(f"dispersion must be None, 'estimate' or a positive number, not {dispersion!r}")
    if chunk_size is not None:
        positive_number("chunk_size", chunk_size, whole=True)
    positive_number("max_params", max_params, whole=True)
    positive_number("optimum_tol", optimum_tol)
    positive_number("singular_tol", singular_tol)


def infer(model: nn.Module, loss: Any, inputs: Any = None, target: Any = None, *, dispersion: Any = None,
          params: Any = None, others: str = "estimated", hessian: str = "auto",
          chunk_size: int | None = None, max_params: int = MAX_PARAMS, optimum_tol: float = 1e-3,
          singular_tol: float = 1e-10, cg_control: dict | None = None) -> Estimates:
    """Standard errors, tests and intervals for a fitted torch model's parameters, from its loss.

    The loss is summed over observations (rows) whatever its reduction, and the covariance is
    scale * inverse(Hessian of that sum) at the model's current parameter values, in float64.

    Parameters
    ----------
    model : the fitted nn.Module (not modified; evaluated in eval mode, in float64).
    loss : a torch loss (MSELoss, BCEWithLogitsLoss, BCELoss, PoissonNLLLoss, CrossEntropyLoss, NLLLoss, or
        another with `reduction`), or a function loss(output, target) returning a sum or mean over
        observations, or one value per observation.
    inputs : what the model is called with: a tensor, a tuple of tensors (model(*inputs)), or None for a
        model that holds its data (model()). Tensors have one row per observation.
    target : the loss's target (one row per observation), or None for loss(output).
    dispersion : None: from the loss (MSELoss: sigma^2 estimated as RSS / (n - p); the likelihood losses:
        1). A number: known dispersion (vcov = dispersion * inverse Hessian of the unit-dispersion nll).
        "estimate": Pearson estimate (quasi-binomial, quasi-Poisson); for a loss function, treats it as a
        squared error: vcov = 2 * sum(loss) / (n - p) * inverse Hessian. A loss function needs 1 (it is a
        negative log-likelihood) or "estimate".
    params : the parameters to report: names, module prefixes (the last layer, "head") or element labels
        ("fc.weight[0,2]"); default all with requires_grad.
    others : what the parameters not in ``params`` are. "estimated" (default): fitted to the same data too,
        so the covariance reported is the block of the whole inverse Hessian (R's vcov(fit)[sub, sub]).
        "fixed": known constants (R's offset, stats4's mle(fixed=)): the inverse of the subset's own
        Hessian, which is smaller; freezing them with requires_grad_(False) does the same.
    hessian : "auto" (default): dense up to max_params estimated parameters, else "matrix_free".
        "dense": the p x p Hessian from p Hessian-vector products. "matrix_free": no p x p matrix; one
        conjugate-gradient solve of Hessian-vector products per reported parameter (``res.matrix_free``
        solves for any other column or linear combination).
    chunk_size : rows per chunk for the Hessian and per-observation gradients (default from the model size).
    max_params : most estimated parameters for a dense Hessian; most reported ones (CG solves) without it.
    optimum_tol : warn when one Newton step would move any estimate by more than this many standard errors.
    singular_tol : eigenvalue (curvature, matrix-free) of the unit-diagonal Hessian below which a direction
        counts as flat.
    cg_control : matrix-free settings, a dict: tol (relative residual, 1e-8), maxiter (min(max(4p, 100),
        2000)), probes (of the diagonal estimate that preconditions CG past 512 parameters, 16), block
        (products per vmapped pass: 32 to 512, more for fewer rows), seed (of the probes, 0), lanczos
        (steps of the check for negative curvature, 20; 0 skips it).

    Returns
    -------
    Estimates
    """
    if not isinstance(model, nn.Module):
        raise ModelInputError(f"model must be a torch.nn.Module, not {type(model).__name__} (use tl.mle for a "
                              "negative log-likelihood function)")
    _check_options(dispersion, chunk_size, max_params, optimum_tol, singular_tol)
    control = cg_control_checked(cg_control)
    with _model_lock(model):
        chosen, wanted = _choose(model, params, others)
        names = [n for n, _ in chosen]
        shapes = [tuple(p.shape) for _, p in chosen]
        labels = [e for n, s in zip(names, shapes) for e in element_names(n, s)]
        keep = _report_mask(model, wanted, names, shapes, labels)
        k = len(labels)
        mode = _hessian_mode(hessian, k, int(keep.sum()), max_params)
        device = chosen[0][1].device
        m64 = _float64_model(model, device)
        sizes = [p.numel() for _, p in chosen]
        theta = torch.cat([p.detach().reshape(-1).to(device=device, dtype=torch.float64) for _, p in chosen])
        args, tgt = _arguments(inputs, target, loss, device)

        def call(th, a):
            ps = dict(zip(names, (t.reshape(s) for t, s in zip(torch.split(th, sizes), shapes))))
            return functional_call(m64, ps, a)

        if chunk_size is None and mode == "dense":
            chunk_size = max(1, ROW_TANGENT_BUDGET // min(k, PARAM_BLOCK))
        pb = _Problem(model, m64, call, theta, labels, names, shapes, args, tgt, dispersion, device, keep)
        with _eval_mode(m64):
            _prepare(pb, loss, chunk_size, control)
            if mode == "matrix_free":
                return _infer_matrix_free(pb, control, optimum_tol, singular_tol)
            return _infer(pb, optimum_tol, singular_tol)


def _choose(model: nn.Module, params: Any, others: Any) -> tuple[list[tuple[str, nn.Parameter]], list[str] | None]:
    """The estimated parameters, and what ``params`` asks to report among them (None: all of them)."""
    if not (isinstance(others, str) and others in ("estimated", "fixed")):
        raise ModelInputError(f"others must be 'estimated' (the parameters not in params were fitted too: the "
                              f"block of the whole inverse Hessian) or 'fixed' (they are known constants: the "
                              f"inverse of the subset's Hessian), not {others!r}")
    if params is None:
        return _select(model, None), None
    wants = [params] if isinstance(params, str) else list(params)
    if not all(isinstance(w, str) for w in wants) or not wants:
        raise ModelInputError(f"params must be parameter names, module prefixes or element labels (str), not "
                              f"{params!r}")
    if others == "fixed":
        return _select(model, wants), None
    return _select(model, None), wants


def _report_mask(model: nn.Module, wanted: list[str] | None, names: list[str], shapes: list[tuple[int, ...]],
                 labels: list[str]) -> np.ndarray:
    """Which element labels ``wanted`` (names, module prefixes, element labels) selects."""
    keep = np.zeros(len(labels), bool)
    if wanted is None:
        keep[:] = True
        return keep
    starts = np.cumsum([0] + [math.prod(s) for s in shapes])
    at = {lab: i for i, lab in enumerate(labels)}
    for want in wanted:
        hits = [j for j, n in enumerate(names) if n == want or n.startswith(want + ".")]
        if not hits and want in at:
            keep[at[want]] = True
            continue
        if not hits:
            _select(model, [want])  # names a frozen parameter, or none: its error
            raise ModelInputError(f"{want!r} is not a parameter, module prefix or element label of the model")
        for j in hits:
            keep[starts[j]:starts[j + 1]] = True
    return keep


def _hessian_mode(hessian: Any, k: int, r: int, max_params: int) -> str:
    """'dense' or 'matrix_free' for k estimated parameters of which r are reported; errors past the limits."""
    if not (isinstance(hessian, str) and hessian in ("auto", "dense", "matrix_free")):
        raise ModelInputError(f"hessian must be 'auto', 'dense' or 'matrix_free', not {hessian!r}")
    size = (f"the model has {k:,} free parameters: a dense Hessian is {k:,} x {k:,} ({k * k * 8 / 2**30:.2g} GiB "
            f"in float64) and takes {k:,} gradient passes")
    subset = ("Pass params=[...] (names, module prefixes or element labels, e.g. the last layer) for the standard "
              "errors of those (the others estimated too), params=[...] with others='fixed' for standard errors "
              "conditional on the others, freeze parameters with requires_grad_(False), or raise max_params")
    if hessian == "dense" or (hessian == "auto" and k <= max_params):
        if k > max_params:
            raise ModelInputError(f"{size}. hessian='matrix_free' needs no such matrix. {subset}")
        return "dense"
    if r > max_params:
        raise ModelInputError(
            f"{size}; without it, exact standard errors of {r:,} parameters take {r:,} conjugate-gradient solves "
            f"(each tens to thousands of Hessian-vector products over all rows). {subset}. Approximate ones for "
            "every parameter: res.matrix_free.approximate_std_errors() of a result for a few")
    return "matrix_free"


@dataclass
class _Problem:
    """What tl.infer evaluates: the model, its parameters, the data and (after _prepare) the loss."""

    model: nn.Module
    m64: nn.Module
    call: Callable
    theta: torch.Tensor
    labels: list[str]
    keys: list[str]
    shapes: list[tuple[int, ...]]
    args: tuple
    tgt: tuple
    dispersion: Any
    device: Any
    keep: np.ndarray
    n: int = 0
    spec: Any = None
    chunks: Any = None
    objectives: Any = None
    rows: bool = True


def _check_output(out0: Any, args: tuple, tgt: tuple) -> tuple[int, bool]:
    """The output's number of rows, and whether the inputs are per-row tensors; errors for mismatched shapes."""
    if not isinstance(out0, torch.Tensor):
        raise ModelInputError(f"the model returned {type(out0).__name__}: tl.infer needs a tensor output")
    if out0.dtype != torch.float64 and out0.is_floating_point():
        warnings.warn(f"the model's output is {out0.dtype} after conversion to float64 (it makes tensors of its "
                      "own dtype in forward): digits are lost", stacklevel=user_stacklevel())
    n = out0.shape[0] if out0.ndim else 1
    if tgt and tgt[0].shape[:1] != out0.shape[:1]:
        raise ModelInputError(f"the target has {tgt[0].shape[0]} rows and the model's output {n}")
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    for i in tensors:
        if args[i].ndim == 0 or args[i].shape[0] != n:
            raise ModelInputError(
                f"input {i} has shape {tuple(args[i].shape)}, but the output has {n} rows: every tensor input "
                "needs one row per observation (keep other tensors in the model)")
    return n, bool(tensors)


def _observation_sums(chunks: Callable, call: Callable, theta: torch.Tensor,
                      spec: LossSpec) -> tuple[int, float, float]:
    """Per-observation quantities at the estimate: residual count, Pearson statistic, Poisson log-likelihood."""
    n_resid, pearson, ll = 0, 0.0, 0.0
    with torch.no_grad():
        for a, t in chunks():
            o = call(theta, a)
            # residuals are elements (one per squared error or Pearson term); a class label is one per row
            n_resid += o.shape[0] if spec.family == "multinomial" else (t[0] if t else o).numel()
            # a LossSpec has both or neither of mean and variance
            if spec.mean is not None and spec.variance is not None:
                mu = spec.mean(o)
                pearson += float(((t[0] - mu) ** 2 / spec.variance(mu)).sum())
                if spec.family == "poisson":
                    ll += float((torch.xlogy(t[0], mu) - mu - torch.lgamma(t[0] + 1)).sum())
    return n_resid, pearson, ll


def _prepare(pb: _Problem, loss: Any, chunk_size: int | None, control: dict[str, Any]) -> None:
    """The loss's spec, the row chunks and their objectives, after the checks of the output and the loss.
    Matrix-free (chunk_size None): rows x tangents per vmapped pass within ROW_TANGENT_BUDGET / 4; as many
    tangents (32 to 512) as that allows with all rows in one chunk, fewer Python calls on small data."""
    try:
        out0 = pb.call(pb.theta, pb.args)
    except TorchlmError:
        raise
    except Exception as e:
        raise ModelInputError(
            f"the model raised {type(e).__name__} when called with the inputs ({e}): check their shapes and "
            "dtypes (tl.infer passes floating tensors as float64, integer ones unchanged)") from e
    n, rows = _check_output(out0, pb.args, pb.tgt)
    try:
        spec = loss_spec(loss, out0.detach(), pb.tgt, pb.dispersion, pb.device)
    except TorchlmError:
        raise
    except Exception as e:
        raise ModelInputError(f"the loss raised {type(e).__name__} on the model's output and the target ({e}): "
                              "check the target's shape and dtype against the output's") from e
    budget = ROW_TANGENT_BUDGET // 4
    if control["block"] is None:
        control["block"] = min(512, max(32, budget // max(min(n, chunk_size or n), 1)))
    if chunk_size is None:
        chunk_size = max(1, budget // control["block"])
    spans = [(i, min(n, i + chunk_size)) for i in range(0, n, chunk_size)] if rows else [(0, n)]
    args, tgt, call = pb.args, pb.tgt, pb.call

    def chunks():
        """(inputs, target) of each chunk of rows; the whole data when the model holds it."""
        for lo, hi in spans:
            def cut(x: Any, lo: int = lo, hi: int = hi) -> Any:
                return x[lo:hi] if rows else x

            yield (tuple(cut(x) if isinstance(x, torch.Tensor) else x for x in args), tuple(cut(x) for x in tgt))

    def objectives():
        for a, t in chunks():
            yield lambda th, a=a, t=t: spec.chunk_sum(call(th, a), *t)

    pb.n, pb.rows, pb.spec, pb.chunks, pb.objectives = n, rows, spec, chunks, objectives


@contextmanager
def _using(pb: _Problem):
    # evaluations after tl.infer returned (loglik_at, scores, matrix-free solves) take the model as tl.infer did
    with _model_lock(pb.model), _eval_mode(pb.m64):
        yield


def _likelihood(pb: _Problem, est: dict[str, Any], free: np.ndarray) -> Likelihood:
    """The objective kept for loglik_at, score_at and the delta method."""
    def objective(th: torch.Tensor) -> torch.Tensor:
        with _using(pb):
            return torch.stack([f(th) for f in pb.objectives()]).sum()

    return Likelihood(pb.keys, pb.shapes, pb.labels, free, pb.theta.detach(), objective,
                      loglik_of=est.pop("loglik_of"), no_loglik=est["loglik_note"] or "the loss is not a likelihood",
                      name=pb.spec.label)


def _infer(pb: _Problem, optimum_tol: float, singular_tol: float) -> Estimates:
    S, g, H = summed_hessian(pb.objectives, pb.theta, block=PARAM_BLOCK)
    if not (math.isfinite(S) and torch.isfinite(g).all() and torch.isfinite(H).all()):
        raise ModelInputError(f"the loss, its gradient or Hessian is not finite at the model's parameters "
                              f"(loss sum {S})")
    n_resid, pearson, ll = _observation_sums(pb.chunks, pb.call, pb.theta, pb.spec)
    # the residual df count identifiable directions only, as R's n - rank
    curv = analyse_curvature(H.cpu().numpy(), pb.labels, singular_tol)
    est = scaling(pb.spec, pb.dispersion, S, pearson, ll, n_resid, curv.rank)
    lik = _likelihood(pb, est, np.ones(len(pb.labels), bool))
    res = Estimates(
        names=pb.labels, estimate=pb.theta.cpu().numpy(), hessian=H.cpu().numpy(), gradient=g.cpu().numpy(),
        scores=_scores(pb), method="", converged=True, iterations=None, optimum_tol=optimum_tol,
        singular_tol=singular_tol, on_negative="raise", nobs=pb.n, curvature=curv, likelihood=lik,
        call=f"infer({type(pb.model).__name__}, {pb.spec.label})", **est)
    # a subset with the others estimated: the block of the whole inverse, after the whole fit's checks
    return res if pb.keep.all() else res._block(pb.keep)


def _infer_matrix_free(pb: _Problem, control: dict[str, Any], optimum_tol: float, singular_tol: float) -> Estimates:
    op = HessianOperator(pb.objectives, pb.theta, control["block"], guard=lambda: _using(pb))
    S, g = op.value_and_gradient()
    if not (math.isfinite(S) and torch.isfinite(g).all()):
        raise ModelInputError(f"the loss or its gradient is not finite at the model's parameters (loss sum {S})")
    k = len(pb.labels)
    n_resid, pearson, ll = _observation_sums(pb.chunks, pb.call, pb.theta, pb.spec)
    # without the Hessian's eigenvalues the rank is taken as full: p parameters for the residual df
    est = scaling(pb.spec, pb.dispersion, S, pearson, ll, n_resid, k)
    diag = op.diagonal(control["probes"], control["seed"], pb.labels)
    if not bool(torch.isfinite(diag).all()):
        raise ModelInputError("the Hessian-vector products are not finite at the model's parameters")
    low = check_curvature(op, diag, control["lanczos"], control["seed"], singular_tol, pb.labels)
    mf = MatrixFreeCovariance(op, pb.labels, est["scale"], diag, control, singular_tol)
    rep = solve_reported(mf, pb.keep, g)
    info = mf.info
    info["lanczos_min"] = low
    note = (f"Covariance: matrix-free, conjugate gradients on Hessian-vector products ({int(pb.keep.sum())} of {k} "
            f"parameters; {info['iterations']} iterations, {info['products']} products, relative residual "
            f"{info['residual']:.2g}; a Newton step moves no combination of the parameters by more than "
            f"{info['newton_distance']:.3g} standard errors)")
    keep = pb.keep
    res = Estimates(
        names=[n for n, kp in zip(pb.labels, keep) if kp], estimate=pb.theta.cpu().numpy()[keep],
        hessian=rep.hessian, gradient=g.cpu().numpy()[keep], scores=_scores(pb, rep.columns), method="",
        converged=True, iterations=None, optimum_tol=optimum_tol, singular_tol=singular_tol, on_negative="raise",
        nobs=pb.n, curvature=Curvature(rep.cov, rep.identifiable, [] if rep.identifiable.all() else rep.flat, [],
                                       float("nan"), k),
        likelihood=_likelihood(pb, est, keep), newton_step=rep.newton, projected_scores=True, n_estimated=k,
        covariance_note=note, call=f"infer({type(pb.model).__name__}, {pb.spec.label})", **est)
    res.matrix_free = mf
    return res


def _scores(pb: _Problem, project: torch.Tensor | None = None) -> Callable[[], torch.Tensor]:
    """The per-observation gradients of the loss at theta (for sandwich and cluster covariances), computed when
    asked: vmap(grad) over the rows of each chunk, or, where vmap cannot trace the loss (gaussian_nll_loss's
    check that var >= 0 is a Python branch), reverse-mode Jacobians of the per-observation losses. With
    ``project`` (p, r), each chunk's (rows, p) gradients times it: (n, r) without n x p in memory."""
    spec, call, theta, args, tgt = pb.spec, pb.call, pb.theta, pb.args, pb.tgt

    def per_chunk(a: tuple, t: tuple) -> torch.Tensor:
        batched = [(i, x) for i, x in enumerate(a) if isinstance(x, torch.Tensor)]

        def one(th, *row):
            aa = list(a)
            for (i, _), r in zip(batched, row[:len(batched)]):
                aa[i] = r.unsqueeze(0)
            return spec.one(call(th, tuple(aa)), *(r.unsqueeze(0) for r in row[len(batched):]))

        in_dims = (None,) + (0,) * (len(batched) + len(t))
        try:
            return quiet(vmap(grad(one), in_dims=in_dims))(theta, *[x for _, x in batched], *t)
        except TorchlmError:
            raise
        except Exception:  # data-dependent control flow under vmap: plain reverse mode, a few rows at a time
            return torch.cat([_jacobian_rows(spec, call, theta, a, t, lo, lo + SCORE_ROWS)
                              for lo in range(0, t[0].shape[0] if t else a[batched[0][0]].shape[0], SCORE_ROWS)])

    def whole() -> torch.Tensor:
        try:
            return func_jacobian(lambda th: spec.per_obs(call(th, args), *tgt), theta)
        except TorchlmError:
            raise
        except Exception:
            return torch.autograd.functional.jacobian(lambda th: spec.per_obs(call(th, args), *tgt), theta)

    def scores() -> torch.Tensor:
        def mapped(s: torch.Tensor) -> torch.Tensor:
            return s if project is None else s.detach() @ project

        with _using(pb):
            if not pb.rows:
                return mapped(whole())
            return torch.cat([mapped(per_chunk(a, t)) for a, t in pb.chunks()])

    return scores


def _jacobian_rows(spec: LossSpec, call: Callable, theta: torch.Tensor, a: tuple, t: tuple, lo: int,
                   hi: int) -> torch.Tensor:
    """The Jacobian of the per-observation losses of rows lo:hi by plain autograd (no vmap)."""
    aa = tuple(x[lo:hi] if isinstance(x, torch.Tensor) else x for x in a)
    tt = tuple(x[lo:hi] for x in t)
    try:
        return torch.autograd.functional.jacobian(lambda th: spec.per_obs(call(th, aa), *tt), theta)
    except TorchlmError:
        raise
    except Exception as e:
        raise ModelInputError(
            f"the per-observation gradients that robust covariances need could not be computed ({type(e).__name__}: "
            f"{str(e)[:200]}): write the loss with torch operations on the output") from e

