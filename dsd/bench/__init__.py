"""The benchmark room: what the engine and the training loop cost, measured against targets.

Nothing here is needed to use the engine (``import dsd`` does not import this package). One job
per module:

- ``engine``: the engine benchmark and its command (``python -m dsd.bench.engine``): step time
  sparse ÷ dense and ours ÷ ``torch.nn.utils.prune``, bytes held per pruned weight, the checks
  against the targets and the printed table.
- ``prune``: ``prune()`` wall time and peak extra memory, layer and global scope.
- ``models``: the models, fixed batches and sparsity the engine benchmarks run on.
- ``probes``: the measuring instruments: step timers, the engine-hook clock, peak memory, and
  the machine a result was measured on.
- ``fsdp``: the engine under FSDP2 on 2 CPU ranks (``python -m dsd.bench.fsdp``): step time sparse ÷
  dense, the collectives and bytes of one ``prune()``, and its time against one process's.
- ``loop``: the loop-overhead benchmark (``python -m dsd.bench.loop``): what the training loop
  adds per step beside a bare PyTorch loop.
- ``lock``: what a run's lock costs (``python -m dsd.bench.lock``): taking it, a heartbeat and
  releasing it, on any folder (the shared file system the results live on).
"""
