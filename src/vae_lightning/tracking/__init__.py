"""Where a run is recorded: metrics.csv (CSV logger) and Weights & Biases."""
