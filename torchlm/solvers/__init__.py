"""Iterative solvers shared by the model fits."""
