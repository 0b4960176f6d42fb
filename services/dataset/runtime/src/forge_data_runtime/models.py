"""The registry's models inside the Ray tasks: downloaded once per machine through the spec's pre-signed
links (a lock makes the workers of one machine share one copy) and loaded once per worker process."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from forge_contracts.registered import ModelFiles, RegisteredModel

from forge_data_runtime.links import open_link

MAX_MODEL_BYTES = 64 * 1024**3


class ModelMissing(Exception):
    """The spec does not carry a model an operator names (the service resolves every one it names)."""


def local_copy(key: str, model: ModelFiles, root: Path) -> Path:
    """The model's files in a folder under `root` (downloaded by the first worker that asks)."""
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:24]
    done = folder / ".complete"
    if done.exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        for name, url in model.files.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"{key}: a file name leaves the model's folder: {name}")
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(open_link(url)) as answer, target.open("wb") as out:
                shutil.copyfileobj(answer, out, 8 * 1024 * 1024)
        done.touch()
    return folder


class Models:
    """The run's models by `RegisteredModel.key`, each downloaded and loaded on first use."""

    def __init__(self, files: dict[str, ModelFiles], root: str | None) -> None:
        self.files = files
        self.root = (
            Path(root) / "models"
            if root and Path(root).is_dir()
            else Path(tempfile.gettempdir()) / "forge-models"
        )
        self.loaded: dict[str, Any] = {}

    def translator(self, model: RegisteredModel) -> Translator:
        found: Translator = self._load(model, Translator)
        return found

    def image_encoder(self, model: RegisteredModel) -> ImageEncoder:
        found: ImageEncoder = self._load(model, ImageEncoder)
        return found

    def _load(self, model: RegisteredModel, kind: Any) -> Any:
        if model.key not in self.loaded:
            if model.key not in self.files:
                raise ModelMissing(f"{model} is not part of this run")
            self.loaded[model.key] = kind(local_copy(model.key, self.files[model.key], self.root))
        return self.loaded[model.key]


class ImageEncoder:
    """An image model (ViT, ResNet, CLIP vision, ...) with its image processor, on the CPU: one vector per
    image, its pooled output or else the mean of its last hidden states."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        torch.set_num_threads(1)
        self.processor = AutoImageProcessor.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder)
        self.model.eval()

    def __call__(self, images: list[Any]) -> Any:
        import numpy as np
        import torch

        inputs = self.processor(images=images, return_tensors="pt")
        with torch.no_grad():
            outputs = self.model(**inputs)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            pooled = getattr(outputs, "image_embeds", None)
        if pooled is None:
            pooled = outputs.last_hidden_state.mean(dim=1)
        return np.asarray(pooled.reshape(pooled.shape[0], -1).float().numpy(), dtype=np.float64)


class Translator:
    """A sequence-to-sequence model (Marian, T5, BART, ...) with its tokenizer, on the CPU."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        torch.set_num_threads(1)  # one Ray task per core
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(folder)
        self.model.eval()

    def __call__(self, text: str, *, max_new_tokens: int, sample: bool, temperature: float, seed: int) -> str:
        import torch

        torch.manual_seed(seed)
        limit = min(int(getattr(self.tokenizer, "model_max_length", 512) or 512), 4096)
        inputs = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "num_beams": 1, "do_sample": sample}
        if sample:
            options["temperature"] = temperature
        with torch.no_grad():
            generated = self.model.generate(**inputs, **options)
        return str(self.tokenizer.decode(generated[0], skip_special_tokens=True)).strip()


__all__ = ["ImageEncoder", "ModelMissing", "Models", "Translator", "local_copy"]
