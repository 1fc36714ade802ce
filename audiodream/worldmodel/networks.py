"""Token encoder, token decoder and the small MLP heads of the world model."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from audiodream.worldmodel.codebook_layout import id_order_positions, spatial_code_positions
from audiodream.worldmodel.distributions import gumbel_noise


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 1) -> nn.Sequential:
    """`layers` hidden Linear-LayerNorm-ELU blocks, then a linear output."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ELU()]
        width = hidden
    blocks.append(nn.Linear(width, out_dim))
    return nn.Sequential(*blocks)


class LayerNormGRUCell(nn.Module):
    """DreamerV2's GRU cell: one linear map of [x, h] to the three gates, LayerNorm over them,
    and an update gate biased to -1.

    Why not `nn.GRUCell`: the norm keeps the gate pre-activations on one scale at the high
    learning rate CPU training uses, and the -1 bias starts the cell keeping about three
    quarters of its state each step, so what the prior needs from further back (the voice,
    the syllable two steps ago) survives from the first updates on. On listen_synthetic's
    stored replay it learnt faster at the same cost per update (README "World model").
    Same signature as `nn.GRUCell`: (x (N, input), h (N, hidden)) -> h' (N, hidden).
    """

    UPDATE_BIAS = -1.0

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.gates = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, candidate, update = self.norm(self.gates(torch.cat([x, h], dim=-1))).chunk(3, dim=-1)
        candidate = torch.tanh(torch.sigmoid(reset) * candidate)
        update = torch.sigmoid(update + self.UPDATE_BIAS)
        return update * candidate + (1.0 - update) * h


GRU_CELLS = {"layernorm": LayerNormGRUCell, "torch": nn.GRUCell}


def check_codebook(codebook: torch.Tensor, vocab_size: int, code_dim: int) -> torch.Tensor:
    if tuple(codebook.shape) != (vocab_size, code_dim):
        raise ValueError(f"codebook: expected shape ({vocab_size}, {code_dim}) (the tokenizer's codes), got {tuple(codebook.shape)}")
    return codebook.detach().float()


