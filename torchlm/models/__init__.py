"""Models: the verbs that turn a formula and data (or a torch model) into a fitted result: lm, glm, mle, infer,
and the GLM families."""
