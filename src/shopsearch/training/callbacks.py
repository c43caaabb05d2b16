"""Trainer callbacks: a JSONL metrics log, and an evaluation + checkpoint at the last step."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class JsonlMetricsCallback(TrainerCallback):
    """Appends every log (loss, learning rate, dev metrics) to a JSONL file, with the stage, the
    step and the throughput since the previous log, so a run can be plotted or compared later."""

    def __init__(self, path: str | Path, stage: str, batch_size: int) -> None:
        self.path = Path(path)
        self.stage = stage
        self.batch_size = batch_size
        self._last: tuple[int, float] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        record: dict[str, Any] = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch, "time": now}
        if self._last is not None and state.global_step > self._last[0]:
            steps, secs = state.global_step - self._last[0], now - self._last[1]
            record["samples_per_s"] = steps * self.batch_size * max(1, args.world_size) / max(secs, 1e-9)
        self._last = (state.global_step, now)
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str))})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class FinalStepCallback(TrainerCallback):
    """Evaluate and save at the last step too, so the best-checkpoint choice sees the final model
    (the HF trainer only evaluates on multiples of ``eval_steps``); and skip a scheduled evaluation
    and checkpoint that falls within ``min_gap`` x ``eval_steps`` steps of the last step, which
    evaluates a few steps later anyway (a stage of 204 steps with ``eval_steps`` 200 evaluates once,
    at 204, not at 200 and 204; a float32 dev evaluation on Home Depot takes ~1 min on 2 cores)."""

    def __init__(self, min_gap: float = 0.1) -> None:
        self.min_gap = min_gap

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True
            if args.eval_strategy != "no":
                control.should_evaluate = True
        elif (
            state.max_steps
            and (control.should_evaluate or control.should_save)
            and state.max_steps - state.global_step < self.min_gap * (args.eval_steps or args.save_steps)
        ):
            control.should_evaluate = False
            control.should_save = False
        return control
