"""Integrations of the DSD engine with training frameworks.

Each integration is its own module and imports its framework only when imported itself, so
``import dsd`` never pulls in an optional dependency:

- ``dsd.integrations.transformers``: ``DSDCallback`` for the Hugging Face ``Trainer``
  (``pip install dsd-suite[transformers]``), with its parts: ``hf_selection`` (which weights by
  default), ``trainer_lr`` (the schedule's rates through the Trainer's scheduler) and
  ``sharded_checkpoint`` (the masks beside a checkpoint under FSDP2, saved by every rank).
"""
