"""Feature engineering (DP-3): scikit-learn transforms declared as data, fitted on one dataset version,
stored as an artifact (a "transformer") and applied unchanged to other versions.

A transformer is `extract` steps, each turning record fields into a block of columns (the blocks side by
side form the feature matrix), then `refine` steps applied in order to the whole matrix (selection and
transformation). The output records are the input records with the vector in `output_field`.

| step | kind | does (scikit-learn) |
|---|---|---|
| `tfidf` | extraction | `TfidfVectorizer` over a text field |
| `hashing` | extraction | `HashingVectorizer` over a text field (stateless, any vocabulary) |
| `numeric` | extraction | numeric fields as they are (missing: 0) |
| `one_hot` | extraction | `OneHotEncoder` over categorical fields (unseen categories: all zeros) |
| `image_embedding` | extraction | the image a field names, through an image encoder of the registry |
| `scale` | transformation | `StandardScaler`, `MinMaxScaler` or `RobustScaler` |
| `pca` | transformation | `PCA` (or `TruncatedSVD` on sparse input) to `components` dimensions |
| `variance` | selection | `VarianceThreshold` |
| `k_best` | selection | `SelectKBest` by `f_classif`, `chi2` or `mutual_info_classif` against `label` |
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_contracts.processing import FieldName, InputFile, MediaInput, RaySettings
from forge_contracts.registered import ModelFiles, RegisteredModel


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tfidf(_Step):
    step: Literal["tfidf"]
    field: FieldName = "text"
    max_features: int = Field(default=1000, ge=1, le=1_000_000)
    ngram_max: int = Field(default=1, ge=1, le=5, description="Word n-grams from 1 to this.")
    min_df: int = Field(default=1, ge=1, description="Terms in fewer records are left out.")
    lowercase: bool = True


class Hashing(_Step):
    step: Literal["hashing"]
    field: FieldName = "text"
    features: int = Field(default=1024, ge=2, le=2**22)
    ngram_max: int = Field(default=1, ge=1, le=5)
    lowercase: bool = True


class Numeric(_Step):
    step: Literal["numeric"]
    fields: list[FieldName] = Field(min_length=1, max_length=1000)


class OneHot(_Step):
    step: Literal["one_hot"]
    fields: list[FieldName] = Field(min_length=1, max_length=100)
    max_categories: int | None = Field(
        default=100, ge=2, le=100_000, description="Per field; rarer ones pool."
    )


class Scale(_Step):
    step: Literal["scale"]
    method: Literal["standard", "minmax", "robust"] = "standard"


class Pca(_Step):
    step: Literal["pca"]
    components: int = Field(ge=1, le=10_000)


class Variance(_Step):
    step: Literal["variance"]
    threshold: float = Field(default=0.0, ge=0)


class KBest(_Step):
    step: Literal["k_best"]
    k: int = Field(ge=1, le=1_000_000)
    score: Literal["f_classif", "chi2", "mutual_info"] = "f_classif"


class ImageEmbedding(_Step):
    """The image file `field` names (a file of the version) through `model`, an image encoder of the
    registry (a ViT, ResNet, CLIP vision tower ... with its image processor): its pooled output (or the
    mean of its last hidden states) as a block of columns. Nothing is fitted: applying the transformer
    runs the same registered model again. A record without an image gets zeros."""

    step: Literal["image_embedding"]
    field: FieldName = "image"
    model: RegisteredModel
    batch_size: int = Field(default=16, ge=1, le=1024)


Extract = Annotated[Tfidf | Hashing | Numeric | OneHot | ImageEmbedding, Field(discriminator="step")]
Refine = Annotated[Scale | Pca | Variance | KBest, Field(discriminator="step")]


class TransformerSpec(_Step):
    """What to fit."""

    extract: list[Extract] = Field(min_length=1, max_length=50)
    refine: list[Refine] = Field(default_factory=list, max_length=20)
    label: FieldName | None = Field(
        default=None, description="The target field supervised selection scores against."
    )
    output_field: FieldName = Field(default="features", description="Where each record's vector goes.")
    fit_records: int = Field(
        default=1_000_000,
        ge=1,
        le=100_000_000,
        description="Fit on at most this many records (the first ones).",
    )

    @model_validator(mode="after")
    def _label_for_k_best(self) -> TransformerSpec:
        if any(isinstance(step, KBest) for step in self.refine) and self.label is None:
            raise ValueError("k_best scores features against a label: give `label`")
        if any(isinstance(step, KBest) and step.score == "chi2" for step in self.refine) and any(
            isinstance(step, Scale) and step.method == "standard" for step in self.refine
        ):
            raise ValueError("chi2 needs non-negative features: use minmax scaling (or none) before k_best")
        return self


class FeaturesSpec(_Step):
    """What the dataset service hands the data runtime for feature engineering (`python -m
    forge_data_runtime features`): fit `transformer` (its artifact written to `output_dir`), or apply the
    fitted one at `artifact_url` (checked against `artifact_sha256`)."""

    mode: Literal["fit", "apply"]
    transformer: TransformerSpec
    artifact_url: str | None = None
    artifact_sha256: str | None = None
    inputs: list[InputFile] = Field(min_length=1)
    output_dir: str
    work_dir: str
    media: dict[str, MediaInput] = Field(
        default_factory=dict, description="Images the embeddings read, by name."
    )
    models: dict[str, ModelFiles] = Field(default_factory=dict, description="Registered models, by key.")
    ray: RaySettings
    shard_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    batch_rows: int = Field(default=1024, ge=1, le=1_000_000)


def models_read(spec: TransformerSpec) -> list[RegisteredModel]:
    """The registry's models the transformer runs, each once."""
    found: dict[str, RegisteredModel] = {}
    for step in spec.extract:
        if isinstance(step, ImageEmbedding):
            found.setdefault(step.model.key, step.model)
    return list(found.values())


def fields_read(spec: TransformerSpec) -> list[str]:
    names: list[str] = []
    for step in spec.extract:
        names += [step.field] if isinstance(step, Tfidf | Hashing | ImageEmbedding) else list(step.fields)
    return names + ([spec.label] if spec.label else [])


__all__ = [
    "Extract",
    "FeaturesSpec",
    "Hashing",
    "ImageEmbedding",
    "KBest",
    "Numeric",
    "OneHot",
    "Pca",
    "Refine",
    "Scale",
    "Tfidf",
    "TransformerSpec",
    "Variance",
    "fields_read",
    "models_read",
]
