from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodream.config import load_config
from audiodream.data.manifest import read_manifest
from audiodream.data.records import CorpusError
from audiodream.data.feature_cache import feature_config_hash
from audiodream.data.split import assign_splits
from audiodream.data.stage import DataPaths, load_split_features, run_data_stage
from tests.audio_fixtures import voiced_tone, write_mixed_folder


def _cfg(run_dir: Path, *overrides: str):
    return load_config([], [f"run.dir={run_dir}", "run.progress=false", "data.num_workers=1", *overrides])


def _read_skipped(run_dir: Path) -> dict[str, str]:
    with DataPaths.of(run_dir).skipped.open() as handle:
        return {row["path"]: row["reason"] for row in csv.DictReader(handle)}


def test_split_is_speaker_disjoint_deterministic_and_80_10_10():
    speakers = [f"speaker-{i}" for i in range(2000)]
    first = assign_splits(speakers)
    assert first == assign_splits(reversed(speakers))  # order does not matter
    assert assign_splits(speakers[:1000]) == {s: first[s] for s in speakers[:1000]}  # adding speakers moves none
    shares = {split: sum(v == split for v in first.values()) / len(speakers) for split in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.8, abs=0.03)
    assert shares["val"] == pytest.approx(0.1, abs=0.02)
    assert shares["test"] == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("n", [3, 4, 7])
def test_small_corpora_get_every_split(n):
    assert set(assign_splits([f"s{i}" for i in range(n)]).values()) == {"train", "val", "test"}


def test_fewer_than_three_speakers_is_a_clear_error():
    with pytest.raises(CorpusError, match="at least 3 speakers"):
        assign_splits(["a", "b", "a"])


def test_folder_of_mixed_formats_keeps_good_files_and_lists_bad_ones(tmp_path):
    files = write_mixed_folder(tmp_path / "corpus")
    run_dir = tmp_path / "run"
    rows = run_data_stage(_cfg(run_dir, "data.source=folder", f"data.path={tmp_path / 'corpus'}"), run_dir)
    assert sorted(r.path for r in rows) == sorted(str(p) for p in files["good"])
    skipped = _read_skipped(run_dir)
    assert set(skipped) == {str(p) for p in files["bad"]}
    assert all(reason for reason in skipped.values())
    for row in rows:
        assert row.duration_s == pytest.approx(1.2, abs=0.02)
        assert row.speaker == Path(row.path).parent.name
    # Every split's speakers are disjoint from the others'.
    speakers_by_split = defaultdict(set)
    for row in read_manifest(DataPaths.of(run_dir).manifest):
        speakers_by_split[row.split].add(row.speaker)
    assert set(speakers_by_split) == {"train", "val", "test"}
    assert not (speakers_by_split["train"] & speakers_by_split["val"])
    assert not (speakers_by_split["train"] & speakers_by_split["test"])
    assert not (speakers_by_split["val"] & speakers_by_split["test"])
    # Features come back from the cache at 100 frames/s.
    features = load_split_features(_cfg(run_dir), run_dir, "train")
    assert features and all(mel.mel.shape == (80, 120) for _, mel in features)


