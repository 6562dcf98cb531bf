"""Launching a study: its runs as jobs, side by side, each trained once (``dsd-suite launch``).

The scheduling is SLURM's (through submitit) or, on one machine, a pool of processes; what this
package adds is what a study needs of them. One job per module:

- ``plan``: which runs need a job (done ones reused, live-locked or queued ones not submitted
  again) and what each waits for; every job runs the launch's own command line narrowed to its
  run, so it rebuilds the same graph.
- ``slurm``: the jobs submitted through submitit, the graph as ``afterok`` dependencies, the
  closing report job ``afterany``; partition, account, QoS, time, nodes, GPUs, CPUs, memory and
  any sbatch option.
- ``local``: the jobs as processes side by side, ``--parallel N`` at a time in the graph's order,
  each with its GPUs or its share of the cores.
- ``job``: what runs inside a job: its record's commands, ``torch.distributed`` from SLURM's
  variables, the notice signal turned into a checkpoint and submitit's requeue.

Each job keeps a record and a log in its run's ``jobs/`` folder (``dsd.records.jobs``), where
``dsd-suite status`` reads them.
"""
