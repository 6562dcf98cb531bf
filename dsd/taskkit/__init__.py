"""What a task stands on: a task package imports the engine, this toolkit and the records only.

- ``adapter``: the interface a task implements (``TaskAdapter``: model, data, loss, per-sample
  evaluation records, metrics) and the cache folder rule.
- ``config``: configuration fields that carry their help and choices; flags made from them.
- ``sources``: where a task's data comes from (its folder, a Hugging Face copy, the stand-in),
  chosen once; ``sourced``: the adapter whose data methods ask that source.
- ``fingerprint``: what identifies a dataset apart from where it lies (part of every run's hash).
- ``summary``: what a task's data holds, read without building it.
- ``standin``: building a stand-in dataset once, atomically.
- ``hf_layout`` / ``hf_data``: Hugging Face datasets on local disk, found and read offline.
- ``sampling``: seeded, resumable, per-rank training batches (length-bucketed for speech).
- ``weights``: model weights loaded strictly, and a finished run's final weights.
- ``environment``: the machine's cores, data-loading workers, and library versions.
"""
