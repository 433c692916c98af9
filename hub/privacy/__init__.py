"""Privacy: the keyed audit chain, erasure, export (right of access) and retention."""
