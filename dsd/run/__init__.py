"""The suite's runtime: a task's study as a graph of runs, and the loop that trains each run.

Nothing here is needed to use the engine (``import dsd`` does not import this package); it is
what ``dsd-suite run`` and the tests stand on. One job per module:

- ``settings``: how a study is run (methods, seeds, results folder, loop settings).
- ``study``: the study as a graph of runs (``Study``, ``PlannedRun``): each run's schedule,
  identity, hash, folder and the run it waits for; nothing else works out the list of runs.
- ``execute``: prepares the data once and trains the graph's runs in order (``run_study``).
- ``walk``: which run this process trains next, each under its lock; held runs are left to
  their holder (two processes on one study share it, never train a run twice).
- ``lock``: a run folder's lock: an exclusive create plus a heartbeat, a gone holder taken over.
- ``launch/``: the study's runs as jobs: SLURM through submitit, or side by side on one machine
  (``dsd-suite launch``).
- ``plan``: the graph printed with its data, model and steps (``dsd-suite plan``), nothing built.
- ``preflight``: everything cheap checked before a study builds anything.
- ``sweep``: one study over several sparsities of a recipe, and its manifest.
- ``dist``: torchrun plumbing (process group, rank-0 writes, gathering evaluation records).
- ``training/``: the loop of one run and its machinery (``dsd.run.training``).
"""
