# R's nls() and minpack.lm's nlsLM() on the 27 NIST StRD nonlinear regressions, both starts (R 4.2.2,
# minpack.lm 1.2-3), for benchmarks/nist_nonlinear.py, which scores them beside torchlm:
#
#   cd benchmarks && Rscript nist_nonlinear.R     # writes nist_nonlinear_r.json
#
# Each fit uses R's defaults (nls.control(), nls.lm.control()). A fit that stops with an error, or that
# reports no convergence, is recorded with its message and no numbers (scored 0 digits). Data and starts
# come from tests/fixtures/nist_nonlinear/ (NIST's tokens, NIST's starting values).
suppressMessages(library(minpack.lm))
dir <- "../tests/fixtures/nist_nonlinear"
num <- function(x) ifelse(is.na(x), "null", sprintf("%.17g", x))
jvec <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")
jstr <- function(s) paste0('"', gsub("\n", "\\\\n", gsub('"', '\\\\"', gsub("\\\\", "\\\\\\\\", s))), '"')
field <- function(text, key) {
  m <- regmatches(text, regexpr(paste0('"', key, '": *(\\[[^]]*\\]|"[^"]*")'), text))
  sub(paste0('"', key, '": *'), "", m)
}
numbers <- function(s) as.numeric(strsplit(gsub("[][[:space:]]", "", s), ",")[[1]])
strings <- function(s) gsub('"', "", strsplit(gsub("[][[:space:]]", "", s), ",")[[1]])

one_fit <- function(fitter, form, data, start) {
  msgs <- character()
  fit <- withCallingHandlers(
    tryCatch(fitter(form, data, start), error = function(e) e),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") })
  if (inherits(fit, "error"))
    return(paste0('{"ok": false, "message": ', jstr(trimws(conditionMessage(fit))), '}'))
  conv <- fit$convInfo$isConv
  se <- tryCatch(summary(fit)$coefficients[, 2], error = function(e) rep(NA, length(start)))
  paste0('{"ok": ', if (conv) "true" else "false", ', "message": ', jstr(fit$convInfo$stopMessage),
         ', "iterations": ', fit$convInfo$finIter, ', "coef": ', jvec(coef(fit)), ', "se": ', jvec(se),
         ', "rss": ', num(deviance(fit)), ', "warnings": [', paste(vapply(msgs, jstr, ""), collapse = ", "),
         ']}')
}

fitters <- list(
  nls = function(form, data, start) nls(form, data, start),
  nlsLM = function(form, data, start) nlsLM(form, data, start)
)
files <- sort(list.files(dir, pattern = "\\.json$"))
out <- character()
for (f in files) {
  text <- paste(readLines(file.path(dir, f), warn = FALSE), collapse = "\n")
  name <- sub("\\.json$", "", f)
  form <- as.formula(gsub('"', "", field(text, "r_formula")))
  pn <- strings(field(text, "param_names"))
  data <- read.csv(file.path(dir, paste0(name, ".csv")))
  starts <- vapply(1:2, function(s) {
    start <- as.list(setNames(numbers(field(text, paste0("start", s))), pn))
    fits <- vapply(names(fitters), function(k) paste0(jstr(k), ": ", one_fit(fitters[[k]], form, data, start)), "")
    paste0('"start', s, '": {', paste(fits, collapse = ", "), '}')
  }, "")
  out <- c(out, paste0(jstr(name), ": {", paste(starts, collapse = ", "), "}"))
}
writeLines(c("{", paste0('"R": ', jstr(R.version.string), ', "minpack.lm": ', jstr(as.character(packageVersion("minpack.lm"))), ","),
             paste(out, collapse = ",\n"), "}"), "nist_nonlinear_r.json")
