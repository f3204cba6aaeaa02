"""Iterative solvers shared by the model fits: one Newton driver (tl.mle now, glm's IRLS next)."""

from torchlm.solvers.newton import (
                     Backtracking,
                     ConvergenceTest,
                     Divergence,
                     Evaluation,
                     FirstOf,
                     FloatingPointFloor,
                     FullStep,
                     Move,
                     PolishRule,
                     Problem,
                     Reason,
                     RelativeChange,
                     Result,
                     RHalving,
                     Stage,
                     State,
                     Step,
                     StepBelow,
                     StepControl,
                     Trial,
                     Verdict,
                     solve,
)

__all__ = [
    "Backtracking", "ConvergenceTest", "Divergence", "Evaluation", "FirstOf", "FloatingPointFloor", "FullStep", "Move",
    "PolishRule", "Problem", "Reason", "RelativeChange", "Result", "RHalving", "Stage", "State", "Step", "StepBelow",
    "StepControl", "Trial", "Verdict", "solve",
]
