"""Data sources: where row blocks of a design come from (the in-memory design today; Dask partitions next)."""

from torchlm.sources.row_blocks import DesignSource, RowBlock, RowBlockSource, WorkingRows, block_rows

__all__ = ["DesignSource", "RowBlock", "RowBlockSource", "WorkingRows", "block_rows"]
