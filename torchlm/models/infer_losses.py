"""What tl.infer knows about a loss: which torch losses are likelihoods (and of which family), how to get one value
per observation from a loss function of any reduction, and the covariance scale and log-likelihood that follow."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, cast

import torch
from torch import nn
from torch.func import vmap

from torchlm.errors import ModelInputError
from torchlm.solvers.autograd import quiet


@dataclass
class LossSpec:
    """How a loss relates to a likelihood, and how to get per-observation values from it."""

    label: str
    family: str | None            # gaussian, binomial, poisson, multinomial; None for an unknown loss
    chunk_sum: Callable           # (output, *target) -> sum over the rows of the per-observation losses
    per_obs: Callable             # (output, *target) -> (m,) per-observation losses
    one: Callable                 # (output of one row, *target of one row) -> that row's loss
    mean: Callable | None = None  # output -> fitted mean (for Pearson residuals)
    variance: Callable | None = None


ELEMENTWISE = {nn.MSELoss: "gaussian", nn.BCEWithLogitsLoss: "binomial", nn.BCELoss: "binomial",
                nn.PoissonNLLLoss: "poisson"}
CLASSIFICATION = (nn.CrossEntropyLoss, nn.NLLLoss)
# robust regression losses: M-estimators whose inverse Hessian alone has no likelihood scale
M_ESTIMATORS = (nn.HuberLoss, nn.SmoothL1Loss)


def _row_sum(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], -1).sum(dim=1) if v.ndim > 1 else v


def _torch_loss_spec(loss: nn.Module, device: Any) -> LossSpec:
    if isinstance(loss, nn.GaussianNLLLoss):
        raise ModelInputError(
            "GaussianNLLLoss takes (input, target, var): pass it as a function of the model's output, e.g. for a "
            "model whose output columns are the mean and log-variance: loss=lambda out, y: "
            "torch.nn.functional.gaussian_nll_loss(out[:, 0], y, out[:, 1].exp(), full=True), with dispersion=1 "
            "(any reduction; full=True adds log(2 pi) / 2 per observation, so that loglik() is the log-likelihood)")
    given = loss.reduction
    lz = copy.deepcopy(loss).to(device=device, dtype=torch.float64)
    # torch types Module.__setattr__ for tensors and submodules only; a loss's reduction is a plain str attribute
    lz.reduction = "none"  # type: ignore[assignment]
    family = next((f for cls, f in ELEMENTWISE.items() if isinstance(loss, cls)), None)
    if isinstance(loss, CLASSIFICATION) and getattr(loss, "label_smoothing", 0.0) == 0.0:
        family = "multinomial"
    mean = variance = None
    if family == "gaussian":
        mean, variance = (lambda o: o), (lambda m: torch.ones_like(m))
    elif family == "binomial":
        mean = torch.sigmoid if isinstance(loss, nn.BCEWithLogitsLoss) else (lambda o: o)
        variance = lambda m: m * (1 - m)  # noqa: E731
    elif family == "poisson":
        mean = torch.exp if loss.log_input else (lambda o: o)
        variance = lambda m: m  # noqa: E731

    def per_obs(out, *tgt):
        if family in ("gaussian", "binomial", "poisson") and out.shape != tgt[0].shape:
            raise ModelInputError(
                f"the model's output has shape {tuple(out.shape)} and the target {tuple(tgt[0].shape)}: "
                f"{type(loss).__name__} would broadcast them; reshape one to match the other")
        return _row_sum(lz(out, *tgt))

    label = f"{type(loss).__name__}(reduction={given!r})"
    return LossSpec(label, family, lambda out, *t: per_obs(out, *t).sum(), per_obs,
                    lambda out, *t: lz(out, *t).sum(), mean, variance)


def _function_loss_spec(loss: Callable, out: torch.Tensor, tgt: tuple) -> LossSpec:
    """Per-observation values of a user's loss function: its own vector, or it evaluated one row at a time."""
    name = getattr(loss, "__name__", type(loss).__name__)
    v = loss(out, *tgt)
    if not isinstance(v, torch.Tensor):
        raise ModelInputError(f"the loss returned {type(v).__name__}, not a tensor: use torch operations")
    m = out.shape[0]
    if v.ndim >= 1 and v.shape[0] == m and v.shape not in ((m,), out.shape, *(t.shape for t in tgt[:1])):
        raise ModelInputError(f"the loss returned shape {tuple(v.shape)}: return a scalar (a sum or mean over "
                              f"observations), one value per observation ({m}), or values shaped as the output "
                              f"{tuple(out.shape)}")
    if v.ndim >= 1 and v.shape[0] == m:
        return LossSpec(f"{name} (per observation)", None, lambda o, *t: _row_sum(loss(o, *t)).sum(),
                        lambda o, *t: _row_sum(loss(o, *t)), lambda o, *t: loss(o, *t).sum())
    if v.ndim != 0:
        raise ModelInputError(f"the loss returned shape {tuple(v.shape)}: return a scalar (a sum or mean over "
                              f"observations) or one value per observation ({m})")

    def per_obs(o, *t):
        return vmap(lambda oi, *ti: loss(oi.unsqueeze(0), *(x.unsqueeze(0) for x in ti)))(o, *t)

    try:
        each = quiet(per_obs)(out, *tgt)
        s, mu = float(each.sum()), float(each.mean())
    except Exception:
        # vmap cannot trace the loss (gaussian_nll_loss checks var >= 0 with a Python branch): its reduction is
        # told from its two halves instead, and its per-observation values come from one row at a time
        per_obs = _rows_one_at_a_time(loss)
        s, mu = _halves(loss, out, tgt)
    total = float(v.detach())
    close = lambda a, b: abs(a - b) <= 1e-8 * max(abs(a), abs(b), 1e-300)  # noqa: E731
    if close(total, s):
        reduction = "sum"
    elif close(total, mu):
        reduction = "mean"
    else:
        raise ModelInputError(
            f"the loss ({total:.10g}) is neither the sum ({s:.10g}) nor the mean ({mu:.10g}) of its values on "
            "single observations: standard errors need a loss that adds up over observations")
    return LossSpec(f"{name} (reduction={reduction!r})", None, lambda o, *t: loss(o, *t) * (o.shape[0] if
                    reduction == "mean" else 1.0), per_obs, lambda o, *t: loss(o, *t))


