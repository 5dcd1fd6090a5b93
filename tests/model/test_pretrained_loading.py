"""The real loading paths (OpenCLIP ``pretrained=``, ``AutoModel.from_pretrained``) work offline.

Production names hub checkpoints; here the same code loads local files written from
tiny random models, and the loaded weights must be exactly the saved ones.
"""

from __future__ import annotations

import open_clip
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel

from aesthetic_platform.model import AestheticScorer
from aesthetic_platform.model.config import TINY_OPEN_CLIP_CONFIG, TINY_XLMR_ARCHITECTURE, named_config
from aesthetic_platform.model.text import build_tiny_tokenizer
from aesthetic_platform.model.towers import register_open_clip_config
from tests.model.conftest import image_batch

TINY_VIT = "aesthetic-tiny-vit"


def _saved_clip(tmp_path):
    register_open_clip_config(TINY_VIT, TINY_OPEN_CLIP_CONFIG)
    torch.manual_seed(11)
    clip = open_clip.create_model(TINY_VIT)
    path = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
    return clip, path


def _saved_xlmr(tmp_path):
    tokenizer = build_tiny_tokenizer()
    architecture = dict(TINY_XLMR_ARCHITECTURE)
    config = AutoConfig.for_model(architecture.pop("model_type"), vocab_size=len(tokenizer), **architecture)
    torch.manual_seed(12)
    encoder = AutoModel.from_config(config, add_pooling_layer=False)
    folder = tmp_path / "tiny_xlmr"
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return encoder, folder


def test_pretrained_towers_load_their_weights_and_survive_a_checkpoint(tmp_path, sample_images):
    clip, clip_file = _saved_clip(tmp_path)
    encoder, xlmr_dir = _saved_xlmr(tmp_path)
    tiny = named_config("tiny")
    config = tiny.model_copy(
        update={
            "image": tiny.image.model_copy(update={"pretrained": str(clip_file), "trainable_blocks": 1}),
            "text": tiny.text.model_copy(update={"pretrained": str(xlmr_dir), "architecture": None}),
        }
    )
    model = AestheticScorer(config).eval()
    for name, value in clip.visual.state_dict().items():
        assert torch.equal(model.visual.state_dict()[name], value), name
    for name, value in encoder.state_dict().items():
        assert torch.equal(model.text_encoder.state_dict()[name], value), name

    images = [sample_images["poster_4:3"]]
    prompts = ["蓝色、青色与白色的极简海报"]
    with torch.no_grad():
        before = model(image_batch(model, images), **model.tokenize(prompts))
    reloaded = AestheticScorer.from_pretrained(model.save_pretrained(tmp_path / "ckpt")).eval()
    assert reloaded.config.text.pretrained is None and reloaded.config.image.pretrained is None
    with torch.no_grad():
        after = reloaded(image_batch(reloaded, images), **reloaded.tokenize(prompts))
    for dim in model.dimensions:
        assert torch.equal(before[dim], after[dim])
