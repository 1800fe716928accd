"""Classification data sets (``scenes``, ``instruments``, ``scenes3``) and the embedded
benchmarks that ``sedkit synth`` builds for them."""
