#!/usr/bin/env Rscript
# Write R's classic datasets (packages datasets and MASS) as the files bundled in torchlm/datasets/data/.
#
#   Rscript scripts/make_datasets.R              # every dataset below
#   Rscript scripts/make_datasets.R warpbreaks   # only the data files named (the index files are always rewritten)
#
# Written from R 4.2.2 with MASS 7.3. Run from the repository root. Conventions (what torchlm.datasets.load() expects):
#   * <name>.csv: one file per dataset. Where R has meaningful row names (character ones that are not just
#     1..n: mtcars's car names, USArrests's states) they are the first field of each line and the header has
#     one field fewer (write.table's layout: R's read.csv and pandas both take that field as the row names);
#     datasets with automatic row names are written without them (torchlm gives a RangeIndex).
#   * column names are R's (Sepal.Length, Solar.R): torchlm's formulas read R's dotted names as R does;
#   * doubles with the fewest digits that read back as the same double (15 significant, else 17), factors as
#     their labels (quoted), logicals as TRUE/FALSE, missing values as NA (unquoted);
#   * _datasets.csv: name, package, title (as data() lists it), rows, columns and whether row names are kept;
#   * _columns.csv: each column's R type: double, integer, logical, character, factor or ordered (ordered factor);
#   * _factor_levels.csv: the levels of each factor, in R's order (dataset, column, level), so that load() makes
#     the column a pandas Categorical with R's reference level first (ordered for R's ordered factors).
# Tables (Titanic, UCBAdmissions) are as.data.frame(table); grouped data (ChickWeight, CO2, Orange) lose their
# nlme attributes (formula, labels, units) and are plain data frames.

suppressPackageStartupMessages(library(MASS))

datasets <- list(
  datasets = c("mtcars", "iris", "ToothGrowth", "PlantGrowth", "warpbreaks", "InsectSprays", "airquality",
               "cars", "women", "trees", "swiss", "stackloss", "faithful", "chickwts", "ChickWeight", "npk",
               "infert", "esoph", "sleep", "USArrests", "attitude", "LifeCycleSavings", "longley",
               "OrchardSprays", "quakes", "rock", "pressure", "Titanic", "UCBAdmissions", "anscombe", "CO2",
               "Orange", "Puromycin", "morley"),
  MASS = c("birthwt", "Boston", "quine", "anorexia", "Cars93", "menarche", "ships", "cats", "whiteside",
           "Insurance", "survey", "housing", "shuttle", "Aids2", "hills", "mammals", "Pima.tr", "Pima.te",
           "oats", "UScereal", "painters", "Animals", "geyser")
)
package_of <- setNames(rep(names(datasets), lengths(datasets)), unlist(datasets, use.names = FALSE))
all_names <- names(package_of)

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) args else all_names
unknown <- setdiff(todo, all_names)
if (length(unknown)) stop("unknown dataset(s): ", paste(unknown, collapse = ", "))

out_dir <- file.path("torchlm", "datasets", "data")
if (!dir.exists(out_dir)) stop("run from the repository root (", out_dir, " not found)")

# the dataset as a plain data frame: a table's counts in long form, grouped data without its class
get_data <- function(name) {
  d <- as.data.frame(get(name, envir = asNamespace(package_of[[name]])))
  class(d) <- "data.frame"
  for (a in setdiff(names(attributes(d)), c("names", "row.names", "class"))) attr(d, a) <- NULL
  d
}

r_type <- function(x) {
  if (is.ordered(x)) return("ordered")
  if (is.factor(x)) return("factor")
  if (is.logical(x)) return("logical")
  if (is.integer(x)) return("integer")
  if (is.double(x)) return("double")
  if (is.character(x)) return("character")
  stop("no CSV type for a column of class ", paste(class(x), collapse = "/"))
}

# R's row names are kept where they mean something: character ones other than "1".."n"
keeps_row_names <- function(d) {
  .row_names_info(d, type = 1L) > 0 && !identical(rownames(d), as.character(seq_len(nrow(d))))
}

# the shortest decimal that reads back as the same double
format_double <- function(x) {
  if (any(is.infinite(x))) stop("infinite values cannot be written")
  s <- sprintf("%.15g", x)
  loose <- !is.na(x)
  loose[loose] <- as.numeric(s[loose]) != x[loose]
  s[loose] <- sprintf("%.17g", x[loose])
  s[is.na(x)] <- NA
  s
}

check_labels <- function(name, col, x) {
  # a label "NA" or "" would read back as missing
  if (any(c("NA", "") %in% as.character(x), na.rm = TRUE)) stop(name, "$", col, " has a label NA or \"\"")
}

write_data <- function(name) {
  d <- get_data(name)
  types <- vapply(d, r_type, "")
  out <- d
  for (col in names(d)) {
    x <- d[[col]]
    if (types[[col]] == "double") out[[col]] <- format_double(x)
    if (types[[col]] %in% c("factor", "ordered", "character")) {
      check_labels(name, col, x)
      out[[col]] <- as.character(x)
    }
  }
  names(out) <- names(d)
  # indices of the columns to quote; the row and column names are quoted too (even where none is)
  quoted <- unname(which(types %in% c("factor", "ordered", "character")))
  rn <- keeps_row_names(d)
  if (rn) check_labels(name, "row.names", rownames(d))
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.table(out, path, sep = ",", quote = quoted, row.names = rn,
              col.names = TRUE, na = "NA", qmethod = "double", fileEncoding = "UTF-8")
  cat(sprintf("wrote %s (%d rows, %d columns%s)\n", path, nrow(d), ncol(d), if (rn) ", row names" else ""))
}

for (name in todo) write_data(name)

titles <- data(package = c("datasets", "MASS"))$results
title_of <- function(name) {
  hit <- titles[titles[, "Item"] == name & titles[, "Package"] == package_of[[name]], "Title"]
  if (length(hit) != 1) stop("no title for ", name)
  unname(hit)
}

index <- do.call(rbind, lapply(all_names, function(name) {
  d <- get_data(name)
  data.frame(name = name, package = package_of[[name]], title = title_of(name), rows = nrow(d),
             columns = ncol(d), row_names = keeps_row_names(d))
}))
columns <- do.call(rbind, lapply(all_names, function(name) {
  d <- get_data(name)
  data.frame(dataset = name, column = names(d), type = vapply(d, r_type, ""))
}))
levels_of <- function(name) {
  d <- get_data(name)
  cols <- names(d)[vapply(d, is.factor, logical(1))]
  if (!length(cols)) return(NULL)
  do.call(rbind, lapply(cols, function(col) {
    data.frame(dataset = name, column = col, level = levels(d[[col]]))
  }))
}
lev <- do.call(rbind, lapply(all_names, levels_of))
for (part in list(list(index, "_datasets.csv"), list(columns, "_columns.csv"), list(lev, "_factor_levels.csv"))) {
  path <- file.path(out_dir, part[[2]])
  write.csv(part[[1]], path, row.names = FALSE, fileEncoding = "UTF-8")
  cat(sprintf("wrote %s (%d lines)\n", path, nrow(part[[1]])))
}
