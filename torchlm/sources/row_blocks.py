"""The row-block source: the one way model code reads a design, so that memory is one block of rows at a time.

Every fitter and every inference routine that needs the design matrix (lm's QR, glm's IRLS,
sandwich meats, leverages, anova/drop1 refits, profile intervals, per-row outputs) consumes a
:class:`RowBlockSource`: its size and column names, and an iterator of contiguous blocks, each holding
the design block, response, prior weights and offset of its rows. The in-memory design implements it
(:class:`DesignSource`); a Dask partition or a factor-structured design is another implementation of
the same few members.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from torchlm.errors import warnings_guard

# about 8 MB of float64 per block: large enough for LAPACK's blocked QR, small enough for cache and memory
BLOCK_ELEMENTS = 2**20
MIN_BLOCK_ROWS = 256


def block_rows(n: int, p: int, elements: int | None = None) -> int:
    """Rows per block for a p-column problem of n rows.

    Parameters
    ----------
    n, p : rows and columns of the problem.
    elements : elements per block (default BLOCK_ELEMENTS, read at call time so tests can shrink it).

    Returns
    -------
    int
    """
    per = BLOCK_ELEMENTS if elements is None else elements
    return int(max(MIN_BLOCK_ROWS, min(max(n, 1), per // max(p + 1, 1))))


@dataclass(frozen=True)
class RowBlock:
    """One contiguous block of rows.

    Attributes
    ----------
    start, stop : the rows' positions, ``start:stop``, among the source's rows.
    X : (m, k) design block (the requested columns; column-major, LAPACK's layout), with ``spare``
        extra zero columns after them when asked for.
    y : (m,) response.
    weights : (m,) prior weights, or None (all 1).
    offset : (m,) offset, or None (all 0).
    """

    start: int
    stop: int
    X: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor | None
    offset: torch.Tensor | None

    @property
    def rows(self) -> slice:
        """The block's rows as a slice of the source's rows."""
        return slice(self.start, self.stop)


@runtime_checkable
class RowBlockSource(Protocol):
    """What a data source offers model code: its shape, column names, and contiguous row blocks."""

    @property
    def n_rows(self) -> int:
        """Number of rows (observations used by the model)."""
        ...

    @property
    def names(self) -> list[str]:
        """Names of the design's columns."""
        ...

    def blocks(self, *, columns: Sequence[int] | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float64, spare: int = 0,
               rows: int | None = None) -> Iterator[RowBlock]:
        """Iterate the rows in contiguous blocks, in order.

        Parameters
        ----------
        columns : design columns to include (default all), in the given order.
        device, dtype : where and how the tensors are made.
        spare : zero columns appended to X, for the caller to fill (e.g. a residual column).
        rows : rows per block (default by the number of columns).

        Returns
        -------
        Iterator of RowBlock.
        """
        ...


def _tensor(a: np.ndarray, device, dtype: torch.dtype) -> torch.Tensor:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    if a.dtype != np_dtype:
        a = a.astype(np_dtype)
    return torch.from_numpy(a).to(device)


def _spend_readonly_warning() -> None:
    """Spend torch's warning about read-only numpy arrays once, filtered, when torchlm is imported.

    formulaic's columns are pandas' read-only buffers, which torch only reads here. torch gives that
    warning once per process (TORCH_WARN_ONCE), so after this no block needs a copy and no fit needs
    a filter (the warnings filters are process-global: no place to silence it from several threads).
    """
    with warnings_guard():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        spent = np.zeros(1)
        spent.setflags(write=False)
        torch.from_numpy(spent)


_spend_readonly_warning()


class DesignSource:
    """The in-memory design (a Design's columns, response, weights and offset) as a RowBlockSource.

    Blocks are assembled from the design's columns as they are read (formulaic's columns are never
    copied whole), so memory is one block whatever the number of passes.

    Parameters
    ----------
    design : a torchlm Design (anything with ``row_block``, ``shape``, ``names``, ``y``, ``weights``,
        ``offset``).
    y, weights, offset : per-row vectors to use instead of the design's (e.g. glm's response after
        the family's initialize, or the working response of an IRLS step); None keeps the design's.
    """

    def __init__(self, design, *, y: np.ndarray | None = None, weights: np.ndarray | None = None,
                 offset: np.ndarray | None = None):
        self.design = design
        self._y = design.y if y is None else y
        self._w = design.weights if weights is None else weights
        self._off = design.offset if offset is None else offset

    @property
    def n_rows(self) -> int:
        """Number of rows of the design."""
        return int(self.design.shape[0])

    @property
    def names(self) -> list[str]:
        """The design's column names."""
        return list(self.design.names)

    def blocks(self, *, columns: Sequence[int] | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float64, spare: int = 0,
               rows: int | None = None) -> Iterator[RowBlock]:
        """Contiguous row blocks of the design (see RowBlockSource.blocks).

        Returns
        -------
        Iterator of RowBlock, X column-major with ``spare`` zero columns after the requested ones.
        """
        n, p = self.design.shape
        cols = None if columns is None or list(columns) == list(range(p)) else list(columns)
        k = p if cols is None else len(cols)
        step = rows or block_rows(n, k)
        dev = torch.device("cpu" if device is None else device)
        for s in range(0, n, step):
            e = min(n, s + step)
            if cols is None:
                B = self.design.row_block(s, e, spare)
            else:
                B = np.empty((k + spare, e - s)).T
                full = self.design.row_block(s, e)
                B[:, :k] = full[:, cols]
                B[:, k:] = 0.0
            yield RowBlock(
                s, e, _tensor(B, dev, dtype), _tensor(self._y[s:e], dev, dtype),
                None if self._w is None else _tensor(self._w[s:e], dev, dtype),
                None if self._off is None else _tensor(self._off[s:e], dev, dtype),
            )


class WorkingRows:
    """sqrt(w) X over some design columns, at the rows a mask selects, read by contiguous slices of those rows.

    The weighted design of a working least-squares fit (lm's prior weights, glm's working weights)
    as an (m, k) matrix that is never assembled: ``rows[s:e]`` reads the design rows behind
    selected rows s..e-1 and weights them; ``np.asarray(rows)`` assembles it all (for callers that
    need the whole matrix).

    Parameters
    ----------
    design : a Design (``row_block``, ``shape``).
    cols : design columns, in order.
    sw : (n,) square roots of the weights over all design rows, or None (all 1).
    mask : (n,) bool, the rows to keep, or None (all).
    """

    def __init__(self, design, cols: list[int], sw: np.ndarray | None, mask: np.ndarray | None = None):
        self.design, self.cols, self.sw = design, list(cols), sw
        n = design.shape[0]
        self.all_cols = self.cols == list(range(design.shape[1]))
        self.positions = None if mask is None or bool(np.all(mask)) else np.flatnonzero(mask)
        m = n if self.positions is None else len(self.positions)
        self.shape = (m, len(self.cols))

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("WorkingRows takes contiguous row slices")  # internal: a programming error
        start, stop, _ = rows.indices(self.shape[0])
        stop = max(start, stop)
        if self.positions is None:
            B = self.design.row_block(start, stop)
            sel = None
        else:
            pos = self.positions[start:stop]
            if len(pos) == 0:
                return np.empty((0, self.shape[1]))
            B = self.design.row_block(int(pos[0]), int(pos[-1]) + 1)
            sel = pos - pos[0]
            B = B[sel]
        if not self.all_cols:
            B = B[:, self.cols]
        if self.sw is None:
            return B
        w = self.sw[start:stop] if self.positions is None else self.sw[self.positions[start:stop]]
        return B * w[:, None]

    def __array__(self, dtype=None, copy=None):
        out = self[0:self.shape[0]]
        return out if dtype is None else out.astype(dtype)


class ArraySource(DesignSource):
    """An (n, p) matrix with its response, weights and offset as a RowBlockSource (column names x1..xp).

    Parameters
    ----------
    X : (n, p) array.
    y : (n,) response; weights, offset : (n,) arrays or None.
    names : column names (default "x1".."xp").
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, *, weights: np.ndarray | None = None,
                 offset: np.ndarray | None = None, names: list[str] | None = None):
        self._X = np.asarray(X)
        self._y, self._w, self._off = y, weights, offset
        self._names = names or [f"x{j + 1}" for j in range(self._X.shape[1])]
        self.design = self

    @property
    def shape(self) -> tuple[int, int]:
        """(n, p) of the matrix."""
        return self._X.shape

    @property
    def names(self) -> list[str]:
        """The columns' names."""
        return list(self._names)

    def row_block(self, start: int, stop: int, spare: int = 0) -> np.ndarray:
        """Rows start:stop, column-major, with ``spare`` zero columns after them (a new array).

        Returns
        -------
        numpy.ndarray
            (stop - start, p + spare), column-major.
        """
        part = self._X[start:stop]
        if not spare and part.flags.f_contiguous:
            return part
        B = np.empty((part.shape[1] + spare, part.shape[0]), dtype=np.result_type(part.dtype, np.float64)).T
        B[:, :part.shape[1]] = part
        B[:, part.shape[1]:] = 0.0
        return B


def row_quadratic(X: Any, cols: list[int], form: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """form(X[rows, cols]) block by block: per-row quadratic forms (standard errors of fitted values) without all of X.

    X : an (m, p) array, or WorkingRows read by row slices.
    form : function of a (rows, k) float64 tensor giving (rows,) values.

    Returns
    -------
    numpy.ndarray
        (m,) values.
    """
    m = X.shape[0]
    out = np.empty(m)
    step = block_rows(m, len(cols))
    for s in range(0, m, step):
        B = np.asarray(X[s:s + step], dtype=np.float64)[:, cols]
        out[s:s + step] = form(torch.as_tensor(np.ascontiguousarray(B))).numpy()
    return out
