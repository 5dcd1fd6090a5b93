"""Text tower helpers: an offline multilingual tokenizer and masked mean pooling.

Production loads XLM-R's own SentencePiece tokenizer by name. Tests and the demo cannot
download it, so ``build_tiny_tokenizer`` trains an XLM-R-shaped Unigram tokenizer
(same special tokens and ids, same ``<s> … </s>`` template) on a few English and
Chinese sentences plus the prompt vocabulary, in milliseconds and deterministically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from aesthetic_platform.prompts.vocabulary import CATEGORIES, COLOURS, LAYOUTS, PALETTES, SLOGANS, STYLES, SUBJECTS

#: XLM-R's special tokens in XLM-R's id order (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4).
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
TINY_VOCAB_SIZE = 600
#: Unigram log-probabilities are rounded before ranking so float noise cannot reorder the vocabulary.
SCORE_DECIMALS = 1

_SENTENCES = (
    "A warm 3D poster of a running sneaker, centered composition, orange and gold.",
    "Minimalist key visual with a perfume bottle on the left and the headline on the right.",
    "Cyberpunk neon banner for a new smartphone, rule-of-thirds composition.",
    "A photo of an astronaut in a white suit, studio light, high detail.",
    "一张暖色调的3D数字海报，居中构图，主体是一双跑鞋。",
    "国潮风格的中秋月饼礼盒主视觉，红色与金色，标题在上、主体在下。",
    "极简设计的咖啡海报，蓝色、青色与白色，留白充足，文字清晰。",
    "赛博朋克霓虹风格的电商横幅，对角线动感布局，色彩和谐。",
)


def tiny_corpus() -> list[str]:
    """Sentences plus every word the prompt grammar can emit, so grammar prompts rarely hit <unk>."""
    corpus = list(_SENTENCES)
    for _, english, chinese in COLOURS.values():
        corpus.extend(english + chinese)
    corpus.extend(phrase for _, en, zh in PALETTES for phrase in (en, zh))
    corpus.extend(phrase for en, zh, extra in LAYOUTS.values() for phrase in (en, zh, *extra))
    corpus.extend(phrase for en, zh, _ in SUBJECTS.values() for phrase in (en, zh))
    corpus.extend(phrase for pair in (*STYLES.values(), *CATEGORIES.values(), *SLOGANS) for phrase in pair)
    return corpus


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Train an XLM-R-compatible Unigram tokenizer offline (NFKC, Metaspace, XLM-R specials)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(tiny_corpus(), trainer=trainer)
    tokenizer.model = _sorted_unigram(tokenizer)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


def _sorted_unigram(trained: Tokenizer) -> models.Unigram:
    """The trainer assigns ids in thread order; re-rank by (score, piece) so ids are reproducible."""
    pieces = json.loads(trained.to_str())["model"]["vocab"]
    specials = [(piece, score) for piece, score in pieces if piece in SPECIAL_TOKENS]
    specials.sort(key=lambda item: SPECIAL_TOKENS.index(item[0]))
    ordinary = sorted(
        ((piece, round(score, SCORE_DECIMALS)) for piece, score in pieces if piece not in SPECIAL_TOKENS),
        key=lambda item: (-item[1], item[0]),
    )
    return models.Unigram([*specials, *ordinary], unk_id=SPECIAL_TOKENS.index("<unk>"), byte_fallback=False)


def tokenize(tokenizer, prompts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Pad to the longest prompt of the batch (not to max_length): short prompts stay cheap. A prompt over
    ``max_length`` tokens keeps its first ``max_length``: training counts and reports such prompts before it
    starts (``train_step.check_prompt_lengths``) and scoring refuses them."""
    if not prompts:
        raise ValueError("tokenize needs at least one prompt")
    encoded = tokenizer(
        list(prompts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def token_counts(tokenizer, prompts: Sequence[str]) -> dict[str, int]:
    """Tokens per distinct prompt, special tokens included and nothing cut: what ``tokenize`` would keep is
    ``min(count, max_length)``, so a caller can see which prompts lose their end before they are trained on."""
    distinct = list(dict.fromkeys(prompts))
    if not distinct:
        return {}
    ids = tokenizer(distinct, truncation=False, verbose=False)["input_ids"]
    return {prompt: len(prompt_ids) for prompt, prompt_ids in zip(distinct, ids, strict=True)}


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only, so a prompt's embedding ignores how far its batch was padded."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
