"""Dreamer on Ray: the stage, its driver, the real parts it trains, and its checkpoint format."""

from audiodream.dreamer.checkpoint import CHECKPOINT_FILE, load_checkpoint, resume_fingerprint, save_checkpoint
from audiodream.dreamer.run import DreamerRun, RunSummary

__all__ = ["CHECKPOINT_FILE", "DreamerRun", "RunSummary", "load_checkpoint", "resume_fingerprint", "save_checkpoint"]
