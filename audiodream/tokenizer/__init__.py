"""VQ-VAE tokenizer: normalised log-mel chunks <-> a fixed number of tokens per env step.

Importing this package does not import the training stage (which pulls in matplotlib and
MLflow); environments and the world model only need the model.
"""

from audiodream.tokenizer.geometry import TokenGeometry, TokenGeometryError
from audiodream.tokenizer.model import Tokenizer, TokenizerArchitecture, TokenizerCheckpointError

__all__ = ["TokenGeometry", "TokenGeometryError", "Tokenizer", "TokenizerArchitecture", "TokenizerCheckpointError"]
