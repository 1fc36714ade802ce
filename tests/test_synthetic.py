"""The built-in synthetic corpus: grammar, synthesizer, corpus writer, syllable classifier."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import stats

from audiodream.config.schema import SyntheticCorpusConfig
from audiodream.data.synthetic import (
    CONSONANTS,
    SYLLABLES,
    VOWELS,
    FormantSynth,
    NeuralSyllableClassifier,
    SyllableClassifier,
    SyllableGrammar,
    Voice,
    build_synthetic_corpus,
    load_labels,
    sample_voice,
)
from audiodream.data.synthetic.neural_classifier import shift_chunks

SAMPLE_RATE = 16000
SAMPLES_PER_SYLLABLE = 2560
CHUNK_FRAMES = 16


def log_mel_chunks(audio: np.ndarray, n_syllables: int) -> np.ndarray:
    """The project's framing: z-scored log-mel, frames [16 i, 16 (i+1)) are syllable i."""
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=1024, hop_length=160, n_mels=80, fmax=8000)
    log_mel = np.log(mel + 1e-5)
    log_mel = (log_mel - log_mel.mean()) / log_mel.std()
    frames = log_mel[:, : n_syllables * CHUNK_FRAMES]
    return frames.reshape(80, n_syllables, CHUNK_FRAMES).transpose(1, 0, 2)


def autocorrelation_pitch(segment: np.ndarray, low_hz: float = 60.0, high_hz: float = 400.0) -> float:
    segment = segment.astype(np.float64) - segment.mean()
    correlation = np.correlate(segment, segment, mode="full")[len(segment) - 1:]
    lags = np.arange(int(SAMPLE_RATE / high_hz), int(SAMPLE_RATE / low_hz))
    return SAMPLE_RATE / lags[np.argmax(correlation[lags])]


