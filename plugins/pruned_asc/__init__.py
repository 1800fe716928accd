"""Pruned ensembles for acoustic scene classification (Ooi et al. 2020, DCASE 2020 task 1B):
VGG, Inception, the ensemble and the pruning callback."""
