"""The codebook-tied world model: code layout by region, tied weights, checkpoints."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from audiodream.config.schema import DreamerConfig
from audiodream.dreamer.trainers import DreamerTrainers
from audiodream.worldmodel import WorldModel, WorldModelSpec, WorldModelTrainer
from audiodream.worldmodel.codebook_layout import spatial_code_positions
from audiodream.worldmodel.networks import TokenDecoder

K, A = 6, 3


def unit_codes(vocab: int, dim: int = 4, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(vocab, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def tied_spec(vocab: int, code_dim: int = 4) -> WorldModelSpec:
    return WorldModelSpec(tokens_per_step=K, vocab_size=vocab, n_actions=A, token_embed=8, embed=16, deter=16, stoch=4, classes=4, hidden=16, decoder_slot_dim=8, code_dim=code_dim)


@pytest.mark.parametrize("vocab", [1024, 1000, 37])
def test_layout_puts_every_code_in_its_own_position_and_fills_no_group_past_its_size(vocab: int) -> None:
    decoder = TokenDecoder(8, 8, 2, 4, vocab)
    positions = spatial_code_positions(unit_codes(vocab), decoder.groups, decoder.group_size)
    assert len(torch.unique(positions)) == vocab
    assert int(positions.min()) >= 0 and int(positions.max()) < decoder.groups * decoder.group_size
    assert int(torch.bincount(positions // decoder.group_size).max()) <= decoder.group_size


def test_layout_groups_are_regions_of_the_code_sphere() -> None:
    codes = unit_codes(1024)
    positions = spatial_code_positions(codes, 32, 32)
    by_group = torch.empty_like(codes)
    by_group[positions] = codes
    groups = by_group.view(32, 32, 4)
    within = torch.einsum("gic,gjc->gij", groups, groups).mean()  # mean cosine of two codes of one group
    by_id = codes.view(32, 32, 4)  # the id-order layout, for comparison
    within_by_id = torch.einsum("gic,gjc->gij", by_id, by_id).mean()
    assert within > 0.5 and abs(float(within_by_id)) < 0.1, (float(within), float(within_by_id))


@pytest.mark.parametrize("vocab", [1000, 37])
def test_tied_decoder_is_a_normalised_distribution_over_the_codes_and_the_cheap_path_agrees(vocab: int) -> None:
    torch.manual_seed(0)
    model = WorldModel(tied_spec(vocab), unit_codes(vocab))
    with torch.no_grad():  # tied weights start at zero; make them matter
        for decoder in (model.decoder, model.predictor):
            decoder.group_code_weight.normal_()
            decoder.within_code_weight.normal_()
    features = torch.randn(5, model.spec.feature_dim)
    log_probs = model.decode(features)
    assert log_probs.shape == (5, K, vocab)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(5, K), atol=1e-5)
    tokens = torch.randint(0, vocab, (5, K))
    assert torch.allclose(model.token_log_prob(features, tokens), log_probs.gather(-1, tokens[..., None])[..., 0], atol=1e-5)


def _probability_gain_near_and_far(tied: bool) -> tuple[float, float]:
    """Train a decoder on one code; how much more probable do its 16 nearest and 16 farthest codes get?"""
    torch.manual_seed(0)
    vocab = 256
    codes = unit_codes(vocab)
    decoder = TokenDecoder(8, 16, 1, 8, vocab, code_dim=4 if tied else 0)
    if tied:
        decoder.set_codebook(codes)
    features = torch.randn(32, 8)
    target = 7
    before = decoder(features).exp().mean((0, 1))
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    for _ in range(30):
        loss = -decoder.token_log_prob(features, torch.full((32, 1), target)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        gain = (decoder(features).exp().mean((0, 1)) / before).log()
    order = torch.argsort(codes @ codes[target], descending=True)[1:]  # by cosine to the target, itself left out
    return float(gain[order[:16]].mean()), float(gain[order[-16:]].mean())


def test_tied_decoder_shares_what_it_learns_about_a_code_with_its_neighbours() -> None:
    near, far = _probability_gain_near_and_far(tied=True)
    assert near > far + 0.5, (near, far)
    near_untied, far_untied = _probability_gain_near_and_far(tied=False)
    assert abs(near_untied - far_untied) < near - far, (near_untied, far_untied)


def test_tied_encoder_embeds_nearby_codes_alike_before_training() -> None:
    """A fresh model: the free part of each code's embedding starts at zero, so nothing but
    the code's vector tells codes apart (at N(0, 1) it swamped the tied part)."""
    torch.manual_seed(0)
    model = WorldModel(tied_spec(256), unit_codes(256))
    table = model.encoder.token_embedding.weight + model.encoder.code_projection(model.encoder.codebook)
    codes = model.encoder.codebook
    nearest = torch.argsort(codes @ codes[0], descending=True)
    close = F.cosine_similarity(table[0], table[nearest[1]], dim=0)
    far = F.cosine_similarity(table[0], table[nearest[-1]], dim=0)
    assert close > 0.9 and far < 0.0, (float(close), float(far))