class TokenEncoder(nn.Module):
    """Embeds the K tokens of one env step into one step embedding.

    Each slot has a learned position embedding, so the same code means different
    things in different (latent frame, group) slots, as it does in the VQ-VAE.
    With `code_dim` > 0 (codebook-tied) a code's embedding is a free vector plus a
    linear map of its VQ code vector: codes the tokenizer puts close together start
    out meaning nearly the same, instead of 1024 unrelated vectors learnt one by one.
    """

    def __init__(self, tokens_per_step: int, vocab_size: int, token_embed: int, hidden: int, embed: int, code_dim: int = 0) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.code_dim = code_dim
        self.token_embedding = nn.Embedding(vocab_size, token_embed)
        self.slot_embedding = nn.Parameter(torch.randn(tokens_per_step, token_embed) * 0.02)
        if code_dim:
            self.register_buffer("codebook", torch.zeros(vocab_size, code_dim))
            self.code_projection = nn.Linear(code_dim, token_embed, bias=False)
            # The free part starts at zero: at nn.Embedding's N(0, 1) it was ~5x the code
            # part, so neighbouring codes started out as unrelated random vectors after all.
            nn.init.zeros_(self.token_embedding.weight)
        self.net = nn.Sequential(
            nn.Linear(tokens_per_step * token_embed, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, embed), nn.LayerNorm(embed), nn.ELU(),
        )

    def set_codebook(self, codebook: torch.Tensor) -> None:
        if not self.code_dim:
            raise ValueError("TokenEncoder.set_codebook: this encoder was built without code_dim (not codebook-tied)")
        self.codebook.copy_(check_codebook(codebook, self.vocab_size, self.code_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., K) token ids -> (..., embed)."""
        table = self.token_embedding.weight
        if self.code_dim:
            table = table + self.code_projection(self.codebook)
        vectors = F.embedding(tokens, table) + self.slot_embedding
        return self.net(vectors.flatten(-2))


class TokenDecoder(nn.Module):
    """Features -> a categorical over the codebook for each of the K token slots.

    Features are mapped to K per-slot vectors of width d (shared trunk, per-slot
    position embedding). The codebook distribution is factorised in two levels,
    p(v) = p(group(v)) * p(v | group(v)), with ~sqrt(V) groups of ~sqrt(V) codes.
    This is an exact, normalised distribution over all V codes, but the training loss
    only needs the true code's group, so it costs O(sqrt(V)) per token instead of
    O(V): on a CPU the flat (d x V) softmax over B*T*K tokens dominated the update
    time. Output weights are shared by all slots; each slot has its own bias (its
    token frequencies), looked up only where needed.

    Codebook-tied (`code_dim` > 0, `set_codebook`): groups are compact regions of the
    tokenizer's code sphere (codebook_layout.py) instead of id ranges, and each output
    weight is a free part plus a linear map of the code's vector (the group's mean
    direction for p(group)), so the slot vector points at a region of code space and
    neighbouring codes share what is learnt about them. That is a reparametrisation of
    the same weights: the effective weights are formed once per call, so the cost per
    token is unchanged. Without it, code v sits at position v (group v // group_size).
    """

    def __init__(self, feature_dim: int, hidden: int, tokens_per_step: int, slot_dim: int, vocab_size: int, code_dim: int = 0) -> None:
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.slot_dim = slot_dim
        self.vocab_size = vocab_size
        self.code_dim = code_dim
        self.groups = math.ceil(math.sqrt(vocab_size))
        self.group_size = math.ceil(vocab_size / self.groups)
        self.trunk = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, tokens_per_step * slot_dim),
        )
        self.slot_embedding = nn.Parameter(torch.randn(tokens_per_step, slot_dim) * 0.02)
        self.slot_norm = nn.LayerNorm(slot_dim)
        self.group_out = nn.Linear(slot_dim, self.groups)
        self.slot_group_bias = nn.Parameter(torch.zeros(tokens_per_step, self.groups))
        self.within_weight = nn.Parameter(torch.randn(self.groups, slot_dim, self.group_size) / math.sqrt(slot_dim))
        # Bias of the code at (group g, index i) in slot k, stored at row k * groups + g.
        self.within_bias = nn.Embedding(tokens_per_step * self.groups, self.group_size)
        nn.init.zeros_(self.within_bias.weight)
        if code_dim:
            # Code vectors laid out by position (zeros where no code sits) and where each code sits.
            self.register_buffer("layout_codes", torch.zeros(self.groups, self.group_size, code_dim))
            self.register_buffer("code_position", id_order_positions(vocab_size))
            self.group_code_weight = nn.Parameter(torch.zeros(code_dim, slot_dim))
            self.within_code_weight = nn.Parameter(torch.zeros(code_dim, slot_dim))
            self.register_load_state_dict_post_hook(lambda module, keys: module._refresh_padding())
        else:
            self.register_buffer("code_position", id_order_positions(vocab_size), persistent=False)
        self.register_buffer("padding", torch.zeros(self.groups, self.group_size), persistent=False)
        self._refresh_padding()

    def set_codebook(self, codebook: torch.Tensor) -> None:
        """Lay the codes out by region and tie the output weights to their vectors (fresh models only)."""
        if not self.code_dim:
            raise ValueError("TokenDecoder.set_codebook: this decoder was built without code_dim (not codebook-tied)")
        codebook = check_codebook(codebook, self.vocab_size, self.code_dim).to(self.layout_codes.device)
        positions = spatial_code_positions(codebook, self.groups, self.group_size).to(self.code_position.device)
        self.code_position.copy_(positions)
        self.layout_codes.zero_()
        self.layout_codes.view(-1, self.code_dim)[positions] = codebook
        self._refresh_padding()

    def _refresh_padding(self) -> None:
        """-inf at layout positions that hold no code, so they get no probability."""
        padding = torch.full((self.groups * self.group_size,), float("-inf"), device=self.padding.device)
        padding[self.code_position] = 0.0
        self.padding.copy_(padding.view(self.groups, self.group_size))

    def slot_vectors(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) -> (..., K, d)."""
        slots = self.trunk(features).unflatten(-1, (self.tokens_per_step, self.slot_dim))
        return F.elu(self.slot_norm(slots + self.slot_embedding))

    def _group_log_probs(self, slots: torch.Tensor) -> torch.Tensor:
        weight = self.group_out.weight
        if self.code_dim:
            centroids = F.normalize(self.layout_codes.sum(1), dim=-1)  # (G, code_dim): each region's direction
            weight = weight + centroids @ self.group_code_weight
        return F.log_softmax((F.linear(slots, weight.to(slots.dtype), self.group_out.bias.to(slots.dtype)) + self.slot_group_bias).float(), dim=-1)

    def _within_weight(self) -> torch.Tensor:
        """(G, d, M) weights of the within-group logits."""
        if not self.code_dim:
            return self.within_weight
        return self.within_weight + torch.einsum("gmc,cd->gdm", self.layout_codes, self.within_code_weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) features -> (..., K, V) normalised log-probabilities (usable as logits).

        Computes every code's probability, O(V) per token: for sampling and inspection.
        """
        slots = self.slot_vectors(features)
        group_lp = self._group_log_probs(slots)  # (..., K, G)
        within = torch.einsum("...kd,gdm->...kgm", slots, self._within_weight().to(slots.dtype)).float()
        bias = self.within_bias.weight.view(self.tokens_per_step, self.groups, self.group_size)
        within_lp = F.log_softmax(within + bias + self.padding, dim=-1)
        log_probs = (group_lp.unsqueeze(-1) + within_lp).flatten(-2)
        return log_probs[..., self.code_position]

    def token_log_prob(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens) for features (..., F) and tokens (..., K): shape (..., K), O(sqrt(V)) per token."""
        slots = self.slot_vectors(features)
        group_lp = self._group_log_probs(slots)
        position = self.code_position[tokens]
        group = position // self.group_size
        index = position % self.group_size
        within_lp = F.log_softmax(self._within_logits(slots, group), dim=-1).gather(-1, index.reshape(-1, 1)).squeeze(-1)
        return group_lp.gather(-1, group.unsqueeze(-1)).squeeze(-1) + within_lp.view(tokens.shape)

    def sample(self, features: torch.Tensor, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Token ids (..., K) drawn from the categorical at features (..., F); temperature 0: most likely.

        At temperature 1 the draw is exact and hierarchical, as the categorical is built:
        the group from p(group), then the code from p(code | group), O(sqrt(V)) per token
        like `token_log_prob`. The full (..., K, V) table `sample_tokens` draws from costs
        V Gumbel draws and V logits per token: on the eval's completion test (8192 imagined
        steps of 48 tokens over 1024 codes) that was ~18 s of a ~70 s eval stage. Any other
        temperature reweights the groups by a sum over all their codes, so it takes the table,
        built one step (dim -2 of 3-D features) at a time to bound its memory.
        """
        if temperature != 1.0:
            if features.dim() == 3:
                return torch.stack([self.sample(features[:, j], temperature, generator) for j in range(features.shape[1])], dim=1)
            return sample_tokens(self(features), temperature, generator)
        slots = self.slot_vectors(features)
        group_lp = self._group_log_probs(slots)  # (..., K, G)
        group = (group_lp + gumbel_noise(group_lp.shape, group_lp.device, generator)).argmax(-1)  # (..., K)
        within = self._within_logits(slots, group)  # (R, M)
        index = (within + gumbel_noise(within.shape, within.device, generator)).argmax(-1)
        return self.code_at_position()[group.reshape(-1) * self.group_size + index].view(group.shape)

    def code_at_position(self) -> torch.Tensor:
        """(G * M,) the code id at each layout position (-1 where none sits): code_position's inverse."""
        codes = torch.full((self.groups * self.group_size,), -1, dtype=torch.long, device=self.code_position.device)
        codes[self.code_position] = torch.arange(self.vocab_size, device=self.code_position.device)
        return codes

    def _within_logits(self, slots: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Float logits (R, M) over the codes of one group per token: slots (..., K, d) and the
        group (..., K) of each token, flattened to R rows; padding positions are -inf."""
        flat_group = group.reshape(-1)
        within = self._true_group_logits(slots.reshape(-1, self.slot_dim), flat_group)
        slot_ids = torch.arange(self.tokens_per_step, device=group.device).expand_as(group).reshape(-1)
        return (within + self.within_bias(slot_ids * self.groups + flat_group) + self.padding[flat_group]).float()

    def _true_group_logits(self, slots: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """slots (R, d) @ within weight[group] (d, M), as one small matmul per group present."""
        weight = self._within_weight()
        order = torch.argsort(group)
        counts = torch.bincount(group, minlength=self.groups).tolist()
        sorted_slots = slots[order]
        pieces = [
            chunk @ weight[g].to(chunk.dtype)
            for g, chunk in enumerate(torch.split(sorted_slots, counts))
            if counts[g]
        ]
        result = torch.empty(slots.shape[0], self.group_size, dtype=pieces[0].dtype if pieces else slots.dtype, device=slots.device)
        if pieces:
            result[order] = torch.cat(pieces)
        return result


def sample_tokens(logits: torch.Tensor, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample token ids from (..., V) logits; temperature 0 takes the most likely token.

    By the Gumbel-max trick, argmax(logits / T + Gumbel noise) is an exact draw from
    softmax(logits / T), in one vectorised pass: torch.multinomial took 53 ms a call on one
    CPU for the 64 x 48 rows of 1024 codes of one completion prompt, a fifth of the eval stage.
    """
    if temperature < 0.0:
        raise ValueError(f"temperature: must be >= 0, got {temperature}")
    if temperature == 0.0:
        return logits.argmax(-1)
    return (logits.float() / temperature + gumbel_noise(logits.shape, logits.device, generator)).argmax(-1)


def token_log_likelihood(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens) under (..., V) logits (or log-probs), elementwise: shape of `tokens`."""
    logits = logits.float()
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
