"""Where each VQ code sits in the token decoder's two-level (group, index) layout.

The token decoder factorises p(code) = p(group) * p(code | group) to keep its cost
O(sqrt(V)) per token (networks.TokenDecoder). Which codes share a group is free to
choose. Grouping by code id (v // group_size) makes the groups arbitrary sets of
directions on the tokenizer's code sphere, so p(group) says nothing and every code's
probability is learnt on its own. Grouping codes that lie close together makes
p(group) "which region of the sphere", a coarse prediction that is learnt early and
shared by neighbouring codes; with codebook-tied weights (TokenDecoder) the within-
group logits also start from the code vectors themselves.
"""

from __future__ import annotations

import math

import torch


def spatial_code_positions(codebook: torch.Tensor, groups: int, group_size: int) -> torch.Tensor:
    """(V,) position of each code in a (groups x group_size) layout; position // group_size is its group.

    Balanced principal-axis tree: the codes are split at the quantile of their first
    principal direction that matches the share of groups on each side, recursively, so
    every group is a compact cell of the codebook and holds at most `group_size` codes.
    Deterministic (no random init, unlike k-means); padding sits at the end of a group.
    """
    vocab = codebook.shape[0]
    if codebook.dim() != 2 or vocab < 1:
        raise ValueError(f"codebook must have shape (V >= 1, code_dim), got {tuple(codebook.shape)}")
    if vocab > groups * group_size:
        raise ValueError(f"{vocab} codes do not fit in {groups} groups of {group_size}")
    vectors = codebook.detach().double().cpu()
    positions = torch.empty(vocab, dtype=torch.long)

    def place(ids: torch.Tensor, first_group: int, n_groups: int) -> None:
        if n_groups == 1:
            positions[ids] = first_group * group_size + torch.arange(len(ids))
            return
        left_groups = n_groups // 2
        n_left = math.ceil(len(ids) * left_groups / n_groups)
        centred = vectors[ids] - vectors[ids].mean(0)
        axis = torch.linalg.svd(centred, full_matrices=False).Vh[0] if len(ids) > 1 else torch.zeros(vectors.shape[1], dtype=vectors.dtype)
        ordered = ids[torch.argsort(centred @ axis, stable=True)]
        place(ordered[:n_left], first_group, left_groups)
        place(ordered[n_left:], first_group + left_groups, n_groups - left_groups)

    place(torch.arange(vocab), 0, groups)
    return positions


def id_order_positions(vocab: int) -> torch.Tensor:
    """(V,) the layout without a codebook: code v at position v (group v // group_size)."""
    return torch.arange(vocab)
