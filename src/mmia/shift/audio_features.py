"""Hand-made audio features for the blind checks (FiMMIA's multimodal extension of Blind-MIA).

`audio_features` is a pure function of one mono waveform: MFCC, spectral, chroma and tempo
statistics (means and standard deviations over frames), with librosa. Nothing is fitted here.
"""

from __future__ import annotations

import numpy as np

SAMPLING_RATE = 16000


def _stats(m: np.ndarray) -> np.ndarray:
    m = np.atleast_2d(m)
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


def audio_features(y: np.ndarray, sr: int = SAMPLING_RATE) -> np.ndarray:
    """MFCC (20), spectral (centroid, bandwidth, roll-off, flatness, contrast, zero crossings,
    RMS), chroma (12) statistics, tempo and duration of a mono waveform, as one vector."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    duration = len(y) / sr
    if len(y) < 2048:  # librosa's frames need some signal: pad very short clips with silence
        y = np.pad(y, (0, 2048 - len(y)))
    S = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    mel = librosa.feature.melspectrogram(S=S**2, sr=sr, n_mels=64)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel + 1e-10), n_mfcc=20)
    blocks = [
        _stats(mfcc),
        _stats(librosa.feature.spectral_centroid(S=S, sr=sr)),
        _stats(librosa.feature.spectral_bandwidth(S=S, sr=sr)),
        _stats(librosa.feature.spectral_rolloff(S=S, sr=sr)),
        _stats(librosa.feature.spectral_flatness(S=S)),
        _stats(librosa.feature.spectral_contrast(S=S, sr=sr, n_bands=4)),
        _stats(librosa.feature.zero_crossing_rate(y, frame_length=1024, hop_length=256)),
        _stats(librosa.feature.rms(S=S, frame_length=1024)),
        _stats(librosa.feature.chroma_stft(S=S**2, sr=sr, n_fft=1024)),
    ]
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel + 1e-10), sr=sr, hop_length=256)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=256)
    blocks.append(np.array([float(np.atleast_1d(tempo)[0]), duration]))
    out = np.concatenate(blocks).astype(np.float64)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
