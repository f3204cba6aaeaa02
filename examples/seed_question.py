"""The question torchlm answers: "How do I get standard errors for my PyTorch linear regression?"

    .venv/bin/python examples/seed_question.py

A StackOverflow user fitted y = 2x + 3 + noise with a small nn.Module and Adam, then took the
recipe that is often posted for standard errors: the Hessian of the loss with respect to the
parameters, inverted, square root of the diagonal. The numbers looked far too large compared
with R's lm(). This script reproduces the question, shows why the recipe is off, fixes it by
hand, gets R's answer (to every printed digit) from torchlm's lm(), and finally answers the
question as asked: standard errors for the user's own fitted module, in one call (tl.infer).

R on the same numbers (the float32 draws written out as float64):

                Estimate Std. Error t value Pr(>|t|)
    (Intercept)  3.03567    0.08940   33.96   <2e-16 ***
    X            2.01181    0.09092   22.13   <2e-16 ***
"""

import pandas as pd
import torch
from torch import nn
from torch.autograd.functional import hessian

import torchlm as tl

# ---------------------------------------------------------------------------------------------
# 1. The question, as asked: the model holds its data; Adam on the mean squared error.
# ---------------------------------------------------------------------------------------------
torch.manual_seed(42)


class OLS_pytorch(nn.Module):
    def __init__(self, X, Y):
        super().__init__()
        self.X = X
        self.Y = Y
        self.beta = nn.Parameter(torch.ones(X.shape[1], 1, requires_grad=True))
        self.intercept = nn.Parameter(torch.ones(1, requires_grad=True))
        self.loss = nn.MSELoss()  # reduction="mean": (1/N) * sum of squared residuals

    def forward(self):
        return self.X @ self.beta + self.intercept

    def fit(self, lr=0.01, epochs=1000):
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        for _epoch in range(epochs):
            optimizer.zero_grad()
            loss = self.loss(self.forward(), self.Y)
            loss.backward()
            optimizer.step()
        return self


X = torch.randn(100, 1)
Y = 2 * X + 3 + torch.randn(100, 1)
N = X.shape[0]
model = OLS_pytorch(X, Y).fit()
loss = model.loss(model(), Y)

b0 = model.intercept.item()
b1 = model.beta.item()
print("1. Adam on nn.MSELoss, 1000 epochs")
print(f"   intercept = {b0:.6f}   slope = {b1:.6f}   final MSE = {loss.item():.6f}")

# ---------------------------------------------------------------------------------------------
# 2. The posted recipe: SE = sqrt(diag(inverse(Hessian of the MSE loss))).
# ---------------------------------------------------------------------------------------------
params = torch.tensor([b0, b1])  # (intercept, slope), float32 like the model


def mse_loss(theta):
    pred = X @ theta[1:].view(1, 1) + theta[0]
    return nn.functional.mse_loss(pred, Y)  # the same mean loss the model was trained on


H_mean = hessian(mse_loss, params)
naive_se = torch.sqrt(torch.diag(torch.linalg.inv(H_mean)))
print("\n2. Posted recipe: sqrt(diag(inv(hessian(MSE loss))))")
print(f"   'SE' intercept = {naive_se[0].item():.4f}   'SE' slope = {naive_se[1].item():.4f}")

# ---------------------------------------------------------------------------------------------
# 3. Why it is wrong, and the correct scaling.
#
# For a Gaussian linear model the covariance of the least-squares estimate is
#     vcov = sigma^2 (X'X)^{-1},      sigma^2 = RSS / (N - p)   (p = 2 coefficients here).
# The Hessian of the mean loss  (1/N) sum (y - Xb)^2  is  (2/N) X'X,  so inverting it gives
#     H_mean^{-1} = (N/2) (X'X)^{-1}:
# three things are off at once:
#   * the 1/N of the mean      -> SEs too large by sqrt(N)       (= 10 here)
#   * the 2 from d/db of a square -> SEs too small by sqrt(2)
#   * no sigma^2 (the noise level) -> SEs off by a factor 1/sigma
# Overall the recipe's SEs are sqrt(N / (2 sigma^2)) times the right ones.
#
# The fix: use the objective a statistician would write, half the residual sum of squares
#     f(b) = 0.5 * sum (y - Xb)^2,      Hessian = X'X,      vcov = sigma^2 * H^{-1},
# or, keeping the mean loss, vcov = (2 sigma^2 / N) * H_mean^{-1}.
# We compute in float64 (R works in double precision; float32 carries only ~7 digits).
# ---------------------------------------------------------------------------------------------
X64, Y64 = X.double(), Y.double()
theta64 = params.double()


