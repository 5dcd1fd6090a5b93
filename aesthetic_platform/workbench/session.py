"""The workbench's state: prompts, cursor, generator, recent batches, the prefetched next batch.

One ``Workbench`` serves every browser tab and annotator of a server. Rendering
goes through a single worker thread (a diffusers pipeline must not run twice at
once), which is also where the *next* prompt's batch is rendered while the person
is still judging the current one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aesthetic_platform.atomic import sha256_bytes, write_bytes
from aesthetic_platform.generation import ImageGenerator
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts import dedupe
from aesthetic_platform.prompts.files import parse_prompt_bytes
from aesthetic_platform.schemas import PromptSpec
from aesthetic_platform.workbench.assist import AssistScorer, AssistStatus, ScoreFn, given_scorer, load_champion
from aesthetic_platform.workbench.batches import (
    GeneratedBatch,
    WorkbenchSettings,
    build_workbench_generator,
    check_seeds,
    draw_seeds,
    render_batch,
)
from aesthetic_platform.workbench.selections import (
    Selection,
    Undo,
    append_record,
    last_active_by,
    new_id,
    read_log,
    utc_now,
    workbench_dir,
)

#: prompt_batch-style key the uploaded prompts are filed under
WORKBENCH_BATCH = "workbench"
#: batches kept in memory for submission and undo; older ones must be regenerated
BATCH_MEMORY = 256
#: how an annotator's name may look: it is stored in every record
MAX_ANNOTATOR_LENGTH = 64

GeneratorFactory = Callable[[WorkbenchSettings], ImageGenerator]


class WorkbenchError(Exception):
    """A request the workbench refuses; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotReady(WorkbenchError):
    status = 409


class Invalid(WorkbenchError):
    status = 422


class Unknown(WorkbenchError):
    status = 404


@dataclass(frozen=True)
class PromptView:
    prompt: PromptSpec
    index: int
    total: int


