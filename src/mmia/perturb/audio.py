"""Audio neighbours: inserted silences, gain, noise and time shift on mono float32 waveforms."""

from __future__ import annotations

import numpy as np

AUDIO_TECHNIQUES = ("silence", "gain", "noise", "shift")


def insert_silences(wave: np.ndarray, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """One to three silences of 20-100 ms inserted at random points (the clip gets longer)."""
    n = int(rng.integers(1, 4))
    points = np.sort(rng.integers(0, len(wave) + 1, size=n))
    pieces, last = [], 0
    for p in points:
        pieces.append(wave[last:p])
        pieces.append(np.zeros(int(rng.integers(int(0.02 * sr), int(0.1 * sr) + 1)), dtype=np.float32))
        last = p
    pieces.append(wave[last:])
    return np.concatenate(pieces).astype(np.float32)


def gain(wave: np.ndarray, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Volume change of +-(1..6) dB, clipped to [-1, 1]."""
    db = float(rng.uniform(1, 6)) * (1 if rng.random() < 0.5 else -1)
    return np.clip(wave * 10 ** (db / 20), -1, 1).astype(np.float32)


def add_noise(wave: np.ndarray, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """White noise at 25-40 dB below the clip's RMS (an absolute floor for silent clips)."""
    rms = max(float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))), 1e-3)
    snr = float(rng.uniform(25, 40))
    sigma = rms / 10 ** (snr / 20)
    return np.clip(wave + rng.normal(0, sigma, size=wave.shape), -1, 1).astype(np.float32)


def time_shift(wave: np.ndarray, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Shift by 10-100 ms either way, padding with silence (length kept)."""
    k = min(int(rng.integers(int(0.01 * sr), int(0.1 * sr) + 1)), max(len(wave) - 1, 0))
    out = np.zeros_like(wave, dtype=np.float32)
    if k == 0:
        return wave.astype(np.float32).copy()
    if rng.random() < 0.5:
        out[k:] = wave[:-k]
    else:
        out[:-k] = wave[k:]
    return out


_FUNCS = {"silence": insert_silences, "gain": gain, "noise": add_noise, "shift": time_shift}


def perturb_audio(wave: np.ndarray, technique: str, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    try:
        fn = _FUNCS[technique]
    except KeyError:
        raise ValueError(f"unknown audio technique {technique!r}; one of {AUDIO_TECHNIQUES}") from None
    return fn(np.asarray(wave, dtype=np.float32), rng, sr)