def half_rss(theta):
    resid = Y64 - (X64 @ theta[1:].view(1, 1) + theta[0])
    return 0.5 * resid.pow(2).sum()


p = 2
rss = 2 * half_rss(theta64).item()
sigma2 = rss / (N - p)
H_sum = hessian(half_rss, theta64)  # = X'X with a column of ones for the intercept
se_sum = torch.sqrt(sigma2 * torch.diag(torch.linalg.inv(H_sum)))
se_mean = torch.sqrt(2 * sigma2 / N * torch.diag(torch.linalg.inv(H_mean.double())))


def sum_sq(theta):
    return 2 * half_rss(theta)


# the fix one factor at a time: mean -> sum (the sqrt(N)), then halve it (the sqrt(2)), then sigma^2
steps = [
    ("hessian(MSE), as posted        ", torch.linalg.inv(H_mean.double())),
    ("hessian(sum of squares)        ", torch.linalg.inv(hessian(sum_sq, theta64))),
    ("hessian(0.5 * RSS)             ", torch.linalg.inv(H_sum)),
    ("sigma^2 * inv(hessian(0.5*RSS))", sigma2 * torch.linalg.inv(H_sum)),
]
ratio = (naive_se.double() / se_sum).tolist()
print("\n3. Correct scaling (sigma^2 = RSS/(N - p) = "
      f"{rss:.4f}/{N - p} = {sigma2:.6f}, sigma = {sigma2 ** 0.5:.4f})")
print(f"   sigma^2 * inv(hessian(0.5*RSS)):      SE intercept = {se_sum[0].item():.4f}   "
      f"SE slope = {se_sum[1].item():.4f}")
print(f"   2*sigma^2/N * inv(hessian(MSE)):      SE intercept = {se_mean[0].item():.4f}   "
      f"SE slope = {se_mean[1].item():.4f}")
print("   one factor at a time:                 SE intercept   SE slope   / correct")
for label, V in steps:
    se_step = torch.sqrt(torch.diag(V))
    print(f"   {label}        {se_step[0].item():.4f}      {se_step[1].item():.4f}"
          f"     {(se_step[0] / se_sum[0]).item():.3f}")
print(f"   recipe / correct = {ratio[0]:.3f}, {ratio[1]:.3f}"
      f"   = sqrt(N) / (sqrt(2) * sigma) = {N ** 0.5:.0f} / ({2 ** 0.5:.4f} * {sigma2 ** 0.5:.4f})"
      f" = {(N / (2 * sigma2)) ** 0.5:.3f}")

# ---------------------------------------------------------------------------------------------
# 4. torchlm: the whole of R's lm() output, exact (QR, no optimiser), float64.
# ---------------------------------------------------------------------------------------------
df = pd.DataFrame({
    "X": X[:, 0].numpy().astype("float64"),
    "Y": Y[:, 0].numpy().astype("float64"),
})
fit = tl.lm("Y ~ X", data=df)
print("\n4. torchlm: tl.lm('Y ~ X', data=df).summary()")
print(fit.summary())

se = fit.std_errors()
for name, b in fit.coef().items():
    print(f"   {name:<9}  estimate {b:.4f}  SE {se[name]:.4f}    (R: lm(Y ~ X) on the same numbers)")
print("   fit.hessian() is the autograd Hessian of 0.5*sum((y - Xb)^2), i.e. X'X; "
      "fit.vcov() = sigma^2 * inverse of it:")
print(fit.vcov().to_string(float_format=lambda v: f"{v:.8f}"))

# ---------------------------------------------------------------------------------------------
# 5. The question answered as asked: standard errors for the fitted module itself, in one call.
#    tl.infer sums the loss over observations (so reduction="mean" or "sum" does not matter),
#    takes the autograd Hessian in float64, scales it by 2 * sigma-hat^2 with N - p degrees of
#    freedom (MSELoss is a squared error), and checks that Adam stopped at the optimum.
# ---------------------------------------------------------------------------------------------
res = tl.infer(model, nn.MSELoss(), target=model.Y)
print("\n5. Your own model, one call: tl.infer(model, nn.MSELoss(), target=model.Y).summary()")
print(res.summary())
print(f"   Adam stopped within {res.newton_step.max():.1g} standard errors of the optimum; "
      "robust alternatives: res.vcov('HC1'), res.vcov(cluster=groups)")
