"""Fine-tuning controls: freeze all but the last N blocks, separate LRs, gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

from aesthetic_platform.model import AestheticScorer
from aesthetic_platform.model.config import ImageTowerConfig, TextTowerConfig, named_config
from aesthetic_platform.model.loss import CombinedRankingLoss
from aesthetic_platform.model.train_step import PairCollator, PairExample, pair_loss
from tests.model.conftest import MODEL_SEED, build_tiny_model, image_batch


def _with_trainable(image_blocks, text_blocks) -> AestheticScorer:
    tiny = named_config("tiny")
    config = tiny.model_copy(
        update={
            "image": tiny.image.model_copy(update={"trainable_blocks": image_blocks}),
            "text": tiny.text.model_copy(update={"trainable_blocks": text_blocks}),
        }
    )
    torch.manual_seed(MODEL_SEED)
    return AestheticScorer(config)


def _trainable_names(module) -> set[str]:
    return {name for name, param in module.named_parameters() if param.requires_grad}


def test_only_the_last_blocks_train():
    model = _with_trainable(image_blocks=1, text_blocks=1)
    visual = _trainable_names(model.visual)
    assert visual and all(n.startswith(("transformer.resblocks.1.", "ln_post", "proj")) for n in visual)
    assert "conv1.weight" not in visual and "positional_embedding" not in visual
    text = _trainable_names(model.text_encoder)
    assert text and all(n.startswith("encoder.layer.1.") for n in text)
    assert all(p.requires_grad for p in model.heads.parameters())
    assert all(p.requires_grad for p in model.image_projection.parameters())


def test_frozen_towers_leave_only_the_head_group():
    model = _with_trainable(image_blocks=0, text_blocks=0)
    groups = model.param_groups(head_lr=1e-3, tower_lr=1e-5)
    assert [g["name"] for g in groups] == ["heads"]
    assert not _trainable_names(model.visual) and not _trainable_names(model.text_encoder)


def test_param_groups_split_heads_and_towers_with_their_own_rates():
    model = build_tiny_model()
    groups = {g["name"]: g for g in model.param_groups(head_lr=1e-3, tower_lr=1e-5, weight_decay=0.01)}
    assert groups["heads"]["lr"] == 1e-3 and groups["towers"]["lr"] == 1e-5
    head_ids = {id(p) for p in groups["heads"]["params"]}
    tower_ids = {id(p) for p in groups["towers"]["params"]}
    assert not head_ids & tower_ids
    assert head_ids | tower_ids == {id(p) for p in model.parameters() if p.requires_grad}
    torch.optim.AdamW(list(groups.values()))  # accepted as optimizer groups


def test_too_many_trainable_blocks_is_a_clear_error():
    with pytest.raises(ValueError, match="trainable_blocks=5 but the tower has only 2 blocks"):
        _with_trainable(image_blocks=5, text_blocks=None)


def test_gradient_checkpointing_keeps_gradients(sample_images):
    model = build_tiny_model().train()
    for module in model.modules():  # dropout off so two passes are comparable
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    prep = [image_batch(model, [image]).pixels[0] for image in
            (sample_images["poster_16:9"], sample_images["poster_1:1"], sample_images["poster_9:16"], sample_images["astronaut"])]
    examples = [
        PairExample(prep[0], prep[1], "红色海报", torch.full((5,), 8.0), torch.full((5,), 3.0)),
        PairExample(prep[2], prep[3], "a blue poster", torch.full((5,), 7.0), torch.full((5,), 2.0)),
    ]
    batch = PairCollator.for_model(model)(examples)
    loss_fn = CombinedRankingLoss(model.dimensions)

    def gradients():
        model.zero_grad()
        pair_loss(model, batch, loss_fn).loss.objective.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.set_gradient_checkpointing(True)
    assert model.gradient_checkpointing
    checkpointed = gradients()
    model.set_gradient_checkpointing(False)
    assert not model.gradient_checkpointing
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name


def test_config_rejects_ambiguous_text_tower_and_bad_dimensions():
    with pytest.raises(ValueError, match="exactly one"):
        TextTowerConfig(pretrained="xlm-roberta-base", architecture={"model_type": "xlm-roberta"})
    with pytest.raises(ValueError, match="duplicate"):
        named_config("tiny", dimensions=("total", "total"))
    with pytest.raises(KeyError, match="unknown model config"):
        named_config("vit-g")
    with pytest.raises(ValueError, match="unknown OpenCLIP model"):
        from aesthetic_platform.model.towers import build_image_tower

        build_image_tower(ImageTowerConfig(model_name="no-such-vit", patch_budget=64))
