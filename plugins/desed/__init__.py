"""DESED (DCASE 2019-2021 task 4): the data module for its layout and the embedded DESED-like
benchmark that ``sedkit synth desed`` builds (sound generators, planner, writer)."""
