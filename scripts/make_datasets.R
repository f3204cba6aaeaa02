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
#   * factors are written as their labels (strings), missing values as NA; their levels, in R's
#     order, go to _factor_levels.csv (dataset, column, level), which load() uses to make the
#     column a pandas Categorical with those categories (R's reference level first).
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

levels_of <- function(name) {
  df <- as.data.frame(get(name, envir = asNamespace("datasets")))
  cols <- names(df)[vapply(df, is.factor, logical(1))]
  if (!length(cols)) return(NULL)
  do.call(rbind, lapply(cols, function(col) {
    data.frame(dataset = name, column = gsub(".", "_", col, fixed = TRUE), level = levels(df[[col]]))
  }))
}
lev <- do.call(rbind, lapply(datasets, levels_of))
lev_path <- file.path(out_dir, "_factor_levels.csv")
write.csv(lev, lev_path, row.names = FALSE)
cat(sprintf("wrote %s (%d levels)\n", lev_path, nrow(lev)))