def check_annotator(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_ANNOTATOR_LENGTH:
        raise Invalid(f"annotator must be 1-{MAX_ANNOTATOR_LENGTH} characters, got {name!r}")
    return name


class Workbench:
    def __init__(
        self,
        root: DataRoot,
        annotator: str,
        scorer: AssistScorer | ScoreFn | None | str = "auto",
        generator_factory: GeneratorFactory = build_workbench_generator,
    ) -> None:
        self.root = root
        self.annotator = check_annotator(annotator)
        self._scorer_choice = scorer
        self._factory = generator_factory
        self._lock = threading.RLock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-render")
        self.prompts: list[PromptSpec] = []
        self.prompt_file: str | None = None
        self.cursor = -1
        self.settings: WorkbenchSettings | None = None
        self.generator: ImageGenerator | None = None
        self.scorer: AssistScorer | None = None
        self.assist = AssistStatus(False, "the model is not initialised yet")
        self._epoch = 0  # bumped by upload/init so stale prefetches are never served
        self._batches: OrderedDict[str, GeneratedBatch] = OrderedDict()
        self._prefetch: dict[tuple[int, str], Future[GeneratedBatch]] = {}
        self.current_batch_id: str | None = None

    # --- prompts -------------------------------------------------------------------
    def upload_prompts(self, data: bytes, filename: str) -> list[PromptSpec]:
        """Parse a CSV/JSON prompt file (PromptFileError names file, line and field) and start over at its top."""
        records = parse_prompt_bytes(data, filename)
        specs = dedupe(record.to_spec(WORKBENCH_BATCH, "file") for record in records)
        suffix = filename.rsplit(".", 1)[-1].lower()
        kept = write_bytes(workbench_dir(self.root) / "uploads" / f"{sha256_bytes(data)[:16]}.{suffix}", data)
        with self._lock:
            self.prompts, self.prompt_file, self.cursor = specs, str(kept), -1
            self._reset_batches()
        return specs

    def next_prompt(self) -> PromptView | None:
        """Advance to the next prompt; None once every prompt has been shown."""
        with self._lock:
            if not self.prompts:
                raise NotReady("no prompts loaded: upload a CSV or JSON prompt file in the settings tab")
            self.cursor = min(self.cursor + 1, len(self.prompts))
            self.current_batch_id = None
            return self.current_prompt()

    def current_prompt(self) -> PromptView | None:
        with self._lock:
            if 0 <= self.cursor < len(self.prompts):
                return PromptView(self.prompts[self.cursor], self.cursor, len(self.prompts))
            return None

    def _prompt_by_id(self, prompt_id: str) -> PromptView:
        for index, spec in enumerate(self.prompts):
            if spec.prompt_id == prompt_id:
                return PromptView(spec, index, len(self.prompts))
        raise Unknown(f"unknown prompt_id {prompt_id!r}: not in the uploaded prompt file")

    # --- model ---------------------------------------------------------------------
    def init_model(self, settings: WorkbenchSettings) -> None:
        """Build the generator (loading weights now) and the assist scorer; later batches use them."""
        try:
            generator = self._worker.submit(self._factory, settings).result()
        except (OSError, ValueError, ImportError) as exc:
            raise Invalid(f"cannot initialise generator {settings.generator!r} (model {settings.model_id!r}): {exc}") from exc
        scorer, status = self._resolve_scorer()
        with self._lock:
            self.settings, self.generator, self.scorer, self.assist = settings, generator, scorer, status
            self._reset_batches()

    def _resolve_scorer(self) -> tuple[AssistScorer | None, AssistStatus]:
        choice = self._scorer_choice
        if choice is None:
            return None, AssistStatus(False, "assist scoring is switched off for this server")
        if choice == "auto":
            return load_champion(self.root)
        return given_scorer(choice)  # type: ignore[arg-type]

    def _reset_batches(self) -> None:
        self._epoch += 1
        for future in self._prefetch.values():
            future.cancel()
        self._prefetch.clear()
        self.current_batch_id = None

    # --- batches -------------------------------------------------------------------
    def generate_batch(self, prompt_id: str | None = None, seeds: list[int] | None = None) -> tuple[GeneratedBatch, bool]:
        """Render (or take the prefetched) batch for a prompt; then start rendering the next prompt's batch."""
        with self._lock:
            if self.generator is None or self.settings is None:
                raise NotReady("the model is not initialised: press Initialise in the settings tab")
            view = self._prompt_by_id(prompt_id) if prompt_id else self.current_prompt()
            if view is None:
                raise NotReady("no current prompt: call /get_next_prompt first (or every prompt is done)")
            if seeds is not None:
                try:
                    check_seeds(seeds)
                except ValueError as exc:
                    raise Invalid(str(exc)) from None
            future = self._prefetch.pop((self._epoch, view.prompt.prompt_id), None) if seeds is None else None
            prefetched = future is not None
            if future is None:
                future = self._submit_render(view.prompt, seeds)
        batch = future.result()
        with self._lock:
            self._remember(batch)
            if view.index == self.cursor:
                self.current_batch_id = batch.batch_id
            self._prefetch_after(view.index)
        return batch, prefetched

    def _submit_render(self, prompt: PromptSpec, seeds: list[int] | None) -> Future[GeneratedBatch]:
        assert self.generator is not None and self.settings is not None
        generator, settings, scorer = self.generator, self.settings, self.scorer
        chosen = seeds if seeds is not None else draw_seeds(settings.seeds_per_batch)
        return self._worker.submit(render_batch, self.root, generator, settings, prompt, chosen, scorer)

    def _prefetch_after(self, index: int) -> None:
        following = index + 1
        if following >= len(self.prompts):
            return
        key = (self._epoch, self.prompts[following].prompt_id)
        if key not in self._prefetch:
            self._prefetch[key] = self._submit_render(self.prompts[following], None)

    def prefetch_state(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"prompt_id": prompt_id, "ready": future.done()}
                for (epoch, prompt_id), future in self._prefetch.items() if epoch == self._epoch
            ]

    def _remember(self, batch: GeneratedBatch) -> None:
        self._batches[batch.batch_id] = batch
        self._batches.move_to_end(batch.batch_id)
        while len(self._batches) > BATCH_MEMORY:
            self._batches.popitem(last=False)

    def batch(self, batch_id: str) -> GeneratedBatch:
        with self._lock:
            found = self._batches.get(batch_id)
        if found is None:
            raise Unknown(f"unknown batch_id {batch_id!r}: it was never generated here or is too old; generate it again")
        return found

    def current_batch(self) -> GeneratedBatch | None:
        with self._lock:
            return self._batches.get(self.current_batch_id) if self.current_batch_id else None

    # --- judgements ------------------------------------------------------------------
    def submit(self, batch_id: str, golden_seeds: list[int], annotator: str | None = None) -> Selection:
        """Store golden vs bad seeds of a batch with full metadata; an empty golden list means all bad."""
        batch = self.batch(batch_id)
        unknown = sorted(set(golden_seeds) - set(batch.seeds))
        if unknown:
            raise Invalid(f"golden seeds {unknown} are not in batch {batch_id} (its seeds: {batch.seeds})")
        golden = [s for s in batch.seeds if s in set(golden_seeds)]
        settings = batch.settings
        record = Selection(
            submission_id=new_id(), batch_id=batch.batch_id, prompt_id=batch.prompt.prompt_id,
            prompt=batch.prompt.text, prompt_hash=batch.prompt.text_hash,
            golden_seeds=golden, bad_seeds=[s for s in batch.seeds if s not in golden], images=batch.images,
            generator=batch.generator, model_version=batch.model_version,
            steps=batch.params["steps"], guidance=batch.params["guidance"], scheduler=batch.params["scheduler"],
            ratio=settings.ratio, width=batch.params["width"], height=batch.params["height"], params=batch.params,
            score_model=batch.score_model, annotator=check_annotator(annotator or self.annotator),
            generated_at=batch.generated_at, submitted_at=utc_now(),
        )
        append_record(self.root, record)
        return record

    def undo(self, annotator: str | None = None) -> Selection:
        """Withdraw the annotator's latest submission that is still in force (an appended undo line)."""
        who = check_annotator(annotator or self.annotator)
        with self._lock:  # two quick U presses must not withdraw the same submission twice
            last = last_active_by(read_log(self.root), who)
            if last is None:
                raise Unknown(f"nothing to undo: {who} has no submission in force")
            append_record(self.root, Undo(submission_id=new_id(), undoes=last.submission_id, annotator=who, submitted_at=utc_now()))
            self._return_to(last)
        return last

    def _return_to(self, undone: Selection) -> None:
        """Make the withdrawn batch current again, so re-judging it and pressing Next continues from there."""
        batch = self._batches.get(undone.batch_id)
        index = next((i for i, p in enumerate(self.prompts) if p.prompt_id == undone.prompt_id), None)
        if batch is not None and index is not None:
            self.cursor, self.current_batch_id = index, batch.batch_id

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
