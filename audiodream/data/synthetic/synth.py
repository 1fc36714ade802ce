"""A small source-filter (Klatt-style) formant synthesizer for consonant-vowel syllables.

Why a synthesizer and not recordings: the project must run with no network and no
corpus, and later stages are scored against the known syllable grammar, so the audio
has to be generated here, step-aligned, and varied enough that a tokenizer trained on
it also reconstructs real speech.

Signal path (per utterance, so pitch and phase run on across syllables)
    voicing source   KLGLOTT88 glottal-flow derivative, per-cycle jitter and shimmer,
                     one-pole spectral tilt, breathy noise pulsed with the glottal cycle
    + aspiration     noise with its own envelope (VOT of p/t/k)
    -> cascade       nasal notch (only in m/n murmurs), F1-F4 following the consonant ->
                     vowel plan (loci, transitions, F1 cutback while p/t/k aspirate,
                     damped upper formants in b/d closures and murmurs), fixed F5; the
                     tract is updated every ``BLOCK`` samples by overlap-adding windowed
                     segments filtered from rest (no switching clicks)
    + frication      noise through a consonant-specific band-pass (bursts, /s/), added
                     in parallel at a level relative to the vowel
    + background     coloured noise at the voice's ``noise_level``; then a mild channel
                     high-pass and peak normalisation to a random level in [0.5, 0.9].

Timing: every syllable fills exactly ``samples_per_syllable`` samples (one env step).
Speaking rate shortens or lengthens the consonant and the formant transitions *inside*
that fixed length, so the vowel takes what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import signal

try:  # scipy's compiled sosfilt kernel; see _filter_from_rest
    from scipy.signal._sosfilt import _sosfilt as _SOSFILT_KERNEL
except ImportError:  # pragma: no cover - depends on the scipy build
    _SOSFILT_KERNEL = None

from audiodream.data.synthetic.grammar import SYLLABLES, VOWELS, consonant_of, vowel_of

BLOCK = 80  # samples between vocal-tract updates (5 ms at 16 kHz)
PITCH_CONTROL = 32  # samples between points of the intonation contour (2 ms)
RING_SAMPLES = 640  # how long a windowed segment rings through the tract (40 ms, < -50 dB); multiple of BLOCK
N_FORMANTS = 4

# Adult male vowel targets F1-F4 (Hz), after Peterson & Barney (1952).
VOWEL_FORMANTS: dict[str, tuple[float, ...]] = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "i": (270.0, 2290.0, 3010.0, 3550.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
}
SCHWA_FORMANTS = np.array([500.0, 1500.0, 2500.0, 3500.0])  # where unstressed vowels drift
MAX_REDUCTION = {"stressed": 0.1, "unstressed": 0.45}  # fraction of the way to schwa
BASE_BANDWIDTHS = np.array([60.0, 90.0, 130.0, 200.0])
F5_HZ, B5_HZ = 4400.0, 350.0
F6_HZ, B6_HZ = 5600.0, 500.0
# Nasal antiresonance: a notch (zero and pole at the same frequency, the pole wider) so the
# murmur loses energy around the zero without tilting the spectrum; equal widths = no notch.
NASAL_ZERO_HZ = {"m": 900.0, "n": 1900.0}
NASAL_ZERO_WIDTH_HZ, NASAL_POLE_WIDTH_HZ = 80.0, 600.0
MURMUR_FORMANTS = {"m": (250.0, 1250.0, 2150.0, 3200.0), "n": (250.0, 1750.0, 2450.0, 3300.0)}

# Formant onsets after release: onset = locus + k * (vowel - locus) (Klatt's locus rule).
LABIAL_LOCUS = (np.array([200.0, 800.0, 2000.0, 3300.0]), np.array([0.3, 0.45, 0.6, 0.9]))
ALVEOLAR_LOCUS = (np.array([200.0, 1750.0, 2650.0, 3500.0]), np.array([0.3, 0.45, 0.5, 0.9]))
# Velars depend on the vowel (front vs back closure) and pinch F2 and F3 together.
VELAR_ONSET = {
    "a": np.array([300.0, 1650.0, 2000.0, 3300.0]),
    "i": np.array([250.0, 2350.0, 2800.0, 3500.0]),
    "u": np.array([250.0, 1150.0, 1950.0, 3200.0]),
}
PLACE = {"b": "labial", "p": "labial", "m": "labial", "d": "alveolar", "t": "alveolar",
         "n": "alveolar", "s": "alveolar", "k": "velar"}

# Burst / frication band (low, high) in Hz for an adult male, before vocal-tract scaling.
# For /s/ only the upper edge is used: the lower one is the voice's ``sibilant_hz``.
FRICATION_BANDS = {"labial": (250.0, 2200.0), "alveolar": (2600.0, 6500.0), "s": (3900.0, 7900.0)}
MAX_CONSONANT_FRACTION = 0.55
MIN_VOWEL_S = 0.04  # a pause never shortens the vowel below this
BRIGHTNESS_CORNER_HZ = 2000.0


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker."""

    f0_hz: float  # median pitch
    vocal_tract_scale: float  # formant multiplier: 1 = adult male reference, >1 shorter tract
    rate: float  # speaking rate; higher = shorter consonants and faster transitions
    noise_level: float  # background noise RMS relative to speech RMS
    breathiness: float  # aspiration noise mixed into voicing
    spectral_tilt: float  # pole of the glottal one-pole low-pass (higher = darker voice)
    open_quotient: float  # open fraction of each glottal cycle
    jitter: float  # relative cycle-to-cycle pitch perturbation
    shimmer: float  # relative cycle-to-cycle amplitude perturbation
    pitch_range_st: float  # intonation range in semitones
    bandwidth_scale: float  # formant bandwidth multiplier
    formant_offsets: tuple[tuple[float, ...], ...]  # per vowel (a, i, u), per formant multiplier (accent)
    brightness_db: float = 0.0  # high-shelf gain above ~2 kHz (voice quality and microphone)
    pause_prob: float = 0.1  # chance that a syllable's vowel stops early, leaving a silent pause
    sibilant_hz: float = 3900.0  # lower edge of the /s/ noise band (lower: more "sh"-like)


