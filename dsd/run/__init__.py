"""The suite's runtime: a task's study, the training loop, and the records a run leaves.

Nothing here is needed to use the engine (``import dsd`` does not import this package); it is
what ``dsd-suite run`` and the tests stand on. One job per module:

- ``adapter``: the interface a task implements (model, data, loss, per-sample evaluation records).
- ``config``: configuration fields that carry their help and choices; flags made from them.
- ``settings``: how a study is run (methods, seeds, results folder, loop settings).
- ``study``: the baseline and its branches (DSD, the equal-length dense control), reused when done.
- ``preflight``: everything cheap checked before a study builds anything; ``summary``: what a
  task's data holds, read without building it (``TaskAdapter.inspect``); ``plan``: the whole
  study a command would run, worked out without running it (``dsd-suite plan``).
- ``loop``: the training loop of one run, phase by phase.
- ``parts``: what a run trains with (model, optimizer, engine, data), built from the adapter.
- ``state``: where a run stands, the RNG states, and the checkpoint format.
- ``recorder``: what a run leaves on disk, in order: config, checkpoints, weights, result, done.
- ``folder``: the name of every file of a run folder; ``metrics.jsonl`` reading and writing.
- ``records``: the typed run record (``RunRecord``, ``RunResult``) and the run hash.
- ``evaluation``: exact evaluation of a split on one process or many.
- ``log``: console lines, ``metrics.jsonl`` lines, the progress bar, the NaN checks.
- ``precision``: autocast and the fp16 loss scaler, disabled where unused.
- ``signals``: SIGINT/SIGTERM ask for a checkpoint and a clean stop.
- ``hooks``: what a study adds to the loop (``LoopHook``); ``histograms``: Figure 4's capture;
  ``tensorboard``: each run's curves as TensorBoard events (``--tensorboard``).
- ``clock``: when a run checkpoints mid-epoch (every N steps, or every few minutes).
- ``weights``: strict loading of model weights with one clear message.
- ``dist``: torchrun plumbing (process group, rank-0 writes, gathering evaluation records).
- ``sampling``: seeded, resumable, per-rank training batches (length-bucketed for speech).
- ``standin``: building a stand-in dataset once, atomically.
"""
