"""Public inference API: score any image + prompt with a trained checkpoint.

    from aesthetic_platform.scoring import Scorer
    scorer = Scorer.from_pretrained("path/to/checkpoint")
    scorer.score(["a.png", pil_image], ["prompt a", "prompt b"])  # [{dim: logit}, ...]

Images may have any size and aspect ratio: each is resized keeping its ratio to the
model's patch budget (never cropped or letterboxed). Internally each chunk of
``batch_size`` images is packed several images to a row of tokens (``model/packing.py``:
own position field per image, block-diagonal attention), so batching adds almost no
padding and a score never depends on which other images were scored with it. Scores are
relative logits: larger is better.

A call with many images is cheaper per image than one call each: the images are decoded
and resized on ``prepare_workers`` threads, the next chunk while one is scored (Pillow and
NumPy release the GIL; each thread holds at most one full decode at a time, and a call holds
at most two chunks of prepared images, however long its list), and each distinct prompt goes
through the text tower once per call, however many images share it (best of N: one prompt,
N images).

Bad input raises ``ValueError`` subclasses that name the position of the culprit:
``ImageInputError`` (``aesthetic_platform.images``: missing, unreadable, over
``max_image_pixels``) and ``PromptError`` (not a string, empty or whitespace only, over
``MAX_PROMPT_CHARS`` characters, or over the model's ``text.max_length`` tokens, which
would otherwise be cut off silently). ``score_readable`` scores what it can instead and
returns the image errors beside the scores: one truncated file in a day's ten thousand
images does not cost the rest. Both take ``progress(done, total)``, called after each chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from aesthetic_platform.images import MAX_IMAGE_PIXELS, ImageInputError
from aesthetic_platform.model.batching import budget_pixels, prepare_image
from aesthetic_platform.model.packing import default_token_budget, pack_images
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.model.text import token_counts
from aesthetic_platform.prompts.records import MAX_PROMPT_CHARS, PromptError

__all__ = ["DEFAULT_BATCH_SIZE", "ImageInputError", "PromptError", "ScoredImages", "Scorer"]

DEFAULT_BATCH_SIZE = 16
DEFAULT_PREPARE_WORKERS = min(4, os.cpu_count() or 1)
ImageInput = str | Path | bytes | Image.Image
#: ``progress(done, total)``: images finished so far (scored or skipped) out of the call's total.
ProgressCallback = Callable[[int, int], None]


@dataclass
class ScoredImages:
    """What ``Scorer.score_readable`` got: ``scores`` by input index for every image it could read, and for each
    one it could not, the ``ImageInputError`` that says why (its ``index`` is the same input index)."""

    scores: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: dict[int, ImageInputError] = field(default_factory=dict)


class Scorer:
    """A loaded model in eval mode; load once, call ``score`` many times."""

    def __init__(
        self,
        model: AestheticScorer,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        prepare_workers: int = DEFAULT_PREPARE_WORKERS,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if prepare_workers <= 0:
            raise ValueError(f"prepare_workers must be positive, got {prepare_workers}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_image_pixels = max_image_pixels
        self.prepare_workers = prepare_workers

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Scorer:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(AestheticScorer.from_pretrained(path), device=device, batch_size=batch_size)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self.model.dimensions

    @property
    def input_pixels(self) -> int:
        """Most pixels an image keeps after the aspect-true resize: decodes are reduced towards it."""
        return budget_pixels(self.model.preprocess.patch_size, self.model.config.image.patch_budget)

    @property
    def max_prompt_tokens(self) -> int:
        return self.model.config.text.max_length

    def check_prompts(self, prompts: Sequence[str]) -> list[str]:
        """The prompts unchanged, or ``PromptError`` for the first one that cannot be scored as written."""
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise PromptError(index, f"must be a string, got {type(prompt).__name__}")
            if not prompt.strip():
                raise PromptError(index, "empty or whitespace only")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise PromptError(index, f"{len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
        tokens = token_counts(self.model.tokenizer, prompts)
        for index, prompt in enumerate(prompts):
            if tokens[prompt] > self.max_prompt_tokens:
                raise PromptError(index, f"{tokens[prompt]} tokens; this model reads at most {self.max_prompt_tokens} tokens, shorten it")
        return list(prompts)

    def score(
        self, images: Sequence[ImageInput] | ImageInput, prompts: Sequence[str] | str, progress: ProgressCallback | None = None
    ) -> list[dict[str, float]]:
        """One ``{dim: logit}`` per image, in input order. A single prompt applies to every image.

        The first image that cannot be read raises its ``ImageInputError``."""
        scored = self._score(images, prompts, skip_unreadable=False, progress=progress)
        return [scored.scores[index] for index in range(len(scored.scores))]  # nothing is skipped: every index is there

    def score_readable(
        self, images: Sequence[ImageInput] | ImageInput, prompts: Sequence[str] | str, progress: ProgressCallback | None = None
    ) -> ScoredImages:
        """Like ``score``, but an image that cannot be read is skipped and its error kept, instead of raising.

        A bad prompt still raises: it is the caller's argument, not one of many inputs."""
        return self._score(images, prompts, skip_unreadable=True, progress=progress)

    @torch.no_grad()
    def _score(
        self, images: Sequence[ImageInput] | ImageInput, prompts: Sequence[str] | str, skip_unreadable: bool,
        progress: ProgressCallback | None,
    ) -> ScoredImages:
        images = [images] if isinstance(images, (str, Path, bytes, Image.Image)) else list(images)
        prompts = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(images):
            raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
        scored = ScoredImages()
        if not images:
            return scored
        self.check_prompts(prompts)
        distinct = list(dict.fromkeys(prompts))
        text_features = self._encode_prompts(distinct)
        row_of = {prompt: row for row, prompt in enumerate(distinct)}
        for indices, tensors, skipped in self._prepared_batches(images, skip_unreadable):
            scored.skipped.update(skipped)
            if indices:
                rows = torch.tensor([row_of[prompts[i]] for i in indices], device=self.device)
                logits = self._score_batch(tensors, text_features[rows])
                for row, index in enumerate(indices):
                    scored.scores[index] = {dim: float(values[row]) for dim, values in logits.items()}
            if progress is not None:
                progress(len(scored.scores) + len(scored.skipped), len(images))
        return scored

    def _prepare(self, image: ImageInput, index: int) -> torch.Tensor:
        try:
            return prepare_image(image, self.model.preprocess, self.model.config.image.patch_budget, self.max_image_pixels)
        except ImageInputError as exc:
            raise exc.at(index) from None

    def _prepared_batches(
        self, images: list[ImageInput], skip_unreadable: bool = False
    ) -> Iterator[tuple[list[int], list[torch.Tensor], dict[int, ImageInputError]]]:
        """(indices, tensors, skipped) per chunk of ``batch_size``, in input order; the next chunk is decoded and
        resized on threads while this one is scored.

        At most two chunks of prepared tensors are held, so a call with ten thousand images costs
        the memory of two batches, not of every image. A bad image raises for the lowest index,
        as one loop over the images would; with ``skip_unreadable`` it is left out of ``indices``
        and its error kept in ``skipped``."""
        chunks = self._batches(len(images))
        workers = min(self.prepare_workers, len(images))
        if workers <= 1:
            for indices in chunks:
                yield self._collected(indices, [self._attempt(images[i], i) for i in indices], skip_unreadable)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorer-prepare") as pool:

            def submit(indices: list[int]) -> list[Future[torch.Tensor | ImageInputError]]:
                return [pool.submit(self._attempt, images[i], i) for i in indices]

            pending = submit(chunks[0])
            for position, indices in enumerate(chunks):
                current, pending = pending, submit(chunks[position + 1]) if position + 1 < len(chunks) else []
                try:
                    yield self._collected(indices, [future.result() for future in current], skip_unreadable)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise

    def _attempt(self, image: ImageInput, index: int) -> torch.Tensor | ImageInputError:
        """The prepared tensor, or the input error (returned, so a chunk can decide whether it raises)."""
        try:
            return self._prepare(image, index)
        except ImageInputError as exc:
            return exc

    @staticmethod
    def _collected(
        indices: list[int], outcomes: list[torch.Tensor | ImageInputError], skip_unreadable: bool
    ) -> tuple[list[int], list[torch.Tensor], dict[int, ImageInputError]]:
        kept, tensors, skipped = [], [], {}
        for index, outcome in zip(indices, outcomes, strict=True):
            if isinstance(outcome, ImageInputError):
                if not skip_unreadable:
                    raise outcome
                skipped[index] = outcome
            else:
                kept.append(index)
                tensors.append(outcome)
        return kept, tensors, skipped

    def _batches(self, count: int) -> list[list[int]]:
        """Indices in input order, in chunks of ``batch_size``: each chunk is packed, whatever its sizes."""
        return [list(range(start, min(start + self.batch_size, count))) for start in range(0, count, self.batch_size)]

    def _encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """[len(prompts), projection_dim]: each distinct prompt through the text tower once, ``batch_size`` at a time."""
        chunks = []
        for start in range(0, len(prompts), self.batch_size):
            text = self.model.tokenize(prompts[start : start + self.batch_size])
            chunks.append(self.model.encode_text(**{name: value.to(self.device) for name, value in text.items()}))
        return torch.cat(chunks)

    def _score_batch(self, tensors: list[torch.Tensor], text_features: torch.Tensor) -> dict[str, torch.Tensor]:
        token_budget = default_token_budget(self.model.config.image.patch_budget)
        images = pack_images(tensors, self.model.preprocess.patch_size, token_budget).to(self.device)
        logits = self.model.score_features(self.model.encode_images(images), text_features)
        return {dim: values.float().cpu() for dim, values in logits.items()}
