"""Typed configuration: one dataclass per YAML section.

The YAML files (configs/defaults.yaml and friends) are the user-facing source of
truth for values and comments; these dataclasses are the source of truth for
*which keys exist and what type they have*. `loader.load_config` validates every
merged key against them, so a typo fails at start-up instead of hours into a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

STAGES: tuple[str, ...] = ("data", "tokenizer", "baseline", "dreamer", "eval", "generate", "compare")
DEFAULT_STAGES: tuple[str, ...] = ("data", "tokenizer", "dreamer", "eval")
ACTOR_REWARD_GRADIENTS: tuple[str, ...] = ("sampled", "all_actions")  # dreamer.actor_reward_gradient
GRU_CELL_NAMES: tuple[str, ...] = ("layernorm", "torch")  # dreamer.gru (worldmodel/networks.py GRU_CELLS)


@dataclass
class RunConfig:
    dir: Optional[str] = None
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    progress: bool = True


@dataclass
class SyntheticCorpusConfig:
    n_speakers: int = 30
    utterances_per_speaker: int = 24
    min_syllables: int = 8
    max_syllables: int = 20
    seed: int = 1234


@dataclass
class DataConfig:
    source: str = "synthetic"
    path: Optional[str] = None
    min_duration_s: float = 0.5
    max_clips: Optional[int] = None
    num_workers: int = 0
    synthetic: SyntheticCorpusConfig = field(default_factory=SyntheticCorpusConfig)


# FeaturesConfig fields that only say how a mel spectrogram is turned back into sound: they
# change no features, so features, a tokenizer, a stage's outputs or a checkpoint made with
# other values still fit (data/feature_cache.py, tokenizer/model.py, pipeline/stages.py).
FEATURE_RENDER_FIELDS: tuple[str, ...] = ("griffin_lim_iters", "griffin_lim_momentum")


@dataclass
class FeaturesConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: Optional[int] = None
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1.0e-5
    griffin_lim_iters: int = 32
    griffin_lim_momentum: float = 0.99


@dataclass
class TokenizerConfig:
    codebook_size: int = 1024
    code_dim: int = 4
    groups: int = 12
    downsample: int = 4
    hidden: int = 128
    blocks: int = 2
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2.0e-3
    eval_every: int = 250
    commitment: float = 0.25
    dead_code_after: int = 50
    init: Optional[str] = None
    device: str = "auto"
    num_threads: int = 1


@dataclass
class EnvConfig:
    id: str = "audiodream/Complete-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)
    chunk_frames: int = 16
    episode_steps: int = 32
    split: str = "train"
    num_envs: int = 8


@dataclass
class RayConfig:
    address: Optional[str] = None
    num_workers: int = 2
    worker_num_cpus: float = 0.5
    num_cpus: Optional[int] = None
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    include_dashboard: bool = True
    worker_sync_every: int = 16


@dataclass
class LearnerConfig:
    device: str = "auto"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    num_threads: Optional[int] = None
    prefetch: bool = True


@dataclass
class DreamerConfig:
    preset: str = "default"
    train_steps: int = 3000
    # Wall-clock budget of training (metrics' time_s, actor start-up included, carried across
    # resumes): stop once it is spent, even before train_steps. None: no budget.
    train_seconds: Optional[float] = None
    # Deadline on the launch: stop training once this many seconds have passed since launch.py
    # began (every stage before this one included), so the stages after it still fit a budget
    # for the whole command on a slower machine. None: no deadline.
    train_until_s: Optional[float] = None
    batch_size: int = 16
    seq_len: int = 32
    train_ratio: float = 64.0
    prefill_steps: int = 2000
    replay_capacity: int = 1000000
    publish_every: int = 10
    checkpoint_every: int = 500
    log_every: int = 50
    lr_model: float = 3.0e-3
    # Keep an exponential moving average of the world model's weights with this decay per update
    # and let eval and generate use it (worldmodel/trainer.py). None: no average. World-model-only
    # runs (actor_critic false): the actor is trained on the live model's features.
    model_ema_decay: Optional[float] = None
    # Or EDM2's power-function average (worldmodel/weight_average.py): the weights of update s
    # weigh about s^power, so the average spans the same fraction of a run however many updates
    # the machine affords (power 0: the plain mean of all). Not with model_ema_decay.
    model_ema_power: Optional[float] = None
    # With model_ema_power: the weights of the first this many updates stay out of the average
    # (SWA's swa_start; until then eval gets the live weights), so a wide average of a short run
    # is not pulled back toward the untrained start (weight_average.py, README "World model", session 30).
    model_ema_start: int = 0
    # Adam's second-moment decay for the world model. 0.999 (Adam's and DreamerV2's) averages the
    # squared gradients over ~1000 updates, the whole of a 2-core run's budget, so each step is
    # scaled by gradients from most of the run before it; 0.99 averages over the last ~100
    # (listen_synthetic: lower completion TV and CE, README "World model", session 28).
    model_adam_beta2: float = 0.999
    lr_actor: float = 3.0e-4
    lr_critic: float = 3.0e-4
    grad_clip: float = 100.0
    # Model sizes: None -> the value of `preset` (see audiodream/worldmodel/sizes.py).
    token_embed: Optional[int] = None
    embed: Optional[int] = None
    deter: Optional[int] = None
    stoch: Optional[int] = None
    classes: Optional[int] = None
    hidden: Optional[int] = None
    decoder_slot_dim: Optional[int] = None
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    free_nats: float = 1.0
    unimix: float = 0.01
    reward_scale: float = 1.0
    cont_scale: float = 1.0
    predictive_scale: float = 1.0
    codebook_tied: bool = False
    prior_sample_prob: float = 0.0
    prior_components: int = 1
    gru: str = "layernorm"
    imag_horizon: int = 15
    imag_starts: Optional[int] = None
    gamma: float = 0.95
    lambda_: float = 0.95
    entropy_coef: float = 1.0e-2
    actor_reward_gradient: str = "sampled"
    actor_reward_prior: bool = False
    explore_epsilon: float = 0.0
    target_update_every: int = 100
    target_tau: float = 1.0
    return_norm: bool = True
    actor_critic: bool = True


@dataclass
class EvalConfig:
    horizons: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    context_steps: int = 8
    episodes: int = 64
    completion_prompts: int = 32
    completion_samples: int = 64
    n_dreams: int = 4
    ce_samples: int = 16
    dream_steps: int = 24
    token_temperature: float = 1.0
    latent_temperature: float = 1.0
    token_draw: str = "sample"
    syllable_classifier: str = "lda"
    classifier_reconstructions: bool = False


@dataclass
class GenerateConfig:
    prompt: Optional[str] = None
    seconds: float = 3.0
    temperature: float = 1.0
    latent_temperature: float = 1.0
    token_draw: str = "sample"


@dataclass
class BaselineConfig:
    algo: str = "ppo"
    env_steps: int = 20000
    train_batch_size: int = 2000
    lr: float = 3.0e-4
    num_env_runners: int = 1
    minibatch_size: int = 250
    num_epochs: int = 4
    gamma: float = 0.99
    entropy_coeff: float = 0.01
    hidden: int = 128
    embed_dim: int = 16
    max_seq_len: int = 16
    return_window: int = 100


@dataclass
class CompareConfig:
    agents: list[str] = field(default_factory=lambda: ["dreamer", "ppo", "dreamerv3"])
    env_steps: int = 20000
    env_steps_tolerance: float = 0.1
    final_fraction: float = 0.1
    dreamerv3_model_size: str = "XS"
    dreamerv3_training_ratio: float = 8.0
    dreamerv3_batch_size: int = 16
    dreamerv3_seq_len: int = 32
    dreamerv3_horizon: int = 15
    dreamerv3_log_every: int = 500
    dreamerv3_num_threads: int = 1


@dataclass
class MlflowConfig:
    enabled: bool = True
    tracking_uri: Optional[str] = None
    experiment: str = "audiodream"


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    dreamer: DreamerConfig = field(default_factory=DreamerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    # Names of the configs/NAME.yaml files merged into this config, in order.
    # Set by the loader, not by users; recorded so run.dir/config.yaml says how it was made.
    config_names: list[str] = field(default_factory=list)
