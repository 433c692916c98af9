"""The store side of a chain of stores: what crosses to the central office (docs/chain.md)."""
