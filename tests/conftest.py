"""Test-run setup: cheaper XLA compilation, and one persistent compilation cache for the whole run.

Most of the time of a smoke-scale test is XLA compiling programs that then run for a fraction of a
second (a BC run at smoke scale: ~4 s to compile, ~0.05 s to run). Two settings, made here before JAX
is imported and inherited by the notebook kernels through the environment:

* ``--xla_backend_optimization_level=0``: LLVM does not optimise the generated CPU code. Compiling the
  smoke runs of notebooks 04, 07 and 08 took ~30% less time (measured: 83/110/140 s -> 58/85/94 s,
  one at a time beside a niced background job); the code runs slower, which smoke scale does not feel.
  It is the same program rounded differently in the last bits (a smoke BC run: parameters within
  1.4e-6 of the optimised build's after 200 steps, returns within 5e-4); the tests compare with
  tolerances, and the determinism tests compare two runs under the same setting.
  Set GVATHEORY_TEST_FAST_COMPILE=0 to compile as ``make figures`` does.
* JAX's persistent compilation cache, keyed by the program and the compiler: a later compilation of an
  identical program loads the executable instead — the same machine code, so the same numbers. It
  only helps programs without host callbacks (JAX does not store those), so not a BC run with a
  progress bar. Set GVATHEORY_TEST_XLA_CACHE=0 to turn it off.
"""
import os
import tempfile

if os.environ.get("GVATHEORY_TEST_FAST_COMPILE", "1") != "0":
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()

if os.environ.get("GVATHEORY_TEST_XLA_CACHE", "1") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="gvatheory-xla-"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