def calm_voice(rng: np.random.Generator, **changes: float) -> Voice:
    """A sampled voice with little intonation and noise, so one property can be measured."""
    base = dataclasses.replace(sample_voice(rng), pitch_range_st=1.0, noise_level=0.002, jitter=0.003)
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------- grammar
def test_syllable_inventory_is_consonant_major() -> None:
    assert len(SYLLABLES) == len(set(SYLLABLES)) == len(CONSONANTS) * len(VOWELS) == 24
    assert SYLLABLES[:4] == ("ba", "bi", "bu", "da")
    assert all(SYLLABLES[i] == CONSONANTS[i // 3] + VOWELS[i % 3] for i in range(24))


def test_next_distribution_is_a_probability_vector_for_any_context() -> None:
    grammar = SyllableGrammar()
    rng = np.random.default_rng(0)
    for length in (0, 1, 2, 3, 7):
        for _ in range(20):
            probs = grammar.next_distribution(rng.integers(0, 24, length).tolist())
            assert probs.shape == (24,) and probs.dtype == np.float64
            assert np.all(probs >= 0) and probs.sum() == pytest.approx(1.0, abs=1e-12)


def test_context_before_the_last_syllable_changes_the_prediction() -> None:
    grammar = SyllableGrammar(repeat_prob=0.7)
    ba, ta, ki = SYLLABLES.index("ba"), SYLLABLES.index("ta"), SYLLABLES.index("ki")
    after_ba_ta = grammar.next_distribution([ba, ta])
    after_ki_ta = grammar.next_distribution([ki, ta])
    assert not np.allclose(after_ba_ta, after_ki_ta)
    assert after_ba_ta[ba] >= 0.7 and after_ki_ta[ki] >= 0.7  # "ba-ta" -> "ba": the pattern continues
    # Only the last two syllables matter, and pair_transition holds exactly those distributions.
    assert np.array_equal(grammar.next_distribution([ki, ki, ba, ta]), after_ba_ta)
    table = grammar.pair_transition()
    assert np.array_equal(table[ba, ta], after_ba_ta) and np.allclose(table.sum(axis=2), 1.0)


def test_bigram_table_is_sparse_and_set_by_the_seed() -> None:
    grammar = SyllableGrammar(seed=0)
    assert np.all((grammar.bigram > 0).sum(axis=1) == 3) and np.all(np.diag(grammar.bigram) == 0)
    assert np.array_equal(grammar.bigram, SyllableGrammar(seed=0).bigram)
    assert not np.array_equal(grammar.bigram, SyllableGrammar(seed=1).bigram)


def test_sampled_utterances_follow_the_exact_distributions() -> None:
    """Pearson chi-square of observed counts against the sums of the exact conditionals."""
    grammar = SyllableGrammar()
    rng = np.random.default_rng(7)
    first = np.zeros(24)
    observed = np.zeros((24, 24))  # (last syllable, next syllable)
    expected = np.zeros((24, 24))
    for _ in range(2500):
        utterance = grammar.sample_utterance(rng, 6)
        first[utterance[0]] += 1
        for t in range(1, len(utterance)):
            observed[utterance[t - 1], utterance[t]] += 1
            expected[utterance[t - 1]] += grammar.next_distribution(utterance[:t])
    assert stats.chisquare(first, np.full(24, first.sum() / 24)).pvalue > 1e-3
    cells = expected > 5
    assert observed[expected == 0].sum() == 0
    statistic = ((observed[cells] - expected[cells]) ** 2 / expected[cells]).sum()
    assert stats.chi2.sf(statistic, cells.sum() - 24) > 1e-3
    # The grammar really repeats patterns: next == ctx[-2] far more often than a bigram allows.
    long = [grammar.sample_utterance(rng, 12) for _ in range(200)]
    repeats = np.mean([u[t] == u[t - 2] for u in long for t in range(2, 12)])
    assert repeats > 0.6


def test_grammar_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeat_prob"):
        SyllableGrammar(repeat_prob=1.5)
    with pytest.raises(ValueError, match=r"context\[1\] = 24"):
        SyllableGrammar().next_distribution([0, 24])


# ---------------------------------------------------------------- synthesizer
def test_audio_has_exact_length_and_is_finite_loud_and_unclipped() -> None:
    synth = FormantSynth(SAMPLE_RATE, SAMPLES_PER_SYLLABLE)
    rng = np.random.default_rng(3)
    syllables = list(range(24))  # every consonant and vowel
    audio = synth.utterance(syllables, sample_voice(rng), rng)
    assert audio.dtype == np.float32 and audio.shape == (24 * SAMPLES_PER_SYLLABLE,)
    assert np.all(np.isfinite(audio)) and 0.5 <= np.abs(audio).max() <= 0.9
    chunk_rms = np.sqrt((audio.reshape(24, -1).astype(np.float64) ** 2).mean(axis=1))
    assert chunk_rms.min() > 0.01  # no syllable is silent
    single = synth.syllable(SYLLABLES.index("sa"), sample_voice(rng), rng)
    assert single.shape == (SAMPLES_PER_SYLLABLE,) and np.abs(single).max() >= 0.5


def test_synthesis_is_deterministic_for_a_seed() -> None:
    synth = FormantSynth()

    def render(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return synth.utterance([0, 5, 10, 15, 20], sample_voice(rng), rng)

    assert np.array_equal(render(11), render(11))
    assert not np.allclose(render(11), render(12))


def test_public_sosfilt_fallback_gives_the_same_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cascade uses scipy's compiled sosfilt kernel when present; the public function is
    the fallback on other scipy builds and must not change the corpus."""
    import audiodream.data.synthetic.synth as synth_module

    def render() -> np.ndarray:
        rng = np.random.default_rng(4)
        return FormantSynth().utterance([3, 9, 14, 22], sample_voice(rng), rng)

    fast = render()
    monkeypatch.setattr(synth_module, "_SOSFILT_KERNEL", None)
    assert np.allclose(render(), fast, atol=1e-6)


def test_voice_parameters_set_pitch_and_formants() -> None:
    synth = FormantSynth()
    rng = np.random.default_rng(5)
    voice = calm_voice(rng)
    a = SYLLABLES.index("ma")
    for f0 in (100.0, 220.0):
        audio = synth.syllable(a, dataclasses.replace(voice, f0_hz=f0), np.random.default_rng(1))
        assert autocorrelation_pitch(audio[1200:2400]) == pytest.approx(f0, rel=0.2)

    def spectral_centroid(scale: float) -> float:
        audio = synth.utterance([SYLLABLES.index("mi")] * 4, dataclasses.replace(voice, vocal_tract_scale=scale),
                                np.random.default_rng(2))
        return float(librosa.feature.spectral_centroid(y=audio, sr=SAMPLE_RATE).mean())

    assert spectral_centroid(1.22) > 1.1 * spectral_centroid(0.85)


def test_speaking_rate_moves_voice_onset_inside_the_syllable() -> None:
    """Fast speakers release voicing earlier after /p/; the syllable length stays fixed."""
    synth = FormantSynth()
    voice = calm_voice(np.random.default_rng(9), breathiness=0.0)
    pa = SYLLABLES.index("pa")

    def voice_onset_s(rate: float, seed: int) -> float:
        audio = synth.syllable(pa, dataclasses.replace(voice, rate=rate), np.random.default_rng(seed))
        assert audio.shape == (SAMPLES_PER_SYLLABLE,)
        mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=256, hop_length=32, n_mels=40, fmax=8000)
        low = mel[:6]
        loud = low.sum(axis=0) > 0.3 * low.sum(axis=0).max()
        sustained = [loud[i: i + 10].all() for i in range(len(loud))]  # 20 ms of voicing, not the burst
        return float(np.argmax(sustained) * 32 / SAMPLE_RATE)

    slow = np.mean([voice_onset_s(0.8, seed) for seed in range(6)])
    fast = np.mean([voice_onset_s(1.25, seed) for seed in range(6)])
    assert slow > fast + 0.015  # planned: about 88 ms vs 57 ms


def test_sampled_voices_cover_male_female_and_child_ranges() -> None:
    rng = np.random.default_rng(0)
    voices = [sample_voice(rng) for _ in range(300)]
    f0 = np.array([v.f0_hz for v in voices])
    scale = np.array([v.vocal_tract_scale for v in voices])
    assert f0.min() >= 80 and f0.max() <= 270 and (f0 < 120).any() and (f0 > 220).any()
    assert scale.min() >= 0.8 and scale.max() <= 1.25 and np.corrcoef(f0, scale)[0, 1] > 0.5
    rates = np.array([v.rate for v in voices])
    assert rates.min() >= 0.8 and rates.max() <= 1.25 and rates.std() > 0.1


def test_synth_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="outside"):
        FormantSynth().utterance([0, 24], sample_voice(np.random.default_rng(0)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least one syllable"):
        FormantSynth().utterance([], sample_voice(np.random.default_rng(0)), np.random.default_rng(0))


# ---------------------------------------------------------------- corpus
SMALL = SyntheticCorpusConfig(n_speakers=3, utterances_per_speaker=2, min_syllables=3, max_syllables=5, seed=42)


def corpus_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_files_labels_and_timings(tmp_path: Path) -> None:
    utterances = build_synthetic_corpus(tmp_path, SMALL, SAMPLE_RATE, SAMPLES_PER_SYLLABLE,
                                        progress=False, num_workers=1)
    assert len(utterances) == 6 and {u.speaker for u in utterances} == {"spk000", "spk001", "spk002"}
    records = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    labels = load_labels(tmp_path)
    assert len(records) == len(labels) == 6
    for utterance, record in zip(utterances, records):
        assert utterance.path == tmp_path / record["path"] and utterance.path.parent.name == utterance.speaker
        info = sf.info(utterance.path)
        assert (info.samplerate, info.subtype) == (SAMPLE_RATE, "PCM_16")
        assert info.frames == len(utterance.syllables) * SAMPLES_PER_SYLLABLE
        assert 3 <= len(utterance.syllables) <= 5 and labels[record["path"]] == utterance.syllables
        assert record["syllables"] == [SYLLABLES[s] for s in utterance.syllables]
        assert record["end_s"][-1] == pytest.approx(utterance.duration_s) == pytest.approx(info.frames / SAMPLE_RATE)
        assert np.allclose(np.diff(record["start_s"]), 0.16)
        assert np.allclose(record["start_s"][1:], record["end_s"][:-1])
    assert json.loads((tmp_path / "grammar.json").read_text())["repeat_prob"] == 0.7


def test_corpus_is_bit_identical_for_a_seed_whatever_the_workers(tmp_path: Path) -> None:
    build_synthetic_corpus(tmp_path / "a", SMALL, SAMPLE_RATE, SAMPLES_PER_SYLLABLE, progress=False, num_workers=1)
    build_synthetic_corpus(tmp_path / "b", SMALL, SAMPLE_RATE, SAMPLES_PER_SYLLABLE, progress=False, num_workers=2)
    other = dataclasses.replace(SMALL, seed=43)
    build_synthetic_corpus(tmp_path / "c", other, SAMPLE_RATE, SAMPLES_PER_SYLLABLE, progress=False, num_workers=1)
    a, b, c = (corpus_bytes(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys() and a["spk000/spk000_000.wav"] != c["spk000/spk000_000.wav"]


def test_corpus_config_and_labels_errors_name_the_problem(tmp_path: Path) -> None:
    bad = dataclasses.replace(SMALL, min_syllables=6, max_syllables=5)
    with pytest.raises(ValueError, match="data.synthetic.max_syllables"):
        build_synthetic_corpus(tmp_path, bad, SAMPLE_RATE, SAMPLES_PER_SYLLABLE, progress=False)
    with pytest.raises(FileNotFoundError, match="labels.jsonl"):
        load_labels(tmp_path)
    (tmp_path / "labels.jsonl").write_text('{"path": "x.wav"}\n')
    with pytest.raises(ValueError, match=r"labels.jsonl:1"):
        load_labels(tmp_path)


# ---------------------------------------------------------------- classifier
def voice_chunks(seed: int, n_voices: int, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Every syllable in shuffled order, ``repeats`` times per voice, as log-mel chunks."""
    rng = np.random.default_rng(seed)
    synth = FormantSynth()
    mels, labels = [], []
    for _ in range(n_voices):
        voice = sample_voice(rng)
        for _ in range(repeats):
            order = rng.permutation(24)
            mels.append(log_mel_chunks(synth.utterance(order, voice, rng), 24))
            labels.append(order)
    return np.concatenate(mels), np.concatenate(labels)


@pytest.fixture(scope="module")
def unseen_voice_chunks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (*voice_chunks(seed=100, n_voices=16, repeats=2), *voice_chunks(seed=200, n_voices=8, repeats=1))


@pytest.mark.parametrize("classifier_type, filename", [(SyllableClassifier, "clf.npz"), (NeuralSyllableClassifier, "clf.pt")])
def test_classifier_recognises_syllables_of_unseen_voices(unseen_voice_chunks, classifier_type, filename: str, tmp_path: Path) -> None:
    train_mels, train_labels, test_mels, test_labels = unseen_voice_chunks
    classifier = classifier_type.fit(train_mels, train_labels)
    accuracy = float(np.mean(classifier.predict(test_mels) == test_labels))
    assert accuracy >= 0.9, f"held-out voice accuracy {accuracy:.3f}"  # measured 0.97 (lda), 0.99 (mlp)
    classifier.save(tmp_path / filename)
    reloaded = classifier_type.load(tmp_path / filename)
    assert np.array_equal(reloaded.predict(test_mels), classifier.predict(test_mels))
    with pytest.raises(ValueError, match=r"\(N, 80, 16\)"):
        classifier.predict(test_mels[:, :, :8])
    (tmp_path / "not_a_classifier").write_bytes(b"plain text")
    with pytest.raises(ValueError, match="not_a_classifier: not a saved"):
        classifier_type.load(tmp_path / "not_a_classifier")


def test_neural_classifier_fit_is_seeded(unseen_voice_chunks) -> None:
    train_mels, train_labels, test_mels, _ = unseen_voice_chunks
    first = NeuralSyllableClassifier.fit(train_mels, train_labels, seed=3, updates=20).scores(test_mels)
    again = NeuralSyllableClassifier.fit(train_mels, train_labels, seed=3, updates=20).scores(test_mels)
    other = NeuralSyllableClassifier.fit(train_mels, train_labels, seed=4, updates=20).scores(test_mels)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    with pytest.raises(ValueError, match="at least 2 syllables"):
        NeuralSyllableClassifier.fit(train_mels[:5], np.zeros(5, dtype=np.int64))


def test_shift_chunks_moves_each_chunk_by_its_offset_and_repeats_the_edge() -> None:
    chunks = torch.arange(24.0).reshape(2, 3, 4)  # 2 chunks of 3 mel bins x 4 frames
    up_and_still = shift_chunks(chunks, torch.tensor([1, 0]), dim=1)
    assert up_and_still[0].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7]]
    assert torch.equal(up_and_still[1], chunks[1])
    earlier = shift_chunks(chunks, torch.tensor([-1, -2]), dim=2)
    assert earlier[0].tolist() == [[1, 2, 3, 3], [5, 6, 7, 7], [9, 10, 11, 11]]
    assert earlier[1, 0].tolist() == [14, 15, 15, 15]
