"""Running: compatibility fixes for torch 2.14 (``compat``), training hooks (``hooks``), checkpoints
that survive a kill and what ``--resume`` resumes from (``checkpoints``), layer-wise learning-rate
decay (``optimizers``), the train/test entry points' helpers (``launch``) and the pre-flight check of
a config (``preflight``)."""