def sample_voice(rng: np.random.Generator) -> Voice:
    """A random speaker: adult male, adult female or child, with correlated pitch and tract size."""
    kind = rng.choice(3, p=[0.45, 0.4, 0.15])
    f0_low, f0_high, scale_low, scale_high = [(80.0, 150.0, 0.8, 1.02), (160.0, 250.0, 1.02, 1.18),
                                              (220.0, 270.0, 1.14, 1.25)][kind]
    offsets = tuple(tuple(float(x) for x in rng.normal(1.0, 0.05, N_FORMANTS)) for _ in VOWELS)
    return Voice(
        f0_hz=float(np.exp(rng.uniform(np.log(f0_low), np.log(f0_high)))),
        vocal_tract_scale=float(rng.uniform(scale_low, scale_high)),
        rate=float(rng.uniform(0.8, 1.25)),
        noise_level=float(np.exp(rng.uniform(np.log(0.0005), np.log(0.08)))),
        breathiness=float(rng.uniform(0.0, 0.35)),
        spectral_tilt=float(rng.uniform(0.1, 0.8)),
        open_quotient=float(rng.uniform(0.4, 0.75)),
        jitter=float(rng.uniform(0.003, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.12)),
        pitch_range_st=float(rng.uniform(2.0, 8.0)),
        bandwidth_scale=float(rng.uniform(0.8, 1.3)),
        formant_offsets=offsets,
        brightness_db=float(rng.uniform(-3.0, 12.0)),
        pause_prob=float(rng.uniform(0.0, 0.25)),
        sibilant_hz=float(rng.uniform(2800.0, 4600.0)),
    )


class _Tracks:
    """Breakpoint lists (sample time, value) for each control track of an utterance."""

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[float, object]]] = {}

    def put(self, name: str, time: float, value: object) -> None:
        """Append a breakpoint; a time before the previous one is moved just after it, so a
        crowded plan (fast speaker, long consonant) turns into steps instead of disorder."""
        points = self.points.setdefault(name, [])
        if points:
            time = max(time, points[-1][0] + 1e-3)
        points.append((time, value))

    def sample(self, name: str, times: np.ndarray, default: float = 0.0) -> np.ndarray:
        points = self.points.get(name)
        if not points:
            return np.full(len(times), default)
        xp = np.array([t for t, _ in points])
        values = np.array([v for _, v in points], dtype=np.float64)
        if values.ndim == 1:
            return np.interp(times, xp, values)
        return np.stack([np.interp(times, xp, values[:, k]) for k in range(values.shape[1])], axis=1)


