"""Results: what a fit returns. One base (ModelResult) and the result of each kind of model."""
