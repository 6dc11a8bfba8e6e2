"""The bottom layer: typed errors, cancel tokens, JSON sanitising and version look-ups."""
