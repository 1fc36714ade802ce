"""Acting and learning on Ray: env workers -> replay -> learner, weights back by reference.

The classes here are plain Python (unit-tested in one process); actors.py makes Ray
actors of them and cluster.py starts or joins the cluster. Nothing here imports the
env, tokenizer, world-model or agent packages: a `DreamerParts` object supplies them.
"""

from audiodream.distributed.chunks import CHUNK_KEYS, concat_chunks, validate_chunk
from audiodream.distributed.coordinator import Coordinator, SyncReply, WorkerReport
from audiodream.distributed.episodes import EpisodeRecorder
from audiodream.distributed.handles import LocalHandle, Shared, lookup, resolve, unshare
from audiodream.distributed.learner import Learner, LearnerSettings
from audiodream.distributed.parts import ActingPolicy, DreamerParts, Trainers
from audiodream.distributed.ratio import TrainRatio
from audiodream.distributed.replay import ReplayBuffer
from audiodream.distributed.token_packing import TokenPacker
from audiodream.distributed.worker import EnvWorker, WorkerSettings

__all__ = [
    "CHUNK_KEYS",
    "ActingPolicy",
    "Coordinator",
    "DreamerParts",
    "EnvWorker",
    "EpisodeRecorder",
    "Learner",
    "LearnerSettings",
    "LocalHandle",
    "ReplayBuffer",
    "Shared",
    "SyncReply",
    "TokenPacker",
    "TrainRatio",
    "Trainers",
    "WorkerReport",
    "WorkerSettings",
    "concat_chunks",
    "lookup",
    "resolve",
    "unshare",
    "validate_chunk",
]