def loss_spec(loss: Any, out: torch.Tensor, tgt: tuple, dispersion: Any, device: Any) -> LossSpec:
    """The LossSpec of a torch loss module or a loss function, with the checks on what dispersion it allows.

    Returns
    -------
    LossSpec
    """
    if isinstance(loss, nn.Module) and not _is_plain_function_module(loss):
        spec = _torch_loss_spec(loss, device)
        spec.per_obs(out, *tgt)  # shape check
        if spec.family is None and dispersion == "estimate":
            raise ModelInputError(
                f"dispersion='estimate' treats the loss as a squared error, which {type(loss).__name__} is not: "
                "pass dispersion=1 if it is a negative log-likelihood; for another M-estimator pass dispersion=1 "
                "and use the sandwich, vcov('HC0')")
    elif callable(loss):
        spec = _function_loss_spec(loss, out, tgt)
    else:
        raise ModelInputError(f"loss must be a torch loss module or a function, not {type(loss).__name__}")
    if spec.family is None and dispersion is None:
        if isinstance(loss, M_ESTIMATORS):
            raise ModelInputError(
                f"{spec.label} is neither a negative log-likelihood nor a squared error, so the inverse Hessian "
                "of its sum is not a covariance: pass dispersion=1 and use the sandwich covariance, which holds "
                "for any M-estimator: fit.vcov('HC0'), or vcov='HC0' in summary(), std_errors() and confint()")
        raise ModelInputError(
            f"say what {spec.label} is: dispersion=1 if it is a negative log-likelihood (vcov = inverse "
            "Hessian), dispersion='estimate' if it is a squared error (vcov = 2 sigma^2-hat * inverse Hessian "
            "of the summed squared error). Any loss can then also take vcov('HC0') (sandwich)")
    return spec


def _is_plain_function_module(loss: Any) -> bool:
    # an nn.Module that is not a loss (no reduction) but is callable like one: treat as a function
    return not hasattr(loss, "reduction") and not isinstance(loss, nn.GaussianNLLLoss)


