"""Tri-training with three labelers on the shared CRNN features (the tri-training paper)."""
