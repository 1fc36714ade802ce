"""The world model: token encoder + RSSM + token decoder + reward and continuation heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn
import torch.nn.functional as F

from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel.batch import SequenceBatch
from audiodream.worldmodel.distributions import categorical_entropy
from audiodream.worldmodel.losses import balanced_kl_loss, transition_reward_loss
from audiodream.worldmodel.networks import TokenDecoder, TokenEncoder, check_codebook, mlp
from audiodream.worldmodel.rssm import RSSM, PosteriorSequence, RSSMState
from audiodream.worldmodel.sizes import WorldModelSpec, spec_from_config

MEAN_CODE_ROWS = 512  # steps whose full (K, V) token table mean_code_vectors holds at once

# policy(features (N, F), generator) -> action ids (N,) int64, or (N, A) one-hot / relaxed actions
Policy = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]


@dataclass
class ImaginedTrajectory:
    """A prior rollout of N starts over H steps. Index 0 is the start state.

    actions[:, j] is taken in state j and leads to state j + 1 (so, in batch terms,
    it is the action stored with step j + 1).
    """

    h: torch.Tensor  # (N, H+1, deter)
    z: torch.Tensor  # (N, H+1, stoch*classes)
    prior_log_probs: torch.Tensor  # (N, H, stoch, classes): distribution z[:, 1:] was drawn from
    actions: torch.Tensor  # (N, H) int64 action ids
    action_one_hot: torch.Tensor  # (N, H, A) as fed to the model (carries gradients of relaxed actions)
    rewards: torch.Tensor  # (N, H+1) predicted rewards: [:, j + 1] earned by action j; [:, 0] = 0
    action_rewards: torch.Tensor  # (N, H+1, A) predicted reward of every action in each state (rewards picks the chosen one)
    continues: torch.Tensor  # (N, H+1) predicted probability that the episode goes on
    tokens: Optional[torch.Tensor] = None  # (N, H, K) tokens sampled for states 1..H, if asked for

    @property
    def features(self) -> torch.Tensor:
        return torch.cat([self.h, self.z], dim=-1)


class WorldModel(nn.Module):
    def __init__(self, spec: WorldModelSpec, codebook: Optional[torch.Tensor] = None) -> None:
        """`codebook` (V, spec.code_dim): the tokenizer's code vectors, for a fresh
        codebook-tied model; a tied model rebuilt from a checkpoint gets them (and the
        decoders' code layout) from its state dict instead."""
        super().__init__()
        self.spec = spec
        self.encoder = TokenEncoder(spec.tokens_per_step, spec.vocab_size, spec.token_embed, spec.hidden, spec.embed, spec.code_dim)
        self.rssm = RSSM(spec)
        self.decoder = TokenDecoder(spec.feature_dim, spec.hidden, spec.tokens_per_step, spec.decoder_slot_dim, spec.vocab_size, spec.code_dim)
        # The predictive head p(tokens_t | h_t): the step's tokens before they are seen,
        # with z_t marginalised out (learnt directly instead of averaged over prior
        # samples). The decoder above, given a posterior z_t, is sharp: z_t carries the
        # step's details, so a handful of prior samples cover the broad predictive
        # distribution badly and their mixture overstates the CE, more so at long
        # horizons. Trained on teacher-forced h_t, it is the RSSM's own next-step
        # prediction, and its gradient makes h_t carry what predicts the next step.
        self.predictor = TokenDecoder(spec.deter, spec.hidden, spec.tokens_per_step, spec.decoder_slot_dim, spec.vocab_size, spec.code_dim)
        # Continuation and reward share one hidden layer (a second (feature_dim x hidden)
        # layer cost ~10% of an update). Output 0: logit of P(the episode goes on after
        # this state); outputs 1..A: the expected reward of each action taken here (it
        # arrives with the next step). Predicting r(s, a) for every a from the state the
        # action is chosen in, rather than DreamerV2's r(s') from the state it leads to,
        # makes "which action pays here" a per-action readout of s: on Complete-v0 the
        # reward of naming syllable a is the grammar's probability of a, which h already
        # carries to predict the next tokens, while r(s') had to learn to compare the
        # spoken answer with the context inside an MLP and stayed near the mean reward.
        # Measured on Complete-v0 (800 updates): a one-step lookahead on r(s') scored
        # 0.31, on r(s, a) 0.36 (random 0.13, optimal 2.27): better, far from learnt.
        self.heads = mlp(spec.feature_dim, spec.hidden, 1 + spec.n_actions)
        if codebook is not None:
            if not spec.code_dim:
                raise ValueError("WorldModel: a codebook was given but spec.code_dim is 0 (the model is not codebook-tied)")
            for module in (self.encoder, self.decoder, self.predictor):
                module.set_codebook(codebook)

    @classmethod
    def from_config(cls, cfg: DreamerConfig, tokens_per_step: int, vocab_size: int, n_actions: int, codebook: Optional[torch.Tensor] = None) -> "WorldModel":
        """Codebook-tied when `cfg.codebook_tied`, which needs the tokenizer's `codebook` (V, code_dim)."""
        if cfg.codebook_tied and codebook is None:
            raise ValueError("dreamer.codebook_tied: the world model needs the tokenizer's codebook, none was given")
        tied = codebook if cfg.codebook_tied else None
        spec = spec_from_config(cfg, tokens_per_step, vocab_size, n_actions, code_dim=0 if tied is None else int(tied.shape[-1]))
        return cls(spec, tied)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def one_hot_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return F.one_hot(actions, self.spec.n_actions).float()

    def observe(
        self,
        tokens: torch.Tensor,
        actions: torch.Tensor,
        is_first: torch.Tensor,
        state: Optional[RSSMState] = None,
        generator: Optional[torch.Generator] = None,
        prior_sample_prob: float = 0.0,
    ) -> PosteriorSequence:
        """Posterior states of a (B, T) sequence; `state` continues from a previous chunk.
        `prior_sample_prob`: scheduled sampling in training (RSSM.observe)."""
        return self.rssm.observe(self.encoder(tokens), self.one_hot_actions(actions), is_first, state, generator, prior_sample_prob)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised token log-probabilities (..., K, V) from features (..., F); usable as logits."""
        return self.decoder(features)

    def token_log_prob(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens (..., K) | features (..., F)): the cheap path (no full (K, V) table)."""
        return self.decoder.token_log_prob(features, tokens)

    def predictive_log_prob(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens (..., K) | h (..., deter)) under the predictive head (z marginalised): (..., K)."""
        return self.predictor.token_log_prob(h, tokens)

    def sample_tokens(self, features: torch.Tensor, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Token ids (..., K) drawn from the decoder at features (..., F); temperature 0: most likely.

        Feed the result to the tokenizer's decode() to hear or see what the model predicts.
        TokenDecoder.sample says how (group then code at temperature 1, else the full table).
        """
        return self.decoder.sample(features, temperature, generator)

    def mean_code_vectors(self, features: torch.Tensor, code_vectors: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """(..., K, code_dim): each token slot's code vector averaged under the decoder's
        distribution at `temperature` (0: the most likely code's own vector), for features
        (..., F) and the tokenizer's (V, code_dim) code vectors.

        A deterministic rendering of the step's token distribution: where the decoder is
        unsure between codes, the tokenizer decodes a point between them instead of the one
        that happens to be most likely (README "Evaluation", token_draw). Costs the full
        (K, V) table, built MEAN_CODE_ROWS steps at a time to bound its memory.
        """
        if not temperature >= 0.0:
            raise ValueError(f"mean_code_vectors: temperature must be >= 0, got {temperature}")
        code_vectors = check_codebook(code_vectors, self.spec.vocab_size, code_vectors.shape[-1]).to(features.device)
        if temperature == 0.0:
            return code_vectors[self.sample_tokens(features, 0.0)]
        flat = features.reshape(-1, features.shape[-1])
        means = [
            torch.softmax(self.decoder(flat[start : start + MEAN_CODE_ROWS]) / temperature, dim=-1) @ code_vectors
            for start in range(0, len(flat), MEAN_CODE_ROWS)
        ]
        return torch.cat(means).view(*features.shape[:-1], self.spec.tokens_per_step, code_vectors.shape[-1])

    def predict_action_rewards_and_continue_logit(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expected reward of each action taken in this state (..., A), logit of P(episode goes on) (...,))."""
        out = self.heads(features).float()
        return out[..., 1:], out[..., 0]

    def predict_action_rewards(self, features: torch.Tensor) -> torch.Tensor:
        """Expected reward (..., A) of each action taken in the state with features (..., F)."""
        return self.predict_action_rewards_and_continue_logit(features)[0]

    def predict_continue_logit(self, features: torch.Tensor) -> torch.Tensor:
        return self.predict_action_rewards_and_continue_logit(features)[1]

    def loss(self, batch: SequenceBatch, state: Optional[RSSMState] = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], PosteriorSequence]:
        """Total loss (scalar), detached metric tensors, and the posterior sequence.

        Token loss is the cross-entropy summed over the K tokens of a step (the
        step's negative log-likelihood, as an image NLL is summed over pixels in
        DreamerV2), averaged over B x T; `ce_tokens` reports it per token. The
        predictive head's loss is the same sum for p(tokens_t | h_t), weighted by
        `predictive_scale`; `ce_predictive` reports it per token.
        """
        spec = self.spec
        posterior = self.observe(batch.tokens, batch.actions, batch.is_first, state, prior_sample_prob=spec.prior_sample_prob)
        features = posterior.features
        token_nll = -self.token_log_prob(features, batch.tokens)  # (B, T, K)
        loss_tokens = token_nll.sum(-1).mean()
        predictive_nll = -self.predictive_log_prob(posterior.h, batch.tokens)  # h_t has not seen tokens_t
        loss_predictive = predictive_nll.sum(-1).mean()
        action_rewards, cont_logit = self.predict_action_rewards_and_continue_logit(features)
        loss_reward = transition_reward_loss(action_rewards, batch.actions, batch.rewards, batch.is_first)
        loss_cont = F.binary_cross_entropy_with_logits(cont_logit, (~batch.terminals).float())
        kl = balanced_kl_loss(posterior.post_log_probs, posterior.prior, spec.kl_balance, spec.free_nats)
        kl_term = kl.loss.mean()
        total = loss_tokens + spec.predictive_scale * loss_predictive + spec.reward_scale * loss_reward + spec.cont_scale * loss_cont + spec.kl_scale * kl_term
        with torch.no_grad():
            metrics = {
                "loss_model": total.detach(),
                "loss_kl": kl.kl.mean(),
                "loss_kl_balanced": kl_term.detach(),
                "loss_tokens": loss_tokens.detach(),
                "ce_tokens": token_nll.mean(),
                "ce_predictive": predictive_nll.mean(),
                "loss_reward": loss_reward.detach(),
                "loss_cont": loss_cont.detach(),
                "entropy_prior": posterior.prior.entropy_bound().mean(),
                "entropy_post": categorical_entropy(posterior.post_log_probs).mean(),
            }
        return total, metrics, posterior

    def _action_input(self, chosen: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (N,), one-hot (N, A)) from a policy's or a schedule's output."""
        if chosen.dtype.is_floating_point:
            if chosen.shape[-1] != self.spec.n_actions:
                raise ValueError(f"imagine: step {step}: relaxed actions need last dim {self.spec.n_actions}, got {tuple(chosen.shape)}")
            return chosen.argmax(-1), chosen
        if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= self.spec.n_actions):
            raise ValueError(f"imagine: step {step}: action ids must lie in [0, {self.spec.n_actions})")
        return chosen.long(), self.one_hot_actions(chosen.long())

    def imagine(
        self,
        start: RSSMState,
        policy_or_actions: Union[Policy, torch.Tensor],
        horizon: int,
        generator: Optional[torch.Generator] = None,
        with_tokens: bool = False,
        temperature: float = 1.0,
        latent_temperature: float = 1.0,
    ) -> ImaginedTrajectory:
        """Roll the prior forward `horizon` steps from N start states.

        `policy_or_actions` is either a policy called as policy(features, generator)
        in each state, or a fixed schedule of action ids (N, H) (e.g. the real actions
        for open-loop prediction). All sampling (latents, tokens, and the policy if it
        uses the generator) draws from `generator`, so a fixed seed gives the same
        rollout. Gradients flow; wrap in torch.no_grad() when none are needed.
        `temperature` is the token decoder's, `latent_temperature` that of the prior's
        latents within the mixture component each step draws (LatentPrior.sample); training
        (the actor's imagination) takes both at 1.
        """
        if start.h.dim() != 2:
            raise ValueError(f"imagine: start states need shape (N, deter), got h {tuple(start.h.shape)}; use state.flatten()")
        schedule = None if callable(policy_or_actions) else policy_or_actions
        if schedule is not None and (schedule.dim() < 2 or schedule.shape[0] != start.h.shape[0] or schedule.shape[1] < horizon):
            raise ValueError(f"imagine: action schedule needs shape ({start.h.shape[0]}, >={horizon}), got {tuple(schedule.shape)}")
        state = start
        hs, zs, prior_lps, action_ids, action_inputs = [start.h], [start.z], [], [], []
        for step in range(horizon):
            chosen = schedule[:, step] if schedule is not None else policy_or_actions(state.features, generator)  # type: ignore[operator]
            ids, action = self._action_input(chosen, step)
            state, prior_lp = self.rssm.imagine_step(state, action, generator, latent_temperature)
            hs.append(state.h)
            zs.append(state.z)
            prior_lps.append(prior_lp)
            action_ids.append(ids)
            action_inputs.append(action)
        h, z = torch.stack(hs, dim=1), torch.stack(zs, dim=1)
        features = torch.cat([h, z], dim=-1)
        action_rewards, cont_logit = self.predict_action_rewards_and_continue_logit(features)
        # rewards[:, j + 1] is what action j (taken in state j) earns; the start state's own
        # arrival reward is not modelled (no action of this rollout led to it): 0.
        rewards = torch.zeros(cont_logit.shape, dtype=action_rewards.dtype, device=action_rewards.device)
        if horizon > 0:
            chosen = torch.stack(action_inputs, dim=1).to(action_rewards.dtype)
            rewards[:, 1:] = (action_rewards[:, :-1] * chosen).sum(-1)
        tokens = None
        if with_tokens and horizon > 0:
            tokens = self.sample_tokens(features[:, 1:], temperature, generator)
        return ImaginedTrajectory(
            h=h,
            z=z,
            prior_log_probs=torch.stack(prior_lps, dim=1) if prior_lps else h.new_zeros(h.shape[0], 0, self.spec.stoch, self.spec.classes),
            actions=torch.stack(action_ids, dim=1) if action_ids else torch.zeros(h.shape[0], 0, dtype=torch.long, device=h.device),
            action_one_hot=torch.stack(action_inputs, dim=1) if action_inputs else h.new_zeros(h.shape[0], 0, self.spec.n_actions),
            rewards=rewards,
            action_rewards=action_rewards,
            continues=torch.sigmoid(cont_logit),
            tokens=tokens,
        )
