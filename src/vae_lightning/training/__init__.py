"""The Lightning glue of training: callbacks, checkpoints, run folders, DDP start-up, media."""
