"""Test-session setup: one persistent XLA compilation cache for the whole session.

Many tests compile the same smoke-scale programs (the same BC scan in several tests, each theory
notebook twice for the determinism check, the base run of notebooks 07–09 in their kernels and in
tests/test_ablations.py). JAX's persistent compilation cache, keyed by the program and the compiler,
lets a later compilation of an identical program load the executable instead — the same machine code,
so the same numbers; it only saves time. Set here, before JAX is imported, and inherited by the
notebook kernels through the environment. Set GVATHEORY_TEST_XLA_CACHE=0 to turn it off.
"""
import os
import tempfile

if os.environ.get("GVATHEORY_TEST_XLA_CACHE", "1") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="gvatheory-xla-"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
