"""audiodream: DreamerV2-style world models on tokenised audio, distributed with Ray."""

__version__ = "0.1.0"
