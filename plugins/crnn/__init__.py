"""The CRNN of the DCASE task 4 baselines and of the tri-training paper."""
