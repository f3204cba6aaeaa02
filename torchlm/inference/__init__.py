"""Inference from a fitted model: robust covariances, influence measures, profile likelihood, anova and drop1."""