def scaling(spec: LossSpec, dispersion: Any, S: float, pearson: float, ll_poisson: float, n_resid: int,
            k: int) -> dict[str, Any]:
    """scale (vcov = scale * inverse Hessian of the summed loss), test statistic, dispersion and likelihood.

    Returns
    -------
    dict of Estimates' arguments, and ``loglik_of``: the log-likelihood as a function of the summed loss
    (torch), or None where there is none.
    """
    fam = spec.family
    default = "estimate" if fam == "gaussian" else (1.0 if fam is not None else None)
    disp = default if dispersion is None else dispersion
    # the negative log-likelihood at unit dispersion as a multiple of the summed loss: 1/2 RSS for a squared error
    half = fam == "gaussian" or (fam is None and disp == "estimate")
    factor = 0.5 if half else 1.0
    out: dict[str, Any] = dict(df_residual=n_resid - k, sigma=None, loglik=None, df_loglik=k, loglik_note=None,
                               dispersion_note=None, loglik_of=None)
    if disp == "estimate":
        if fam == "multinomial":
            raise ModelInputError("dispersion='estimate' is not available for a multinomial loss")
        if n_resid <= k:
            raise ModelInputError(f"{n_resid} observations for {k} parameters: no degrees of freedom left to "
                                  "estimate the dispersion")
        phi = (pearson if fam is not None else S) / (n_resid - k)
        out.update(scale=phi / factor, statistic="t", dispersion=phi)
        if half:
            out["sigma"] = math.sqrt(phi)
            if fam is None:
                out["dispersion_note"] = ("(sigma = sqrt(sum of the loss / df): the residual standard error if the "
                                          "loss is the squared error)")
            else:
                N = n_resid
                out.update(loglik=0.5 * -N * (math.log(2 * math.pi) + 1 - math.log(N) + math.log(S)),
                           df_loglik=k + 1,
                           loglik_of=lambda s: -0.5 * N * (math.log(2 * math.pi) + 1 - math.log(N) + torch.log(s)))
        else:
            # not half under "estimate": fam is neither gaussian nor None, and multinomial was refused above
            quasi = {"binomial": "quasibinomial", "poisson": "quasipoisson"}[cast(str, fam)]
            out["dispersion_note"] = f"(Dispersion parameter for {quasi} family taken to be {phi:.7g})"
            out["loglik_note"] = "a quasi-likelihood has none (as R's AIC for quasi families)"
        if fam is None:
            out["loglik_note"] = "the loss was declared a squared error of unknown scale"
        return out
    # disp is None only for an unknown loss given no dispersion, which _loss_spec has refused
    phi = float(cast(float, disp))
    out.update(scale=phi / factor, statistic="z", dispersion=phi)
    if fam == "gaussian":
        N = n_resid
        out["loglik"] = -0.5 * N * math.log(2 * math.pi * phi) - S / (2 * phi)
        out["loglik_of"] = lambda s: -0.5 * N * math.log(2 * math.pi * phi) - s / (2 * phi)
        out["dispersion_note"] = f"(Dispersion parameter taken to be {phi:g})"
    elif phi != 1.0:
        out["dispersion_note"] = f"(Dispersion parameter taken to be {phi:g})"
        out["loglik_note"] = "the dispersion is not 1"
    elif fam == "poisson":
        # the loss leaves out log(y!) (or approximates it): a constant, the same at every parameter value
        out["loglik"], const = ll_poisson, ll_poisson + S
        out["loglik_of"] = lambda s: const - s
    elif fam is None:
        out["loglik"], out["loglik_of"] = -S, (lambda s: -s)
        out["dispersion_note"] = "(the loss is a negative log-likelihood: log-likelihood = -sum of the loss)"
    else:
        out["loglik"], out["loglik_of"] = -S, (lambda s: -s)
    if fam in ("binomial", "poisson", "multinomial") and phi == 1.0:
        out["dispersion_note"] = f"(Dispersion parameter for {fam} family taken to be 1)"
    return out


def _rows_one_at_a_time(loss: Callable) -> Callable:
    """Per-observation values of a scalar loss by evaluating it on each row (no vmap)."""
    def per_obs(o: torch.Tensor, *t: torch.Tensor) -> torch.Tensor:
        return torch.stack([loss(o[i:i + 1], *(x[i:i + 1] for x in t)).reshape(()) for i in range(o.shape[0])])
    return per_obs


def _halves(loss: Callable, out: torch.Tensor, tgt: tuple) -> tuple[float, float]:
    """What the loss would be as the sum and as the mean of per-observation values, from its two halves."""
    m = out.shape[0]
    if m < 2:
        v = float(loss(out, *tgt).detach())
        return v, v
    h = m // 2
    with torch.no_grad():
        a = float(loss(out[:h], *(x[:h] for x in tgt)))
        b = float(loss(out[h:], *(x[h:] for x in tgt)))
    return a + b, (h * a + (m - h) * b) / m

