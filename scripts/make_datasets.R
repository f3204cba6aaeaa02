#!/usr/bin/env Rscript
# Write R's classic datasets as the CSV files bundled in torchlm/datasets/data/.
#
#   Rscript scripts/make_datasets.R              # every dataset below
#   Rscript scripts/make_datasets.R warpbreaks   # only the ones named
#
# Conventions (what torchlm.datasets.load() expects):
#   * write.csv(..., row.names = FALSE): row names are dropped (mtcars's car names are not kept);
#   * dots in column names become underscores (Sepal.Length -> Sepal_Length, Solar.R -> Solar_R),
#     so that every column is a valid name in a formula;
#   * factors are written as their labels (strings), missing values as NA.
# Run from the repository root.

datasets <- c("mtcars", "iris", "ToothGrowth", "airquality", "cars", "warpbreaks")

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) args else datasets
unknown <- setdiff(todo, datasets)
if (length(unknown)) stop("unknown dataset(s): ", paste(unknown, collapse = ", "))

out_dir <- file.path("torchlm", "datasets", "data")
if (!dir.exists(out_dir)) stop("run from the repository root (", out_dir, " not found)")

for (name in todo) {
  df <- get(name, envir = asNamespace("datasets"))
  df <- as.data.frame(df)
  names(df) <- gsub(".", "_", names(df), fixed = TRUE)
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.csv(df, path, row.names = FALSE)
  cat(sprintf("wrote %s (%d rows, %d columns)\n", path, nrow(df), ncol(df)))
}