@dataclass
class _UtteranceStyle:
    """Per-utterance deviations from the speaker's habits, so one voice is not one sound."""

    rate: float
    f0_hz: float
    open_quotient: float
    end_level: float  # vowel amplitude at the syllable end, relative to its sustain
    voice_bar: float  # voicing during b/d closures
    murmur_level: float
    aspiration: float
    burst_level: float
    frication_level: float


def _utterance_style(voice: Voice, rng: np.random.Generator) -> _UtteranceStyle:
    return _UtteranceStyle(
        rate=voice.rate * float(np.exp(rng.normal(0.0, 0.07))),
        f0_hz=voice.f0_hz * float(np.exp(rng.normal(0.0, 0.06))),
        open_quotient=float(np.clip(voice.open_quotient + rng.normal(0.0, 0.04), 0.35, 0.8)),
        end_level=float(rng.uniform(0.15, 0.6)),
        voice_bar=float(rng.uniform(0.05, 0.3)),
        murmur_level=float(rng.uniform(0.3, 0.6)),
        aspiration=float(rng.uniform(0.4, 0.8)),
        burst_level=float(rng.uniform(0.5, 1.2)),
        frication_level=float(rng.uniform(0.2, 0.5)),
    )


@dataclass(frozen=True)
class _SyllablePlan:
    """Timing of one syllable, in seconds from its start (``start`` is in samples)."""

    start: int
    consonant: str
    gain: float
    duration: float
    release: float  # closure / murmur / frication ends, formant transition starts
    voice_onset: float
    burst: float
    vowel_end: float  # < duration when a pause follows
    transition: float
    offset: float  # the vowel's final fade


