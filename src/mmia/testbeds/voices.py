"""Synthetic voices: one consistent timbre per identity, a different utterance per clip.

A voice is a pitch (f0), a formant scale (vocal-tract length), a spectral tilt, a vibrato
rate and depth, and a breathiness. Each clip of it says a fresh sequence of vowels with its
own pitch contour and loudness, by additive synthesis: harmonics of the time-varying f0
weighted by a formant envelope. Pure numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Formant frequencies (Hz) of five vowels for an average adult vocal tract.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]])


@dataclass(frozen=True)
class Voice:
    f0: float
    formant_scale: float
    tilt: float  # dB per octave
    vibrato_rate: float
    vibrato_depth: float  # fraction of f0
    breath: float
    bandwidth: float  # formant bandwidth (Hz)

    def to_dict(self) -> dict:
        return asdict(self)


def random_voice(rng: np.random.Generator) -> Voice:
    low = rng.random() < 0.5
    return Voice(
        f0=float(rng.uniform(85, 150) if low else rng.uniform(160, 280)),
        formant_scale=float(rng.uniform(0.82, 1.22)),
        tilt=float(rng.uniform(-14, -4)),
        vibrato_rate=float(rng.uniform(3.5, 7.5)),
        vibrato_depth=float(rng.uniform(0.0, 0.05)),
        breath=float(rng.uniform(0.0, 0.25)),
        bandwidth=float(rng.uniform(60, 160)),
    )


def speak(voice: Voice, rng: np.random.Generator, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """One clip (float32 in [-1, 1]) of the voice saying a random vowel sequence."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    contour = 1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 2 * np.pi))
    vibrato = 1 + voice.vibrato_depth * np.sin(2 * np.pi * voice.vibrato_rate * t)
    f0 = voice.f0 * rng.uniform(0.95, 1.05) * contour * vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sr
    # Vowel segments with smooth transitions.
    n_seg = int(rng.integers(2, 5))
    seq = VOWELS[rng.integers(len(VOWELS), size=n_seg)] * voice.formant_scale
    pos = np.linspace(0, n_seg - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_seg - 1)
    frac = np.clip((pos - lo - 0.35) / 0.3, 0, 1)[:, None]
    formants = seq[lo] * (1 - frac) + seq[hi] * frac  # (n, 3)
    out = np.zeros(n)
    k_max = int(min(sr / 2 - 200, 7600) // voice.f0)
    for k in range(1, k_max + 1):
        fk = k * f0
        env = sum(np.exp(-0.5 * ((fk - formants[:, j]) / (voice.bandwidth * (1 + j))) ** 2) * (1.0, 0.6, 0.3)[j]
                  for j in range(3))
        gain = 10 ** (voice.tilt * np.log2(k) / 20)
        out += gain * (0.05 + env) * np.sin(k * phase) * (fk < sr / 2 - 100)
    noise = rng.normal(0, 1, n)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")
    out = out / (np.abs(out).max() + 1e-9) + voice.breath * noise * 0.3
    # Syllable-like loudness envelope with attack and release.
    env = 0.6 + 0.4 * np.sin(np.pi * np.clip(pos - lo, 0, 1)) ** 2
    ramp = np.minimum(1, np.minimum(t, seconds - t) / 0.03)
    out = out * env * ramp * rng.uniform(0.5, 0.9)
    return (out / max(1.0, np.abs(out).max())).astype(np.float32)


SOUNDS = ("beep", "hum", "chirp", "noise", "clicks")
PITCHES = {"low": 220.0, "mid": 660.0, "high": 1800.0}


def generic_sound(rng: np.random.Generator, sr: int = 16000, seconds: float = 1.0) -> tuple[np.ndarray, str]:
    """A non-voice sound and its caption."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    kind = SOUNDS[rng.integers(len(SOUNDS))]
    pitch = list(PITCHES)[rng.integers(len(PITCHES))]
    f = PITCHES[pitch] * rng.uniform(0.9, 1.1)
    if kind == "beep":
        x = np.sin(2 * np.pi * f * t) * ((t * 4) % 1 < 0.5)
    elif kind == "hum":
        x = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 5))
    elif kind == "chirp":
        x = np.sin(2 * np.pi * f * (t + 1.5 * t**2))
    elif kind == "noise":
        x = rng.normal(0, 1, n)
        x = np.convolve(x, np.ones(int(8000 / f) + 1), mode="same")
    else:
        x = np.zeros(n)
        x[(rng.random(n) < f / sr / 20)] = 1.0
        x = np.convolve(x, np.hanning(40), mode="same")
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.4, 0.9)
    return x.astype(np.float32), f"a {pitch} {kind}"
