"""The runs of one locomotion task that notebook 12 (and, for its main runs, notebook 11) reads at a scale.

Four run families per seed, each computed or read from the cache: the constant-learning-rate run with the long
averages tracked alongside, its branch with the learning rate decayed to 0, the clean-label run, and the rollouts
along the EMA-to-raw path at a few checkpoints (:mod:`gvatheory.control.decomposition` says what each measures).
The notebooks call :func:`runs`; ``python -m gvatheory.infra.precompute`` calls it one seed per process first.

Why a module of its own rather than part of ``decomposition``: the path results' cache key holds the source of
``decomposition`` (and of what it imports), so how the runs are gathered lives here, where editing it recomputes
nothing.
"""
from __future__ import annotations

import numpy as np


def path_checkpoints(n_checkpoints: int, n_path: int) -> np.ndarray:
    """The indices of the checkpoints whose EMA-to-raw path notebook 12 rolls out: ``n_path`` spread evenly over
    ``n_checkpoints``, first and last included (fewer when ``n_checkpoints < n_path``)."""
    if n_checkpoints < 1 or n_path < 1:
        raise ValueError(f"need n_checkpoints >= 1 and n_path >= 1, got {n_checkpoints}, {n_path}")
    return np.unique(np.linspace(0, n_checkpoints - 1, n_path).round().astype(int))


def runs(task: str, scale: str, seeds) -> dict:
    """Notebook 12's runs of ``task`` at ``scale`` for ``seeds`` (computed, or read from the cache): ``cfg``
    (:func:`gvatheory.presets.locomotion_config`), ``main`` (constant learning rate, with the long averages; notebook
    11's runs too), ``decd`` (the learning rate decayed to 0), ``clean`` (clean labels), each a list over the seeds, and
    ``paths``: the rollouts along the EMA-to-raw path at :func:`path_checkpoints` of each main run."""
    from gvatheory import presets
    from gvatheory.control import bc
    from gvatheory.control import decomposition as dec

    seeds = list(seeds)
    p12 = presets.notebook("12", scale)
    cfg = presets.locomotion_config(task, scale)
    main = bc.run_seeds(cfg, seeds, desc=f"{task}: constant learning rate, long averages")
    decd = bc.run_seeds(dec.decayed(cfg), seeds, desc=f"{task}: learning rate decayed to 0")
    clean = bc.run_seeds(dec.clean(cfg), seeds, desc=f"{task}: clean labels")
    idx = path_checkpoints(len(cfg.checkpoints), p12.n_path)
    paths = [dec.path_rollouts(cfg, o, s, idx, p12.s_values) for s, o in zip(seeds, main)]
    return dict(cfg=cfg, main=main, decd=decd, clean=clean, paths=paths)
