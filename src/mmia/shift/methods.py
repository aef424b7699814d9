"""The blind methods, registered in mmia's method registry (family "blind").

Each entry point maps (ShiftInputs, config) to a `Plan`: per-sample inputs plus a factory of the
fold-fitted estimator. The protocol (`mmia.shift.protocol`) does the fitting, fold by fold.
"""

from __future__ import annotations

import scipy.sparse as sp
from pydantic import BaseModel, Field

from mmia.attacks.registry import register_attack
from mmia.shift.inputs import ShiftInputs
from mmia.shift.protocol import Plan

BLIND_MIA = ("Das, Zhang, Tramèr. Blind Baselines Beat Membership Inference Attacks for Foundation Models. "
             "arXiv 2406.16201 (2024)")
FIMMIA = ("FiMMIA: scaling semantic perturbation-based membership inference across modalities, "
          "blind multimodal baselines. arXiv 2512.02786")

PREFIX = "blind:"
# Sentence embedding on CPU costs about a millisecond or more per text; above this many rows it
# runs only when asked for by name (see docs/shift.md for the measured cost).
EMBEDDING_DEFAULT_MAX_ROWS = 5000


class BagOfWordsConfig(BaseModel):
    char_ngram_max: int = Field(5, ge=1, le=8, description="character n-grams 1..this")
    word_ngram_max: int = Field(2, ge=1, le=4, description="word n-grams 1..this")
    nb_alpha: float = Field(0.3, gt=0)
    sgd_alpha: float = Field(2e-5, gt=0)
    inner_folds: int = Field(3, ge=2)
    greedy_steps: int = Field(1500, ge=0, description="greedy n-gram scorer in the stack (0: leave it out)")
    format_features: bool = Field(True, description="gradient boosting on caption format features in the stack")
    format_iter: int = Field(200, ge=10, description="boosting iterations of the format model")


class GreedyNgramConfig(BaseModel):
    analyzer: str = Field("char", pattern="^(char|word)$")
    ngram_max: int = Field(5, ge=1, le=8)
    min_count: int = Field(2, ge=1, description="an n-gram must occur in this many training documents")
    min_ratio: float = Field(1.0, ge=0, description="stop when the best covered/(other+1) ratio falls to this")
    max_steps: int = Field(5000, ge=1)


class TextFormatConfig(BaseModel):
    max_iter: int = Field(200, ge=10, description="boosting iterations")


class DateConfig(BaseModel):
    max_iter: int = Field(100, ge=10, description="boosting iterations")


class EmbeddingConfig(BaseModel):
    model_dir: str | None = Field(None, description="a sentence-transformers directory (default all-MiniLM-L6-v2)")
    C: float = Field(1.0, gt=0)


class DenseConfig(BaseModel):
    pca_variance: float | None = Field(0.95, gt=0, le=1, description="PCA keeps this share of variance")
    C: float = Field(1.0, gt=0)


class BovwConfig(BaseModel):
    n_words: int = Field(64, ge=2, description="visual vocabulary size (k-means, fit in fold)")
    C: float = Field(1.0, gt=0)


class JointConfig(BaseModel):
    text_components: int = Field(64, ge=2, description="SVD components of the text TF-IDF (fit in fold)")
    C: float = Field(1.0, gt=0)


def text_ngrams(inputs: ShiftInputs, char_max: int, word_max: int):
    parts = [inputs.ngrams("char", 1, char_max)]
    if word_max:
        parts.append(inputs.ngrams("word", 1, word_max))
    return sp.hstack(parts).tocsr()


@register_attack("blind:bag_of_words", family="blind", paper=BLIND_MIA, config=BagOfWordsConfig,
                 modalities=("text",), needs_labels=True, tags=("default",))
