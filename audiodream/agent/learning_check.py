"""Learning check (a script, not a test): does the actor learn, in imagination only, to
name the next syllable of the toy token source?

The world model is trained on episodes of `ToyTokenSource` collected with random
actions; the actor-critic is trained alongside it, interleaved as the learner
does, purely from imagined rollouts. Then the greedy policy acts on held-out episodes
through `AgentPolicy` (posterior updates from the real tokens, one step at a time).
The grammar repeats the syllable two steps back with probability 0.7, so the best
policy scores about 0.7+ per step and a random one 1/24.

Besides the greedy agent, a random policy and the grammar's best guess, it scores a
one-step lookahead on the world model alone (the action with the highest predicted
next reward): what the world model knows, so that a weak world model can be told
from a weak actor.

Rewards (`--reward`): `dense` (default, as Complete-v0): the action taken at step t
earns the grammar's probability of that syllable given the syllables so far;
`hit` (the toy source's own): 1 when the action names syllable t + 1, else 0.

    python -m audiodream.agent.learning_check --out /tmp/agent_check.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from audiodream.agent.actor_critic import ActorCriticTrainer
from audiodream.agent.policy import AgentPolicy
from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel.model import WorldModel
from audiodream.worldmodel.rssm import RSSMState
from audiodream.worldmodel.sizes import spec_from_config
from audiodream.worldmodel.toy_source import Episode, ToySequenceSampler, ToyTokenSource
from audiodream.worldmodel.trainer import WorldModelTrainer


def with_dense_rewards(source: ToyTokenSource, episode: Episode) -> Episode:
    """Reward with step t (for a_{t-1}) = p_grammar(a_{t-1} | syllables before t); 0 while
    the context is shorter than the grammar's two syllables."""
    syllables, actions = episode["syllables"], episode["actions"]
    rewards = np.zeros(len(syllables), dtype=np.float32)
    for t in range(2, len(syllables)):
        rewards[t] = source.next_syllable_distribution(list(syllables[:t]))[actions[t]]
    return {**episode, "rewards": rewards}


@torch.no_grad()
def model_lookahead_actions(world_model: WorldModel, state: RSSMState, generator: torch.Generator, samples: int = 8) -> np.ndarray:
    """The action whose imagined next reward is highest (averaged over prior samples):
    what the world model alone knows, to tell a weak world model from a weak actor."""
    n, n_actions = state.h.shape[0], world_model.spec.n_actions
    starts = state.repeat(n_actions * samples)  # (n * A * S): each state's copies in a row
    schedule = torch.arange(n_actions).repeat_interleave(samples).repeat(n)[:, None]
    rewards = world_model.imagine(starts, schedule, 1, generator).rewards[:, 1]
    return rewards.view(n, n_actions, samples).mean(-1).argmax(-1).numpy()


