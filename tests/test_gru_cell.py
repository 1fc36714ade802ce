"""The RSSM's GRU cell (`dreamer.gru`): DreamerV2's LayerNorm cell by default, torch's
nn.GRUCell for runs made before the key existed, whose checkpoints must still load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiodream.config.loader import ConfigError, load_config
from audiodream.worldmodel import WorldModel, WorldModelTrainer
from audiodream.worldmodel.networks import LayerNormGRUCell
from audiodream.worldmodel.sizes import WorldModelSpec
from tests.test_worldmodel import random_batch, tiny_spec


def _retained_share(cell: nn.Module, steps: int = 5) -> float:
    """How much of a random initial state survives `steps` updates with random inputs
    (regression coefficient of h_steps on h_0, averaged over a batch)."""
    generator = torch.Generator().manual_seed(0)
    h0 = torch.randn(512, 64, generator=generator).clamp(-1, 1)
    h = h0
    with torch.no_grad():
        for _ in range(steps):
            h = cell(torch.randn(512, 32, generator=generator), h)
    return float((h * h0).sum() / (h0 * h0).sum())


def test_layernorm_cell_keeps_more_of_its_state_than_torchs_at_initialisation() -> None:
    torch.manual_seed(0)
    # update gate ~ sigmoid(-1) = 0.27: about 0.73 ** 5 = 0.2 of h0 is left after 5 steps
    assert _retained_share(LayerNormGRUCell(32, 64)) > 0.12
    assert _retained_share(nn.GRUCell(32, 64)) < 0.08  # gate ~ 0.5: 0.5 ** 5 = 0.03


def test_layernorm_cell_is_invariant_to_the_scale_of_its_gate_weights() -> None:
    torch.manual_seed(0)
    cell = LayerNormGRUCell(8, 16)
    x, h = torch.randn(4, 8), torch.randn(4, 16).tanh()
    before = cell(x, h).detach()
    with torch.no_grad():
        cell.gates.weight.mul_(10.0)
    assert torch.allclose(cell(x, h), before, atol=1e-3)  # up to LayerNorm's eps
    assert before.shape == (4, 16) and float(before.abs().max()) <= 1.0


def test_world_model_uses_the_configured_cell_and_old_checkpoints_load_as_torch_cells() -> None:
    assert isinstance(WorldModel(tiny_spec()).rssm.gru, LayerNormGRUCell)
    old = WorldModelTrainer(WorldModel(tiny_spec(gru="torch")), lr=3e-3)
    old.train_step(random_batch(2, 5))
    state = old.state_dict()
    del state["spec"]["gru"]  # a checkpoint written before the key existed
    restored = WorldModelTrainer.from_state_dict(state)
    assert restored.spec.gru == "torch" and type(restored.model.rssm.gru) is nn.GRUCell
    assert all(torch.equal(a, b) for a, b in zip(old.model.state_dict().values(), restored.model.state_dict().values()))
    assert WorldModelSpec.from_dict(tiny_spec().to_dict()).gru == "layernorm"
    with pytest.raises(ValueError, match="dreamer.gru"):
        tiny_spec(gru="lstm")


def test_config_names_an_unknown_cell_and_fingerprints_the_cell_away_from_the_old_one() -> None:
    from audiodream.dreamer.checkpoint import resume_fingerprint

    with pytest.raises(ConfigError, match="dreamer.gru"):
        load_config(["listen_synthetic"], ["dreamer.gru=lstm"])
    default = load_config(["listen_synthetic"], [])
    assert default.dreamer.gru == "layernorm"
    assert resume_fingerprint(default) != resume_fingerprint(load_config(["listen_synthetic"], ["dreamer.gru=torch"]))