class FormantSynth:
    """Speech-like syllables and utterances; see the module docstring for the signal path."""

    def __init__(self, sample_rate: int = 16000, samples_per_syllable: int = 2560) -> None:
        if sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000 Hz for formant synthesis, got {sample_rate}")
        if samples_per_syllable < BLOCK:
            raise ValueError(f"samples_per_syllable must be >= {BLOCK}, got {samples_per_syllable}")
        self.sample_rate = int(sample_rate)
        self.samples_per_syllable = int(samples_per_syllable)

    # ---------------------------------------------------------------- public API
    def syllable(self, syllable: int, voice: Voice, rng: np.random.Generator) -> np.ndarray:
        """One syllable on its own: float32, exactly ``samples_per_syllable`` samples."""
        return self.utterance([syllable], voice, rng)

    def utterance(self, syllables: Sequence[int], voice: Voice, rng: np.random.Generator) -> np.ndarray:
        """float32 audio of exactly ``len(syllables) * samples_per_syllable`` samples."""
        syllables = [int(s) for s in syllables]
        if not syllables:
            raise ValueError("utterance needs at least one syllable")
        bad = [s for s in syllables if not 0 <= s < len(SYLLABLES)]
        if bad:
            raise ValueError(f"syllable ids {bad} are outside [0, {len(SYLLABLES)})")
        style = _utterance_style(voice, rng)
        n_samples = len(syllables) * self.samples_per_syllable
        tracks = _Tracks()
        gains = self._syllable_gains(len(syllables), rng)
        last = len(syllables) - 1
        for index, syllable in enumerate(syllables):
            following = syllables[index + 1] if index < last else None
            pause_prob = max(voice.pause_prob, 0.5) if index == last else voice.pause_prob
            pause = float(rng.uniform(0.03, 0.07)) if rng.random() < pause_prob else 0.0
            self._plan_syllable(tracks, index, syllable, following, voice, style, gains[index], pause, rng)
        times = np.arange(n_samples, dtype=np.float64)
        f0 = self._pitch_track(syllables, voice, style, rng)
        source, voicing = self._source(tracks, times, f0, voice, style, rng)
        voiced = self._cascade(source, tracks, voice)
        level = float(np.sqrt(np.mean(voiced[voicing > 0.5] ** 2))) if np.any(voicing > 0.5) else 1e-3
        audio = voiced + level * self._frication(tracks, times, syllables, voice, rng)
        audio = self._brighten(audio, voice.brightness_db)
        audio = audio + self._background(audio, voice, rng)
        return self._finish(audio, rng)

    # ---------------------------------------------------------------- planning
    def _syllable_gains(self, n: int, rng: np.random.Generator) -> np.ndarray:
        stressed = rng.random(n) < 0.3
        return np.exp(rng.normal(0.0, 0.2, n) + 0.35 * stressed)

    def _vowel_target(self, syllable: int, voice: Voice, rng: np.random.Generator,
                      max_reduction: float = 0.0) -> np.ndarray:
        """The vowel's formants for this speaker, jittered and partly reduced towards schwa
        (unstressed vowels centralise), which also fills the vowel space between a, i, u."""
        vowel = vowel_of(syllable)
        base = np.array(VOWEL_FORMANTS[vowel]) * np.array(voice.formant_offsets[VOWELS.index(vowel)])
        base = base + rng.uniform(0.0, max_reduction) * (SCHWA_FORMANTS - base)
        return base * rng.normal(1.0, 0.03, N_FORMANTS)

    def _onset(self, syllable: int, target: np.ndarray) -> np.ndarray:
        place = PLACE[consonant_of(syllable)]
        if place == "velar":
            return VELAR_ONSET[vowel_of(syllable)].copy()
        locus, k = LABIAL_LOCUS if place == "labial" else ALVEOLAR_LOCUS
        return locus + k * (target - locus)

    def _plan_syllable(self, tracks: _Tracks, index: int, syllable: int, following: int | None, voice: Voice,
                       style: _UtteranceStyle, gain: float, pause: float, rng: np.random.Generator) -> None:
        """Breakpoints of one syllable. ``pause`` seconds at its end are silent (a phrase
        break inside the fixed step)."""
        rate = style.rate * float(np.exp(rng.normal(0.0, 0.06)))
        consonant = consonant_of(syllable)
        stress = "stressed" if gain > 1.15 else "unstressed"
        target = self._vowel_target(syllable, voice, rng, MAX_REDUCTION[stress])
        end_formants = target.copy()
        if following is not None:  # anticipate the next consonant
            next_target = self._vowel_target(following, voice, rng)
            end_formants = target + 0.2 * (self._onset(following, next_target) - target)
        duration = self.samples_per_syllable / self.sample_rate
        timing = self._consonant_timing(consonant, rate, duration, rng)
        pause = float(np.clip(pause, 0.0, duration - timing["voice_onset"] - MIN_VOWEL_S))
        plan = _SyllablePlan(
            start=index * self.samples_per_syllable, consonant=consonant, gain=gain, duration=duration,
            release=timing["release"], voice_onset=timing["voice_onset"], burst=timing["burst"],
            vowel_end=duration - pause, transition=0.040 / rate * rng.uniform(0.8, 1.2),
            offset=0.03 / rate * rng.uniform(0.7, 1.3),
        )
        at = self._clock(plan)
        self._plan_formants(tracks, at, plan, voice, self._onset(syllable, target), target,
                            target if pause > 0.0 else end_formants, rng)
        self._plan_voicing(tracks, at, plan, style)
        self._plan_noise(tracks, at, plan, style, rng)

    def _clock(self, plan: "_SyllablePlan") -> Callable[[float], float]:
        """Seconds into the syllable -> sample time of the utterance, kept inside the syllable."""
        fs, last = self.sample_rate, self.samples_per_syllable - 1
        return lambda t: plan.start + min(max(t, 0.0) * fs, last)

    def _plan_formants(self, tracks: _Tracks, at: Callable[[float], float], plan: "_SyllablePlan", voice: Voice,
                       onset: np.ndarray, target: np.ndarray, end: np.ndarray, rng: np.random.Generator) -> None:
        """Consonant configuration, onset at release, transition to the vowel, anticipation;
        plus the bandwidth changes of closures, murmurs and aspiration."""
        scale, consonant, release = voice.vocal_tract_scale, plan.consonant, plan.release
        if consonant in ("m", "n"):
            murmur = np.array(MURMUR_FORMANTS[consonant])
            tracks.put("formants", at(0.0), murmur * scale)
            tracks.put("formants", at(release), murmur * scale)
            tracks.put("formants", at(release + 0.003), onset * scale)
            zero = NASAL_ZERO_HZ[consonant] * rng.uniform(0.9, 1.1) * scale
            tracks.put("nasal_zero", at(0.0), zero)
            tracks.put("nasal_zero", at(plan.duration), zero)
            tracks.put("nasal_width", at(0.0), NASAL_POLE_WIDTH_HZ)
            tracks.put("nasal_width", at(release), NASAL_POLE_WIDTH_HZ)
            tracks.put("nasal_width", at(release + 0.015), NASAL_ZERO_WIDTH_HZ)
            damping = 2.5
        else:
            tracks.put("formants", at(0.0), onset * scale)
            tracks.put("formants", at(release), onset * scale)
            tracks.put("nasal_width", at(0.0), NASAL_ZERO_WIDTH_HZ)
            damping = 6.0 if consonant in ("b", "d") else 1.0  # b/d closure: only a low voice bar
        tracks.put("formants", at(release + plan.transition), target * scale)
        tracks.put("formants", at(plan.duration - plan.offset), target * scale)
        tracks.put("formants", at(plan.duration), end * scale)
        tracks.put("damping", at(0.0), damping)
        tracks.put("damping", at(release), damping)
        tracks.put("damping", at(release + 0.004), 1.0)
        tracks.put("damping", at(plan.duration), 1.0)
        # F1 cutback: while p/t/k aspirate, the open glottis damps F1 and the low end stays empty.
        cutback = 8.0 if consonant in ("p", "t", "k") else 1.0
        tracks.put("f1_damping", at(0.0), cutback)
        tracks.put("f1_damping", at(plan.voice_onset), cutback)
        tracks.put("f1_damping", at(plan.voice_onset + 0.01), 1.0)
        tracks.put("f1_damping", at(plan.duration), 1.0)

    def _plan_voicing(self, tracks: _Tracks, at: Callable[[float], float], plan: "_SyllablePlan",
                      style: _UtteranceStyle) -> None:
        consonant_voicing = {"b": style.voice_bar, "d": style.voice_bar, "m": style.murmur_level,
                             "n": style.murmur_level}.get(plan.consonant, 0.0)
        tracks.put("voicing", at(0.0), consonant_voicing * plan.gain)
        tracks.put("voicing", at(plan.voice_onset), consonant_voicing * plan.gain)
        tracks.put("voicing", at(plan.voice_onset + 0.01), plan.gain)
        tracks.put("voicing", at(plan.vowel_end - plan.offset), plan.gain)
        if plan.vowel_end < plan.duration:
            tracks.put("voicing", at(plan.vowel_end), 0.0)
        else:
            tracks.put("voicing", at(plan.duration), plan.gain * style.end_level)

    def _plan_noise(self, tracks: _Tracks, at: Callable[[float], float], plan: "_SyllablePlan",
                    style: _UtteranceStyle, rng: np.random.Generator) -> None:
        """Aspiration (through the tract) and bursts or /s/ frication (parallel branch)."""
        consonant, release = plan.consonant, plan.release
        if consonant in ("p", "t", "k", "b", "d"):
            voiceless = consonant in ("p", "t", "k")
            aspiration = style.aspiration * plan.gain * (1.0 if voiceless else 0.15)
            tracks.put("aspiration", at(0.0), 0.0)
            tracks.put("aspiration", at(release), 0.0)
            tracks.put("aspiration", at(release + 0.004), aspiration)
            tracks.put("aspiration", at(plan.voice_onset), 0.6 * aspiration)
            tracks.put("aspiration", at(plan.voice_onset + 0.015), 0.0)
            burst = style.burst_level * plan.gain * (1.0 if voiceless else 0.45)
            tracks.put("frication", at(0.0), 0.0)
            tracks.put("frication", at(release), 0.0)
            tracks.put("frication", at(release + 0.0008), burst)
            tracks.put("frication", at(release + plan.burst), 0.25 * burst)
            tracks.put("frication", at(release + plan.burst + 0.01), 0.0)
        elif consonant == "s":
            level = style.frication_level * plan.gain * rng.uniform(0.8, 1.25)
            tracks.put("frication", at(0.0), 0.0)
            tracks.put("frication", at(0.012), level)
            tracks.put("frication", at(release - 0.01), level)
            tracks.put("frication", at(release + 0.006), 0.0)
        tracks.put("aspiration", at(plan.duration), 0.0)
        tracks.put("frication", at(plan.duration), 0.0)

    def _consonant_timing(self, consonant: str, rate: float, duration: float,
                          rng: np.random.Generator) -> dict[str, float]:
        """Release and voice-onset times (s from syllable start), shorter for faster speakers."""
        jitter = rng.uniform(0.85, 1.15, 3)
        burst = 0.0
        if consonant in ("p", "t", "k"):
            closure = 0.026 / rate * jitter[0]
            burst = 0.007 * jitter[1]
            vot = {"p": 0.045, "t": 0.055, "k": 0.065}[consonant] / rate * jitter[2]
        elif consonant in ("b", "d"):
            closure = 0.030 / rate * jitter[0]
            burst = 0.005 * jitter[1]
            vot = 0.008 / rate * jitter[2]
        elif consonant == "s":
            closure = 0.070 / rate * jitter[0]
            vot = 0.005
        else:
            closure = 0.055 / rate * jitter[0]
            vot = 0.0
        squeeze = min(1.0, MAX_CONSONANT_FRACTION * duration / (closure + vot))
        return {"release": closure * squeeze, "voice_onset": (closure + vot) * squeeze, "burst": burst}

    # ---------------------------------------------------------------- source
    def _pitch_track(self, syllables: Sequence[int], voice: Voice, style: _UtteranceStyle,
                     rng: np.random.Generator) -> np.ndarray:
        """Per-sample f0: declination, pitch accents, a final rise or fall, slow wander,
        and micro-prosody after voiceless consonants."""
        fs, length = self.sample_rate, self.samples_per_syllable
        n = len(syllables)
        n_samples = n * length
        control = np.arange(0, n_samples + PITCH_CONTROL, PITCH_CONTROL, dtype=np.float64)
        t = control / fs
        total = n_samples / fs
        span = voice.pitch_range_st
        semitones = rng.uniform(0.2, 0.5) * span * (0.5 - t / total)  # declination
        position = (t * fs / length)  # in syllables
        for index in range(n):
            if rng.random() < 0.35:
                bump = np.exp(-0.5 * ((position - index - 0.6) / 0.45) ** 2)
                semitones += rng.uniform(0.3, 0.7) * span * bump
            if consonant_of(syllables[index]) in ("p", "t", "k", "s"):
                local = position - index
                semitones += 1.0 * np.exp(-np.clip(local - 0.45, 0.0, None) / 0.12) * ((local >= 0) & (local < 1))
        question = rng.random() < 0.3
        boundary_tone = rng.uniform(0.3, 0.8) * span if question else -rng.uniform(0.1, 0.4) * span
        semitones += boundary_tone * (position - (n - 1)).clip(0.0, 1.0) ** 2
        for _ in range(3):  # slow wander
            depth, rate_hz, phase = rng.uniform(0.1, 0.5), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            semitones += depth * np.sin(2 * np.pi * rate_hz * t + phase)
        return style.f0_hz * 2.0 ** (np.interp(np.arange(n_samples), control, semitones) / 12.0)

    def _source(self, tracks: _Tracks, times: np.ndarray, f0: np.ndarray, voice: Voice,
                style: _UtteranceStyle, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Glottal source plus aspiration, before the vocal tract; also the voicing envelope."""
        fs = self.sample_rate
        cycles = np.floor(np.cumsum(f0 / fs)).astype(np.int64)
        n_cycles = int(cycles[-1]) + 2
        f0 = f0 * (1.0 + voice.jitter * rng.standard_normal(n_cycles)[cycles])
        phase = np.cumsum(f0 / fs)
        cycle = np.floor(phase).astype(np.int64)
        within = (phase - cycle) / style.open_quotient
        open_phase = within < 1.0
        flow_derivative = np.where(open_phase, 2.0 * within - 3.0 * within ** 2, 0.0)
        tilt = voice.spectral_tilt
        glottal = signal.lfilter([1.0 - tilt], [1.0, -tilt], flow_derivative)
        shimmer = 1.0 + voice.shimmer * rng.standard_normal(int(cycle[-1]) + 2)[cycle]
        breath = voice.breathiness * rng.standard_normal(len(times)) * np.where(open_phase, 1.0, 0.3)
        voicing = tracks.sample("voicing", times)
        aspiration = tracks.sample("aspiration", times)
        source = voicing * shimmer * (glottal + breath) + aspiration * rng.standard_normal(len(times))
        return source, voicing

    # ---------------------------------------------------------------- filters
    def _cascade(self, source: np.ndarray, tracks: _Tracks, voice: Voice) -> np.ndarray:
        """The vocal tract as a time-varying filter without switching clicks.

        Switching a sharp resonator's coefficients while it rings turns the mismatch into a
        broadband click at every formant jump. Instead the source is cut into Hann-windowed
        segments (hop ``BLOCK``, 50 % overlap, summing to one); each segment is filtered
        from rest by the tract of its centre time, rings out for ``RING_SAMPLES`` and is
        overlap-added. The tract thus changes between one glottal pulse and the next, as a
        moving tract does, and never under a ringing resonance.
        """
        n_segments = -(-len(source) // BLOCK) + 1
        centres = np.arange(n_segments, dtype=np.float64) * BLOCK
        sos = self._tract_sections(tracks, centres, voice)
        window = signal.get_window("hann", 2 * BLOCK, fftbins=True)
        padded = np.concatenate([np.zeros(BLOCK), source, np.zeros(3 * BLOCK)])
        blocks_per_segment = 2 + RING_SAMPLES // BLOCK
        segments = np.zeros((n_segments, blocks_per_segment * BLOCK))
        starts = np.arange(n_segments)[:, None] * BLOCK + np.arange(2 * BLOCK)[None, :]
        segments[:, : 2 * BLOCK] = padded[starts] * window
        for index in range(n_segments):
            _filter_from_rest(sos[index], segments[index: index + 1])
        # Overlap-add: segment k covers blocks k .. k + blocks_per_segment - 1 of `padded`.
        out = np.zeros((n_segments + blocks_per_segment, BLOCK))
        for offset in range(blocks_per_segment):
            out[offset: offset + n_segments] += segments[:, offset * BLOCK: (offset + 1) * BLOCK]
        return out.reshape(-1)[BLOCK: BLOCK + len(source)]

    def _tract_sections(self, tracks: _Tracks, times: np.ndarray, voice: Voice) -> np.ndarray:
        """Second-order sections (nasal notch, F1-F4, F5) of the tract at each time."""
        fs = self.sample_rate
        n = len(times)
        nyquist_guard = 0.45 * fs
        formants = np.minimum(tracks.sample("formants", times), nyquist_guard)
        damping = tracks.sample("damping", times, default=1.0)
        bandwidths = np.broadcast_to(BASE_BANDWIDTHS * voice.bandwidth_scale, formants.shape).copy()
        bandwidths[:, 1:] *= damping[:, None]
        bandwidths[:, 0] *= tracks.sample("f1_damping", times, default=1.0)
        nasal_zero = tracks.sample("nasal_zero", times, default=NASAL_ZERO_HZ["m"])
        nasal_width = tracks.sample("nasal_width", times, default=NASAL_ZERO_WIDTH_HZ)
        f5 = np.full(n, min(F5_HZ * voice.vocal_tract_scale, nyquist_guard))
        f6 = np.full(n, min(F6_HZ * voice.vocal_tract_scale, nyquist_guard))
        sos = np.empty((n, N_FORMANTS + 3, 6))
        sos[:, 0] = _notch_sections(nasal_zero, nasal_width, fs)
        for k in range(N_FORMANTS):
            sos[:, k + 1] = _resonator_sections(formants[:, k], bandwidths[:, k], fs)
        sos[:, -2] = _resonator_sections(f5, np.full(n, B5_HZ), fs)
        sos[:, -1] = _resonator_sections(f6, np.full(n, B6_HZ), fs)
        return sos

    def _frication(self, tracks: _Tracks, times: np.ndarray, syllables: Sequence[int], voice: Voice,
                   rng: np.random.Generator) -> np.ndarray:
        """Band-passed noise for bursts and /s/, at unit RMS where the envelope is 1."""
        envelope = tracks.sample("frication", times)
        noise = rng.standard_normal(len(times))
        out = np.zeros(len(times))
        length = self.samples_per_syllable
        for index, syllable in enumerate(syllables):
            piece = slice(index * length, (index + 1) * length)
            if not np.any(envelope[piece] > 0):
                continue
            sos, gain = _frication_filter(consonant_of(syllable), vowel_of(syllable), round(voice.vocal_tract_scale, 2),
                                          round(voice.sibilant_hz, -1), self.sample_rate)
            out[piece] = gain * signal.sosfilt(sos, envelope[piece] * noise[piece])
        return out

    def _brighten(self, audio: np.ndarray, gain_db: float) -> np.ndarray:
        """First-order high shelf: voices and microphones differ most above a few kHz."""
        sos = signal.butter(1, BRIGHTNESS_CORNER_HZ, btype="highpass", fs=self.sample_rate, output="sos")
        return audio + (10.0 ** (gain_db / 20.0) - 1.0) * signal.sosfilt(sos, audio)

    def _background(self, audio: np.ndarray, voice: Voice, rng: np.random.Generator) -> np.ndarray:
        colour = rng.uniform(-0.3, 0.95)
        noise = signal.lfilter([1.0], [1.0, -colour], rng.standard_normal(len(audio)))
        noise /= np.std(noise) + 1e-12
        return voice.noise_level * float(np.sqrt(np.mean(audio ** 2))) * noise

    def _finish(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Channel high-pass (no DC), then peak-normalise to a random level without clipping."""
        cutoff = rng.uniform(40.0, 120.0)
        sos = signal.butter(1, cutoff, btype="highpass", fs=self.sample_rate, output="sos")
        audio = signal.sosfilt(sos, audio)
        peak = float(np.max(np.abs(audio)))
        if not np.isfinite(peak) or peak <= 0:
            raise RuntimeError("synthesised audio is silent or not finite")
        return (audio * (rng.uniform(0.5, 0.9) / peak)).astype(np.float32)


def _filter_from_rest(sos: np.ndarray, rows: np.ndarray) -> None:
    """Filter each row of ``rows`` (C-contiguous, float64) in place, starting from rest.

    The cascade makes ~200 such small calls per second of audio; scipy's public ``sosfilt``
    spends most of each call on argument handling, so its compiled kernel is used directly
    when this scipy has it (the public function is the fallback and gives the same numbers).
    """
    if _SOSFILT_KERNEL is None:
        rows[:] = signal.sosfilt(sos, rows, axis=-1)
        return
    _SOSFILT_KERNEL(np.ascontiguousarray(sos), rows, np.zeros((rows.shape[0], sos.shape[0], 2)))


def _resonator_coefficients(freq: np.ndarray, bandwidth: np.ndarray, fs: int) -> tuple[np.ndarray, ...]:
    """Klatt resonator y = A x + B y[-1] + C y[-2] with unit gain at DC."""
    c = -np.exp(-2.0 * np.pi * bandwidth / fs)
    b = 2.0 * np.exp(-np.pi * bandwidth / fs) * np.cos(2.0 * np.pi * freq / fs)
    a = 1.0 - b - c
    return a, b, c


def _resonator_sections(freq: np.ndarray, bandwidth: np.ndarray, fs: int) -> np.ndarray:
    a, b, c = _resonator_coefficients(freq, bandwidth, fs)
    zeros = np.zeros_like(a)
    return np.stack([a, zeros, zeros, np.ones_like(a), -b, -c], axis=1)


def _notch_sections(freq: np.ndarray, pole_width: np.ndarray, fs: int) -> np.ndarray:
    """Resonator (width ``pole_width``) then anti-resonator (width ``NASAL_ZERO_WIDTH_HZ``) at
    the same frequency: unit gain at DC, a notch when the pole is wider, identity when equal."""
    ap, bp, cp = _resonator_coefficients(freq, pole_width, fs)
    az, bz, cz = _resonator_coefficients(freq, np.full_like(freq, NASAL_ZERO_WIDTH_HZ), fs)
    return np.stack([ap / az, -ap * bz / az, -ap * cz / az, np.ones_like(ap), -bp, -cp], axis=1)


@lru_cache(maxsize=4096)
def _frication_filter(consonant: str, vowel: str, scale: float, sibilant_hz: float,
                      fs: int) -> tuple[np.ndarray, float]:
    """Band-pass for a burst or /s/ and the gain that gives unit RMS for unit white noise."""
    place = PLACE[consonant]
    if consonant == "s":
        low, high = sibilant_hz, FRICATION_BANDS["s"][1]
    elif place == "velar":
        centre = VELAR_ONSET[vowel][1]
        low, high = 0.75 * centre, 1.35 * centre
    else:
        low, high = FRICATION_BANDS[place]
    top = 0.49 * fs
    low, high = min(low * scale, 0.8 * top), min(high * scale, top)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
    gain = 1.0 / np.sqrt(2.0 * (high - low) / fs)
    return sos, float(gain)


__all__ = ["FormantSynth", "Voice", "sample_voice"]
