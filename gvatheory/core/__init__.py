"""The public core: iterate averaging for JAX pytrees, post-hoc EMA, and GVA diagnostics for any series of checkpoints."""
