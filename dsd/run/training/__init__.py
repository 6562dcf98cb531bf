"""The loop of one run and its machinery, one job per module:

- ``loop``: the training loop of one run (``RunPlan``), phase by phase (``RunLoop``).
- ``parts``: what a run trains with (model, optimizer, engine, data), built from the adapter.
- ``state``: where a run stands, the RNG states, and the checkpoint format.
- ``recorder``: what a run leaves on disk, in order: config, checkpoints, weights, result, done.
- ``evaluation``: exact evaluation of a split on one process or many.
- ``log``: console lines, ``metrics.jsonl`` lines, the progress bar, the NaN checks.
- ``precision``: autocast and the fp16 loss scaler, disabled where unused.
- ``signals``: SIGINT/SIGTERM ask for a checkpoint and a clean stop.
- ``clock``: when a run checkpoints mid-epoch (every N steps, or every few minutes).
- ``hooks``: what watches a run (``LoopHook``) and the narrow view it gets (``RunView``);
  ``histograms``: Figure 4's capture; ``tensorboard``: each run's curves (``--tensorboard``).
"""