def bag_of_words(inputs: ShiftInputs, config: BagOfWordsConfig) -> Plan:
    """Bag of words (Das, Zhang, Tramèr 2024, arXiv 2406.16201): TF-IDF n-grams, stacked NB, logistic, greedy."""
    from mmia.shift.models import sparse_text_stack

    X = text_ngrams(inputs, config.char_ngram_max, config.word_ngram_max)
    features = f"hashed char 1-{config.char_ngram_max} + word 1-{config.word_ngram_max} grams"
    n_format = 0
    if config.format_features:
        # Dense format columns first: the stack's models slice them off by position.
        X = sp.hstack([sp.csr_matrix(inputs.text_format), X]).tocsr()
        n_format = inputs.text_format.shape[1]
        features += f" + {n_format} caption format features"

    def make():
        return sparse_text_stack(inputs.seed, config.nb_alpha, config.sgd_alpha, config.inner_folds,
                                 config.greedy_steps, n_format, config.format_iter)

    return Plan(X, make, params={"features": features})


@register_attack("blind:greedy_ngrams", family="blind", paper=BLIND_MIA, config=GreedyNgramConfig,
                 modalities=("text",), needs_labels=True, tags=("default",))
def greedy_ngrams(inputs: ShiftInputs, config: GreedyNgramConfig) -> Plan:
    """Greedy selection of n-grams found in one class only (Das, Zhang, Tramèr 2024, arXiv 2406.16201)."""
    from mmia.shift.ngrams import GreedyNgramClassifier

    X = inputs.ngrams(config.analyzer, 1, config.ngram_max)
    return Plan(X, lambda: GreedyNgramClassifier(config.min_count, config.min_ratio, config.max_steps),
                params={"features": f"hashed {config.analyzer} 1-{config.ngram_max} grams"})


@register_attack("blind:text_format", family="blind", paper=BLIND_MIA, config=TextFormatConfig,
                 modalities=("text",), needs_labels=True, tags=("default",))
def text_format(inputs: ShiftInputs, config: TextFormatConfig) -> Plan:
    """Gradient boosting on caption format features (length, tokens, digits, case, punctuation,
    URLs, years): the form-level side of the bag-of-words baseline of Das, Zhang, Tramèr 2024
    (arXiv 2406.16201)."""
    from mmia.shift.models import format_classifier

    return Plan(inputs.text_format, lambda: format_classifier(inputs.seed, config.max_iter),
                params={"features": int(inputs.text_format.shape[1])})


@register_attack("blind:date_detection", family="blind", paper=BLIND_MIA, config=DateConfig,
                 modalities=("text",), needs_labels=True, tags=("default",))
def date_detection(inputs: ShiftInputs, config: DateConfig) -> Plan:
    """Date detection: years and dates the text mentions (Das, Zhang, Tramèr 2024, arXiv 2406.16201)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    seed = inputs.seed % 2**32
    return Plan(inputs.dates, lambda: HistGradientBoostingClassifier(max_iter=config.max_iter, random_state=seed))


@register_attack("blind:sentence_embedding", family="blind", paper=BLIND_MIA, config=EmbeddingConfig,
                 modalities=("text",), needs_labels=True, tags=("default-small",))
def sentence_embedding(inputs: ShiftInputs, config: EmbeddingConfig) -> Plan:
    """Logistic regression on frozen sentence embeddings (all-MiniLM-L6-v2), a semantic blind
    baseline in the spirit of Das, Zhang, Tramèr 2024 (arXiv 2406.16201)."""
    from mmia.shift.models import dense_classifier

    E = inputs.embeddings(config.model_dir)
    return Plan(E, lambda: dense_classifier(None, config.C, inputs.seed), params={"dim": int(E.shape[1])})


def _image_block(name: str, inputs: ShiftInputs, config: DenseConfig) -> Plan:
    from mmia.shift.image_features import FEATURE_BLOCKS
    from mmia.shift.models import dense_classifier

    start, stop = FEATURE_BLOCKS[name] if name in FEATURE_BLOCKS else (0, None)
    X = inputs.image_global
    return Plan(X, lambda: dense_classifier(config.pca_variance, config.C, inputs.seed, start, stop))


@register_attack("blind:colour_histogram", family="blind", paper=FIMMIA, config=DenseConfig,
                 modalities=("image", "video"), needs_labels=True, tags=("default",))
def colour_histogram(inputs: ShiftInputs, config: DenseConfig) -> Plan:
    """RGB and HSV colour histograms, scaled, PCA, logistic regression (FiMMIA blind baselines, arXiv 2512.02786)."""
    return _image_block("colour_histogram", inputs, config)


@register_attack("blind:dct", family="blind", paper=FIMMIA, config=DenseConfig,
                 modalities=("image", "video"), needs_labels=True, tags=("default",))
def dct(inputs: ShiftInputs, config: DenseConfig) -> Plan:
    """Low-frequency DCT coefficients of the grey image (FiMMIA blind baselines, arXiv 2512.02786)."""
    return _image_block("dct", inputs, config)


@register_attack("blind:lbp", family="blind", paper=FIMMIA, config=DenseConfig,
                 modalities=("image", "video"), needs_labels=True, tags=("default",))
def lbp(inputs: ShiftInputs, config: DenseConfig) -> Plan:
    """Local binary pattern texture histograms (FiMMIA blind baselines, arXiv 2512.02786)."""
    return _image_block("lbp", inputs, config)


@register_attack("blind:image_features", family="blind", paper=FIMMIA, config=DenseConfig,
                 modalities=("image", "video"), needs_labels=True, tags=("default",))
def image_features(inputs: ShiftInputs, config: DenseConfig) -> Plan:
    """Colour histograms, DCT and LBP together, scaled and PCA-reduced (FiMMIA, arXiv 2512.02786)."""
    return _image_block("all", inputs, config)


@register_attack("blind:bag_of_visual_words", family="blind", paper=FIMMIA, config=BovwConfig,
                 modalities=("image", "video"), needs_labels=True, tags=("default",))
def bag_of_visual_words(inputs: ShiftInputs, config: BovwConfig) -> Plan:
    """Bag of visual words: DAISY descriptors, k-means vocabulary fit in fold (FiMMIA, arXiv 2512.02786)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mmia.shift.image_features import BagOfVisualWords

    seed = inputs.seed

    def make():
        return Pipeline([
            ("words", BagOfVisualWords(config.n_words, seed=seed % 2**32)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=config.C, max_iter=2000, random_state=seed % 2**32)),
        ])

    return Plan(inputs.image_descriptors, make)


