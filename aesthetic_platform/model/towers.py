"""Build the two pretrained towers from config, and freeze all but their last blocks.

Real loading paths are kept: ``open_clip.create_model(name, pretrained=tag)`` and
``AutoModel.from_pretrained(name_or_dir)``. Random-init towers (tests, demo, benchmarks)
come from an inline OpenCLIP model JSON registered with ``open_clip.add_model_config``
and an inline transformers config, so nothing is ever downloaded for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import open_clip
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from aesthetic_platform.atomic import write_json
from aesthetic_platform.model.config import ImageTowerConfig, TextTowerConfig
from aesthetic_platform.model.text import build_tiny_tokenizer

#: The towers' types. Both are nn.Modules whose blocks are reached by attribute (``visual.transformer.resblocks``,
#: ``encoder.encoder.layer``), which nn.Module's typing cannot follow; open_clip ships no type information at all.
VisionTower: TypeAlias = open_clip.transformer.VisionTransformer  # checked by build_image_tower
TextTower: TypeAlias = Any  # a transformers encoder (AutoModel) of the BERT family (XLM-R)

#: Registered model JSONs live here for the process lifetime (OpenCLIP rescans its paths on every add).
OPEN_CLIP_CONFIG_DIR = Path(tempfile.gettempdir()) / "aesthetic_platform_open_clip_configs"
RANDOM_INIT_NOTICE = "No pretrained weights loaded"


@dataclass(frozen=True)
class ImagePreprocess:
    """What the aspect-true resize needs to know about a vision tower."""

    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def register_open_clip_config(model_name: str, config: dict) -> None:
    """Register an inline model JSON under ``model_name`` (file stem = registry key)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    path = OPEN_CLIP_CONFIG_DIR / digest / f"{model_name}.json"
    if not path.exists():
        write_json(path, config)
    open_clip.add_model_config(path)


class _RandomInitNotice(logging.Filter):
    """OpenCLIP's "No pretrained weights loaded ... initialized randomly" warning, and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(RANDOM_INIT_NOTICE)


@contextlib.contextmanager
def _no_random_init_notice() -> Iterator[None]:
    """Build without that notice when trained weights are loaded right after (a checkpoint).

    OpenCLIP logs it through the root logger; while the tower is built the root logger
    drops that one record, and a ``NullHandler`` stands in when the root has no handler
    so ``logging.warning`` does not install a default stderr handler as a side effect.
    """
    root = logging.getLogger()
    notice, placeholder = _RandomInitNotice(), logging.NullHandler()
    added_placeholder = not root.handlers
    root.addFilter(notice)
    if added_placeholder:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(notice)
        if added_placeholder:
            root.removeHandler(placeholder)


def build_image_tower(config: ImageTowerConfig, load_weights: bool = True) -> tuple[VisionTower, ImagePreprocess]:
    """The OpenCLIP ``VisionTransformer`` of the named model; its text tower is discarded."""
    if config.open_clip_config is not None:
        register_open_clip_config(config.model_name, config.open_clip_config)
    if config.model_name not in open_clip.list_models():
        raise ValueError(f"unknown OpenCLIP model {config.model_name!r}: not built in and no open_clip_config given")
    if load_weights:
        clip = open_clip.create_model(config.model_name, pretrained=config.pretrained)
    else:
        with _no_random_init_notice():
            clip = open_clip.create_model(config.model_name, pretrained=None)
    visual = clip.visual
    if not isinstance(visual, open_clip.transformer.VisionTransformer):
        raise ValueError(f"{config.model_name}: image tower must be an OpenCLIP VisionTransformer, got {type(visual)}")
    if visual.attn_pool is not None:
        raise ValueError(f"{config.model_name}: attentional pooling is not supported by the masked forward")
    preprocess_cfg = open_clip.get_model_preprocess_cfg(clip)
    patch_height, patch_width = visual.patch_size
    if patch_height != patch_width:
        raise ValueError(f"{config.model_name}: square patches required, got {visual.patch_size}")
    preprocess = ImagePreprocess(
        patch_size=patch_height, mean=tuple(preprocess_cfg["mean"]), std=tuple(preprocess_cfg["std"])
    )
    return visual, preprocess


def resolved_open_clip_config(config: ImageTowerConfig) -> dict:
    """The model JSON actually used, so a checkpoint rebuilds without the registry it was made with."""
    if config.open_clip_config is not None:
        return config.open_clip_config
    resolved = open_clip.get_model_config(config.model_name)
    if resolved is None:
        raise ValueError(f"unknown OpenCLIP model {config.model_name!r}")
    return resolved


def build_text_tower(config: TextTowerConfig, tokenizer_dir: str | Path | None = None):
    """(encoder, tokenizer). ``tokenizer_dir`` overrides the configured tokenizer (checkpoint reload)."""
    tokenizer = _load_tokenizer(config, tokenizer_dir)
    if config.pretrained is not None:
        encoder = AutoModel.from_pretrained(config.pretrained, add_pooling_layer=False)
    else:
        assert config.architecture is not None  # TextTowerConfig requires exactly one of pretrained / architecture
        architecture = dict(config.architecture)
        model_type = architecture.pop("model_type")
        architecture.setdefault("vocab_size", len(tokenizer))
        encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **architecture), add_pooling_layer=False)
    if len(tokenizer) > encoder.config.vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the text tower embeds only {encoder.config.vocab_size}"
        )
    return encoder, tokenizer


def _load_tokenizer(config: TextTowerConfig, tokenizer_dir: str | Path | None):
    source = tokenizer_dir or config.tokenizer or config.pretrained
    if source is None:
        return build_tiny_tokenizer()
    return AutoTokenizer.from_pretrained(str(source))


def image_tower_blocks(visual: VisionTower) -> list[nn.Module]:
    return list(visual.transformer.resblocks)


def text_tower_blocks(encoder: TextTower) -> list[nn.Module]:
    return list(encoder.encoder.layer)


def freeze_all_but_last(
    tower: nn.Module, blocks: list[nn.Module], tail: list[nn.Module | nn.Parameter], trainable: int | None
) -> None:
    """Train only the last ``trainable`` blocks (plus ``tail``: final norm/projection); None trains all.

    Early blocks hold generic features that a few thousand preference pairs would only
    damage (seed 000 Q4); the last blocks adapt them to the aesthetic task.
    """
    if trainable is None:
        tower.requires_grad_(True)
        return
    if trainable > len(blocks):
        raise ValueError(f"trainable_blocks={trainable} but the tower has only {len(blocks)} blocks")
    tower.requires_grad_(False)
    if trainable == 0:
        return
    for module_or_parameter in [*blocks[-trainable:], *tail]:
        module_or_parameter.requires_grad_(True)


def image_tower_tail(visual: VisionTower) -> list[nn.Module | nn.Parameter]:
    return [visual.ln_post, visual.proj]
