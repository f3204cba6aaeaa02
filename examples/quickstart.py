"""torchlm quickstart: R's lm() and glm() workflow on the mtcars data.

    .venv/bin/python examples/quickstart.py

The R session it mirrors:

    fit <- lm(mpg ~ wt + factor(cyl), data = mtcars)
    summary(fit); coef(fit); confint(fit)
    anova(lm(mpg ~ wt, data = mtcars), fit)
    predict(fit, data.frame(wt = c(2.5, 3.5), cyl = c(4, 8)), interval = "prediction")
    logit <- glm(am ~ wt + hp, family = binomial, data = mtcars)
    summary(logit); anova(logit, test = "Chisq")
    predict(logit, data.frame(wt = c(2.5, 3.5), hp = c(110, 180)), type = "response", se.fit = TRUE)
    confint(logit)                                   # profile likelihood (MASS)
    drop1(fit, test = "F"); head(sort(cooks.distance(fit), decreasing = TRUE), 3)
"""

import pandas as pd

import torchlm as tl


def show(title, obj):
    print(f"\n## {title}\n")
    print(obj)


def main():
    mtcars = tl.datasets.load("mtcars")

    # C(cyl) treats cyl as a factor (R's factor(cyl)); the lowest level, 4, is the reference.
    fit = tl.lm("mpg ~ wt + C(cyl)", data=mtcars)

    show("summary(fit)", fit.summary())
    show("coef(fit)", fit.coef())
    show("confint(fit)", fit.confint())

    # Does cylinder count add anything once weight is in the model? (nested F test)
    small = tl.lm("mpg ~ wt", data=mtcars)
    show("anova(small, fit)", tl.anova(small, fit))

    # Two new cars: a light four-cylinder and a heavy eight-cylinder.
    new_cars = pd.DataFrame({"wt": [2.5, 3.5], "cyl": [4, 8]}, index=["light 4-cyl", "heavy 8-cyl"])
    show('predict(fit, new_cars, interval="prediction")',
         fit.predict(new_cars, interval="prediction"))

    # Logistic regression: which cars have a manual gearbox (am = 1)?
    logit = tl.glm("am ~ wt + hp", data=mtcars, family="binomial")
    show("summary(logit)", logit.summary())
    show('anova(logit, test="Chisq")', tl.anova(logit, test="Chisq"))
    two = pd.DataFrame({"wt": [2.5, 3.5], "hp": [110, 180]}, index=["light", "heavy"])
    show('predict(logit, two, type="response", se_fit=True)', logit.predict(two, type="response", se_fit=True))
    # R's confint(glm) profiles the likelihood; with 32 cars it differs a lot from estimate +/- 1.96 SE
    show("confint(logit) (profile likelihood)", logit.confint(method="profile"))

    # Diagnostics: which terms matter one at a time, and which cars pull the fit most
    show('drop1(fit, test="F")', tl.drop1(fit, test="F"))
    show("cooks.distance(fit), largest three", fit.cooks_distance().sort_values(ascending=False).head(3))


if __name__ == "__main__":
    main()
