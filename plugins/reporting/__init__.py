"""Reporting plugin: TensorBoard logging, plots, run reports, `sedkit compare` and `sedkit show`."""
