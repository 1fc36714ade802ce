"""λ-returns and loss weights of an imagined trajectory.

Index alignment (that of `ImaginedTrajectory`, batch-first, time on dim 1):

    state      s_0   s_1   ...   s_H          s_0 is the start (a posterior state)
    action     a_0   a_1   ...   a_{H-1}      a_t is taken in s_t and leads to s_{t+1}
    reward     r_0   r_1   ...   r_H          r_t is the reward that arrives *with* s_t,
                                              i.e. for a_{t-1} (the world model predicts it
                                              from s_{t-1} and a_{t-1}; r_0 is unused)
    continue   c_0   c_1   ...   c_H          c_t = P(the episode goes on after s_t)
    value      v_0   v_1   ...   v_H          v_t = expected discounted sum of r_{t+1}, ...

So the reward of acting in s_t is r_{t+1}, and a value never counts the reward of its
own state (which is already decided when the agent gets to act there). The recursion
(DreamerV2 eq. 4, with the reward and the continuation read one step later, as in
DreamerV3, so that the reward of a_t is credited to a_t):

    G_t = r_{t+1} + γ c_{t+1} ((1 - λ) v_{t+1} + λ G_{t+1}),   t = 0 .. H-1
    G_H = v_H                                                  (bootstrap)

c_{t+1} = 0 (s_{t+1} is terminal) still pays r_{t+1} (the reward of the last action)
and cuts everything after it.
"""

from __future__ import annotations

import torch


def _check_trajectory(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor) -> None:
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"lambda_returns: rewards need shape (N, H+1) with H >= 1, got {tuple(rewards.shape)}")
    for name, tensor in (("values", values), ("continues", continues)):
        if tensor.shape != rewards.shape:
            raise ValueError(f"lambda_returns: {name} need the shape of rewards {tuple(rewards.shape)}, got {tuple(tensor.shape)}")


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor, gamma: float, lambda_: float) -> torch.Tensor:
    """λ-returns G_0 .. G_{H-1}, shape (N, H), from (N, H+1) rewards, values, continues.

    See the module docstring for which index means what. λ = 0 gives one-step TD
    targets r_{t+1} + γ c_{t+1} v_{t+1}; λ = 1 the discounted reward sum bootstrapped
    from v_H.
    """
    _check_trajectory(rewards, values, continues)
    next_rewards, next_values, next_discounts = rewards[:, 1:], values[:, 1:], gamma * continues[:, 1:]
    # The part of each step that does not depend on the later returns.
    immediate = next_rewards + next_discounts * (1.0 - lambda_) * next_values
    returns = []
    following = values[:, -1]
    for t in reversed(range(immediate.shape[1])):
        following = immediate[:, t] + next_discounts[:, t] * lambda_ * following
        returns.append(following)
    return torch.stack(returns[::-1], dim=1)


def discount_weights(continues: torch.Tensor, gamma: float) -> torch.Tensor:
    """Loss weights (N, H) of states s_0 .. s_{H-1}: w_t = γ^t · c_0 · c_1 ⋯ c_t.

    The probability that the episode is still running when the agent acts in s_t,
    times the discount at which that step counts. Acting in a terminal state (or after
    one) changes nothing, so those steps get no weight; c_0 is the start state's own
    continuation (1 - its real terminal flag when the caller knows it). Returned
    detached: the weights scale the losses, they are not trained.
    """
    if continues.dim() != 2 or continues.shape[1] < 2:
        raise ValueError(f"discount_weights: continues need shape (N, H+1) with H >= 1, got {tuple(continues.shape)}")
    alive = torch.cumprod(continues[:, :-1].detach(), dim=1)
    steps = torch.arange(alive.shape[1], device=alive.device, dtype=alive.dtype)
    return alive * gamma**steps
