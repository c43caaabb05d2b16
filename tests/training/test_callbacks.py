"""The trainer's callbacks: an evaluation at the last step, none just before it."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("step", "scheduled", "evaluates"),
    [
        (200, True, False),  # 4 steps before the last of 204: the last step evaluates anyway
        (204, False, True),  # the last step always evaluates and saves
        (180, True, True),  # 24 steps before the last (>= 0.1 x 200): kept
        (150, False, False),  # nothing scheduled, nothing added
    ],
)
def test_final_step_callback_evaluates_the_last_step_and_skips_one_just_before_it(step, scheduled, evaluates):
    from types import SimpleNamespace

    from shopsearch.training.callbacks import FinalStepCallback

    args = SimpleNamespace(eval_strategy="steps", eval_steps=200, save_steps=200)
    state = SimpleNamespace(max_steps=204, global_step=step)
    control = SimpleNamespace(should_evaluate=scheduled, should_save=scheduled)
    out = FinalStepCallback().on_step_end(args, state, control)
    assert out.should_evaluate is evaluates and out.should_save is evaluates