@register_attack("blind:audio_features", family="blind", paper=FIMMIA, config=DenseConfig,
                 modalities=("audio",), needs_labels=True, tags=("default",))
def audio_features(inputs: ShiftInputs, config: DenseConfig) -> Plan:
    """MFCC, spectral, chroma and tempo statistics, scaled, PCA, logistic (FiMMIA, arXiv 2512.02786)."""
    from mmia.shift.models import dense_classifier

    return Plan(inputs.audio, lambda: dense_classifier(config.pca_variance, config.C, inputs.seed))


@register_attack("blind:joint", family="blind", paper=FIMMIA, config=JointConfig,
                 modalities=("image", "video", "audio"), needs_labels=True, tags=("default", "joint"))
def joint(inputs: ShiftInputs, config: JointConfig) -> Plan:
    """Text n-grams (TF-IDF, SVD) and media features together, for multimodal rows (FiMMIA, arXiv 2512.02786)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmia.shift.models import SafeSVD

    media = inputs.media_matrix()
    frame = pd.DataFrame(media, columns=[f"m{i}" for i in range(media.shape[1])])
    frame.insert(0, "text", inputs.texts)
    media_cols = list(frame.columns[1:])
    seed = inputs.seed % 2**32

    def make():
        text = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
            SafeSVD(config.text_components, seed),
            StandardScaler(),
        )
        cols = ColumnTransformer([("text", text, "text"), ("media", StandardScaler(), media_cols)])
        return Pipeline([("cols", cols), ("clf", LogisticRegression(C=config.C, max_iter=2000, random_state=seed))])

    return Plan(frame, make, params={"media": inputs.media_kind})


def method_applies(spec, inputs: ShiftInputs) -> bool:
    mods = set(inputs.modalities)
    if "joint" in spec.tags:
        return "text" in mods and bool(mods & {"image", "video", "audio"})
    return bool(set(spec.modalities) & mods)


def default_methods(inputs: ShiftInputs) -> list[str]:
    """Methods run when none are named: those that apply to the columns present."""
    from mmia.attacks.registry import list_attacks

    names = []
    for spec in list_attacks(family="blind"):
        if not method_applies(spec, inputs):
            continue
        if "default-small" in spec.tags and len(inputs.samples) > EMBEDDING_DEFAULT_MAX_ROWS:
            continue
        names.append(spec.name)
    return names