def evaluate_policy(policy: AgentPolicy, source: ToyTokenSource, episodes: list[Episode], seed: int, dense: bool) -> dict[str, float]:
    """Mean reward per scored step of the greedy agent, a random policy and the grammar's
    best guess, on the same episodes. Actions from t = 1 are scored (the grammar needs
    two syllables of context). Dense rewards are scored by their expectation."""
    length = min(len(ep["syllables"]) for ep in episodes)
    syllables = np.stack([ep["syllables"][:length] for ep in episodes])  # (N, L)
    tokens = np.stack([ep["tokens"][:length] for ep in episodes])  # (N, L, K)
    n = len(episodes)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    state = policy.initial_state(n)
    prev = np.zeros(n, dtype=np.int64)
    agent_hits, random_hits, oracle_hits, lookahead_hits = [], [], [], []
    for t in range(length - 1):
        actions, state = policy.act(tokens[:, t], prev, np.full(n, t == 0), state, greedy=True, generator=gen)
        prev = actions
        if t < 1:
            continue
        lookahead = model_lookahead_actions(policy.world_model, state, gen)
        probs = np.stack([source.next_syllable_distribution(list(syllables[i, : t + 1])) for i in range(n)])
        oracle = probs.argmax(-1)
        guesses = rng.integers(0, source.n_actions, size=n)
        if dense:
            rows = np.arange(n)
            agent_hits.append(probs[rows, actions])
            random_hits.append(probs.mean(-1))
            oracle_hits.append(probs[rows, oracle])
            lookahead_hits.append(probs[rows, lookahead])
        else:
            target = syllables[:, t + 1]
            agent_hits.append(actions == target)
            random_hits.append(guesses == target)
            oracle_hits.append(oracle == target)
            lookahead_hits.append(lookahead == target)
    agent, random, oracle, lookahead = (float(np.mean(h)) for h in (agent_hits, random_hits, oracle_hits, lookahead_hits))
    return {
        "greedy_reward_per_step": agent,
        "random_reward_per_step": random,
        "oracle_reward_per_step": oracle,
        "model_lookahead_reward_per_step": lookahead,
        "gap_closed": (agent - random) / max(oracle - random, 1e-9),
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = DreamerConfig(
        deter=args.deter, stoch=args.stoch, classes=args.classes, hidden=args.hidden, embed=args.hidden, decoder_slot_dim=16,
        imag_horizon=args.horizon, entropy_coef=args.entropy_coef, lr_actor=args.lr_actor, lr_critic=args.lr_critic,
    )
    source = ToyTokenSource(n_syllables=24, tokens_per_step=args.tokens, vocab_size=args.vocab, n_actions=24, n_speakers=8, seed=args.seed)
    episodes = source.episodes(args.episodes, 10, 20, seed=args.seed + 1)
    if args.reward == "dense":
        episodes = [with_dense_rewards(source, ep) for ep in episodes]
    sampler = ToySequenceSampler(episodes, seed=args.seed + 2)
    world = WorldModelTrainer(WorldModel(spec_from_config(cfg, args.tokens, args.vocab, 24)), lr=cfg.lr_model, grad_clip=cfg.grad_clip)
    agent = ActorCriticTrainer(cfg, world.spec.feature_dim, 24, max_starts=args.max_starts)
    history: list[dict[str, float]] = []
    start = time.time()
    for update in range(1, args.updates + 1):
        batch = sampler.sample(args.batch, args.seq_len)
        result = world.update(batch)
        row = {"update": update, **{k: result.metrics[k] for k in ("loss_model", "loss_reward", "ce_tokens")}}
        if update > args.ac_start:
            start_continues = torch.from_numpy(~batch["terminals"]).float()
            row.update(agent.train_step(world.model, result.posterior.states, start_continues=start_continues))
        history.append(row)
        if update % args.log_every == 0:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), f"{time.time() - start:.0f}s", flush=True)
    seconds = time.time() - start
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"world_model": world.state_dict(), "actor_critic": agent.state_dict()}, args.save)
    policy = AgentPolicy.from_weights(world.spec.to_dict(), agent.policy_weights(world.model))
    held_out = source.episodes(args.eval_episodes, 20, 20, seed=args.seed + 99)
    tail = [row for row in history[-100:] if "imagined_return" in row]
    return {
        "updates": args.updates,
        "seconds": seconds,
        "imagined_return_last100": float(np.mean([r["imagined_return"] for r in tail])),
        "imagined_reward_last100": float(np.mean([r["imagined_reward"] for r in tail])),
        "imagined_return_first": history[args.ac_start]["imagined_return"],
        "policy_entropy_last100": float(np.mean([r["policy_entropy"] for r in tail])),
        **evaluate_policy(policy, source, held_out, seed=args.seed, dense=args.reward == "dense"),
        "args": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--save", type=Path, default=None, help="save the trained world model and actor-critic here")
    parser.add_argument("--reward", choices=("dense", "hit"), default="dense")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--ac-start", type=int, default=300, help="world-model-only updates before the actor-critic starts")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--max-starts", type=int, default=None, help="imagine from a random subset of this many of the B x T starts")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--deter", type=int, default=128)
    parser.add_argument("--stoch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--entropy-coef", type=float, default=1e-2)
    parser.add_argument("--lr-actor", type=float, default=3e-4)
    parser.add_argument("--lr-critic", type=float, default=3e-4)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k != "args"}, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
