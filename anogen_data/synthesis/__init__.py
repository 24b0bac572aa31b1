"""Synthesis backends, one per file, one call signature; ``BACKENDS`` maps names to them."""
