"""Exceptions raised for bad model input; all are ValueErrors with a message naming the problem."""


class ModelInputError(ValueError):
    """Bad input to a model-fitting function (data, formula, weights, offset, options)."""


class FormulaError(ModelInputError):
    """The formula cannot be parsed or refers to something that does not exist."""


class UnknownVariableError(FormulaError, KeyError):
    """The formula uses a variable that is not a column of the data."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ModelInputError):
    """The data cannot be used as given (non-numeric response, missing or non-finite values, too few rows)."""