def test_tied_model_round_trips_through_a_weights_only_checkpoint_without_the_codebook() -> None:
    trainer = WorldModelTrainer(WorldModel(tied_spec(37), unit_codes(37)))
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    restored = WorldModelTrainer.from_state_dict(torch.load(buffer, weights_only=True))
    assert restored.spec.code_dim == 4
    assert torch.equal(restored.model.decoder.code_position, trainer.model.decoder.code_position)
    assert torch.equal(restored.model.decoder.padding, trainer.model.decoder.padding)
    features = torch.randn(3, trainer.spec.feature_dim)
    assert torch.equal(restored.model.decode(features), trainer.model.decode(features))
    tokens = torch.randint(0, 37, (2, 4, K))
    assert torch.equal(restored.model.encoder(tokens), trainer.model.encoder(tokens))


def test_specs_saved_before_the_codebook_option_load_untied() -> None:
    saved = tied_spec(37).to_dict()
    del saved["code_dim"]
    assert WorldModelSpec.from_dict(saved).code_dim == 0


def test_config_switch_decides_whether_the_codebook_is_used() -> None:
    codes = unit_codes(37)
    tied = WorldModel.from_config(DreamerConfig(codebook_tied=True, deter=16, hidden=16, embed=16), K, 37, A, codes)
    assert tied.spec.code_dim == 4 and torch.equal(tied.encoder.codebook, codes)
    untied = WorldModel.from_config(DreamerConfig(codebook_tied=False, deter=16, hidden=16, embed=16), K, 37, A, codes)
    assert untied.spec.code_dim == 0 and not hasattr(untied.encoder, "codebook")
    with pytest.raises(ValueError, match="dreamer.codebook_tied"):
        DreamerTrainers(DreamerConfig(codebook_tied=True, actor_critic=False), K, 37, A, "cpu")
    with pytest.raises(ValueError, match="dreamer.codebook_tied"):  # not silently untied on the direct path either
        WorldModel.from_config(DreamerConfig(codebook_tied=True, deter=16, hidden=16, embed=16), K, 37, A)
    with pytest.raises(ValueError, match=r"codebook: expected shape \(37, 4\)"):
        WorldModel(tied_spec(37), unit_codes(36))


@pytest.mark.parametrize("tied", [False, True])
def test_decoder_draws_group_then_code_from_exactly_its_categorical(tied: bool) -> None:
    """The hierarchical draw at temperature 1 has the full table's frequencies (codes laid
    out by region or by id, 37 codes in 7 groups of 6 so some positions hold none); one seed
    gives one set of draws; other temperatures take the table (0: its argmax)."""
    torch.manual_seed(0)
    vocab, slots = 37, 2
    decoder = TokenDecoder(8, 16, slots, 4, vocab, code_dim=4 if tied else 0)
    if tied:
        decoder.set_codebook(unit_codes(vocab))
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.normal_()  # tied weights and biases start at zero: make them all matter
    features = torch.randn(2, 8)
    rows = features.repeat_interleave(20_000, 0)
    draws = decoder.sample(rows, 1.0, torch.Generator().manual_seed(1)).view(2, 20_000, slots)
    assert int(draws.min()) >= 0 and int(draws.max()) < vocab
    with torch.no_grad():
        expected = decoder(features).exp()  # (2, slots, V)
    for row in range(2):
        for slot in range(slots):
            frequencies = torch.bincount(draws[row, :, slot], minlength=vocab).float() / draws.shape[1]
            assert torch.allclose(frequencies, expected[row, slot], atol=0.012), (row, slot, (frequencies - expected[row, slot]).abs().max())
    again = decoder.sample(rows, 1.0, torch.Generator().manual_seed(1)).view(2, 20_000, slots)
    assert torch.equal(draws, again)
    assert torch.equal(decoder.sample(features, 0.0), expected.argmax(-1))
