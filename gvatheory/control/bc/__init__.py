"""Behavior cloning: one engine (:mod:`.engine`), two rollout backends (:mod:`.backends`), checked data (:mod:`.data`).

``from gvatheory.control import bc``; ``bc.run_seeds(cfg, seeds)`` trains and evaluates ``cfg`` for each
seed (cached); ``bc.make_run(cfg)`` is the pure jitted ``run(key)`` behind it. Presets live in
:mod:`gvatheory.presets`; ``python -m gvatheory.control.bc --help`` runs one from the command line.
"""
from gvatheory.control.bc.backends import dims
from gvatheory.control.bc.baseline import reference_returns
from gvatheory.control.bc.config import BCConfig
from gvatheory.control.bc.data import DemonstrationError, demonstrations, mujoco_expert
from gvatheory.control.bc.engine import Evaluator, batched_policy, evaluate_flat, finish, is_cached, make_evaluator, make_run, run_seeds, unravel

__all__ = [
    "BCConfig", "DemonstrationError", "Evaluator", "batched_policy", "demonstrations", "dims", "evaluate_flat", "finish", "is_cached",
    "make_evaluator", "make_run", "mujoco_expert", "reference_returns", "run_seeds", "unravel",
]
