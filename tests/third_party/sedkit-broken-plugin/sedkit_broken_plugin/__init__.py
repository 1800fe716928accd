"""A plugin whose import fails, as one with a missing native dependency would."""

raise ImportError("libbroken.so.1: cannot open shared object file")
