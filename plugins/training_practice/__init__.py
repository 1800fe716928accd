"""Training practice every method may use: early stopping."""