def test_min_duration_filter_and_feature_cache_reuse(tmp_path):
    corpus = tmp_path / "corpus"
    for i, speaker in enumerate(["a", "b", "c"]):
        (corpus / speaker).mkdir(parents=True)
        sf.write(corpus / speaker / "long.wav", voiced_tone(16000, 1.0, seed=i), 16000)
        sf.write(corpus / speaker / "short.wav", voiced_tone(16000, 0.2, seed=i), 16000)
    run_dir = tmp_path / "run"
    cfg = _cfg(run_dir, "data.source=folder", f"data.path={corpus}", "data.min_duration_s=0.5")
    rows = run_data_stage(cfg, run_dir)
    assert {Path(r.path).name for r in rows} == {"long.wav"}
    assert all("min_duration_s" in reason for reason in _read_skipped(run_dir).values())
    cache_files = sorted((DataPaths.of(run_dir).feature_root).rglob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in cache_files]
    run_data_stage(cfg, run_dir)
    assert [p.stat().st_mtime_ns for p in sorted(DataPaths.of(run_dir).feature_root.rglob("*.npz"))] == mtimes
    # Griffin-Lim settings change no features: the same cache serves them, and so does a cache
    # folder named the way earlier versions did (render settings hashed too).
    rendered_otherwise = _cfg(run_dir, "data.source=folder", f"data.path={corpus}", "data.min_duration_s=0.5",
                              "features.griffin_lim_iters=8", "features.griffin_lim_momentum=0.5")
    train = [m.mel for _, m in load_split_features(cfg, run_dir, "train")]
    other = [m.mel for _, m in load_split_features(rendered_otherwise, run_dir, "train")]
    assert train and len(other) == len(train) and all(np.array_equal(a, b) for a, b in zip(train, other))
    cache_dir = DataPaths.of(run_dir).feature_root / feature_config_hash(cfg.features)
    cache_dir.rename(cache_dir.with_name(feature_config_hash(cfg.features, with_render_fields=True)))
    assert len(load_split_features(cfg, run_dir, "train")) == len(train)
    with pytest.raises(FileNotFoundError):  # an older cache only matches the settings it was made with
        load_split_features(rendered_otherwise, run_dir, "train")
    # A different feature config gets its own cache directory.
    run_data_stage(_cfg(run_dir, "data.source=folder", f"data.path={corpus}", "features.n_mels=40"), run_dir)
    assert len([d for d in DataPaths.of(run_dir).feature_root.iterdir() if d.is_dir()]) == 2


def _write_commonvoice(root: Path, n_speakers: int = 4) -> None:
    (root / "clips").mkdir(parents=True)
    lines = ["client_id\tpath\tsentence\tup_votes"]
    for s in range(n_speakers):
        for u in range(2):
            name = f"cv_{s}_{u}.mp3"
            sf.write(root / "clips" / name, voiced_tone(48000, 1.0, f0=100 + 20 * s, seed=u), 48000, format="MP3")
            lines.append(f"client{s:03d}\t{name}\tsentence {s} {u}\t2")
    (root / "validated.tsv").write_text("\n".join(lines) + "\n")


def test_commonvoice_source(tmp_path):
    root = tmp_path / "cv"
    _write_commonvoice(root)
    run_dir = tmp_path / "run"
    rows = run_data_stage(_cfg(run_dir, "data.source=commonvoice", f"data.path={root}"), run_dir)
    assert len(rows) == 8
    assert {r.speaker for r in rows} == {f"client{s:03d}" for s in range(4)}
    assert all(r.extra["text"].startswith("sentence") for r in rows)


def test_commonvoice_malformed_tsv_names_the_file(tmp_path):
    root = tmp_path / "cv"
    _write_commonvoice(root)
    (root / "validated.tsv").write_text("who\twhat\nx\ty\n")
    with pytest.raises(CorpusError, match="validated.tsv is malformed"):
        run_data_stage(_cfg(tmp_path / "run", "data.source=commonvoice", f"data.path={root}"), tmp_path / "run")


def test_librispeech_source(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev-clean"
    for speaker in ("19", "84", "174"):
        chapter = root / speaker / "1000"
        chapter.mkdir(parents=True)
        lines = []
        for u in range(2):
            utt = f"{speaker}-1000-{u:04d}"
            sf.write(chapter / f"{utt}.flac", voiced_tone(16000, 1.0, seed=u), 16000)
            lines.append(f"{utt} HELLO WORLD {u}")
        (chapter / f"{speaker}-1000.trans.txt").write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    rows = run_data_stage(_cfg(run_dir, "data.source=librispeech", f"data.path={root}"), run_dir)
    assert {r.speaker for r in rows} == {"19", "84", "174"}
    assert {r.extra["text"] for r in rows} == {"HELLO WORLD 0", "HELLO WORLD 1"}


@pytest.mark.parametrize("source", ["folder", "commonvoice", "librispeech"])
def test_missing_corpus_path_names_the_path(tmp_path, source):
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusError, match=str(missing)):
        run_data_stage(_cfg(tmp_path / "run", f"data.source={source}", f"data.path={missing}"), tmp_path / "run")


def test_corpus_without_usable_clips_is_an_error(tmp_path):
    corpus = tmp_path / "corpus" / "spk"
    corpus.mkdir(parents=True)
    (corpus / "a.wav").write_bytes(b"not audio at all")
    with pytest.raises(CorpusError, match="none of the 1 clips is usable"):
        run_data_stage(_cfg(tmp_path / "run", "data.source=folder", f"data.path={corpus.parent}"), tmp_path / "run")
