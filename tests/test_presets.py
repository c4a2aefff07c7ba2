"""Presets live in one file: every notebook reads one object per scale from it, and no notebook keeps a scale table."""
import json
import re

import numpy as np
import pytest

from gvatheory import presets
from gvatheory.infra import execute

NOTEBOOKS = execute.notebooks()


@pytest.mark.parametrize("scale", presets.SCALES)
def test_every_notebook_has_a_preset_at_every_scale(scale):
    for nb in [p for p in NOTEBOOKS if p.name[:2] != "00"]:  # the overview computes nothing: it reads a build
        p = presets.notebook(nb.name[:2], scale)
        assert isinstance(p, presets.Preset) and vars(p)
        with pytest.raises(AttributeError, match="read-only"):
            p.anything = 1


def test_scales_grow():
    """smoke < quick <= paper in training steps for every BC preset: the names mean what they say."""
    for table in (presets.BC, presets.MUJOCO, presets.ABLATION):
        assert table["smoke"].steps < table["quick"].steps <= table["paper"].steps


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="scale must be one of"):
        presets.notebook("04", "huge")
    with pytest.raises(ValueError, match="no notebook"):
        presets.notebook("99", "quick")
    with pytest.raises(ValueError, match="task must be one of"):
        presets.locomotion_config("Swimmer-v5")
    for bad in (["Swimmer-v5"], [], ["Hopper-v5", "Hopper-v5"], '["Hopper-v5"]'):  # the last: a list passed as text
        with pytest.raises(ValueError, match="tasks must be None or distinct names"):
            presets.locomotion_tasks(bad, "quick")


def test_locomotion_tasks_default_to_the_scale_and_keep_the_order_given():
    assert presets.locomotion_tasks(None, "quick") == ("Hopper-v5", "Walker2d-v5")
    assert presets.locomotion_tasks(None, "paper") == presets.LOCOMOTION
    assert presets.locomotion_tasks("Ant-v5", "quick") == ("Ant-v5",)
    assert presets.locomotion_tasks(["Humanoid-v5", "Hopper-v5"], "smoke") == ("Humanoid-v5", "Hopper-v5")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_read_their_configuration_from_the_presets(nb):
    code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    if nb.name[:2] != "00":  # the overview has no configuration: it reads a build
        assert f'presets.notebook("{nb.name[:2]}", scale)' in code
    # no scale table in a notebook: no dict indexed by the scale, no branch on its name
    assert not re.search(r"\[scale\]|scale\s*(==|!=|in)\s", code), "a scale table or branch inside the notebook"


def test_locomotion_noise_is_the_same_fraction_of_every_tasks_action_range():
    """A tenth of half the action box on every task, read from the MuJoCo models (Humanoid's box is [-0.4, 0.4])."""
    from gvatheory.control import mujoco as mjenv

    for task in presets.LOCOMOTION:
        low, high = mjenv.BatchEnv(task, 1).model.actuator_ctrlrange.T
        assert np.allclose(low, -high), task  # symmetric boxes: one half-width per task
        assert np.ptp(high) == 0, task
        assert presets.LOCOMOTION_NOISE[task] == pytest.approx(0.1 * high[0], rel=1e-12), task
        for scale in presets.SCALES:
            assert presets.locomotion_config(task, scale).action_noise == presets.LOCOMOTION_NOISE[task]
