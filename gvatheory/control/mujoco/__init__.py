"""C MuJoCo for the BC engine: Gymnasium's v5 tasks (:mod:`.tasks`), a batched environment (:mod:`.env`), an LQR expert (:mod:`.lqr`)."""
from gvatheory.control.mujoco.env import BatchEnv, default_threads, demonstrations, rollout
from gvatheory.control.mujoco.lqr import LQRExpert, lqr_expert
from gvatheory.control.mujoco.tasks import TASKS, Task, load_model, reset_states, task
from gvatheory.control.rollout import Rollout

__all__ = ["BatchEnv", "LQRExpert", "Rollout", "TASKS", "Task", "default_threads", "demonstrations", "load_model", "lqr_expert", "reset_states", "rollout", "task"]
