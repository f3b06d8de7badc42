"""Imitation training: the configuration, the training loop (single process or torchrun/DDP) and DAgger."""
