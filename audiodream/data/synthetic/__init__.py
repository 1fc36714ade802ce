"""The built-in synthetic speech corpus: a syllable grammar with memory, a formant
synthesizer, the corpus writer, and syllable classifiers for scoring imagined audio."""

from audiodream.data.synthetic.classifier import SyllableClassifier
from audiodream.data.synthetic.corpus import SyntheticUtterance, build_synthetic_corpus, corpus_grammar, load_labels
from audiodream.data.synthetic.grammar import CONSONANTS, SYLLABLES, VOWELS, SyllableGrammar
from audiodream.data.synthetic.neural_classifier import NeuralSyllableClassifier
from audiodream.data.synthetic.synth import FormantSynth, Voice, sample_voice

__all__ = [
    "CONSONANTS",
    "FormantSynth",
    "NeuralSyllableClassifier",
    "SYLLABLES",
    "SyllableClassifier",
    "SyllableGrammar",
    "SyntheticUtterance",
    "VOWELS",
    "Voice",
    "build_synthetic_corpus",
    "corpus_grammar",
    "load_labels",
    "sample_voice",
]
