"""Corpora, speaker-disjoint splits, the manifest and the feature cache (stage `data`)."""
