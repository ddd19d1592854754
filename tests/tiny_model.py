"""The tiny random test encoder: a 2-layer BERT with a word-level tokenizer (tests and the fault sweep).

``build_tiny_encoder`` returns an :class:`lib.encoder.Encoder`; pytest puts
``tests/`` on ``sys.path``, so the tests import it as ``from tiny_model import
build_tiny_encoder``.
"""
from __future__ import annotations

import string
from typing import Iterable

import torch

from lib.encoder import E5_PREFIXES, Encoder
from lib.errors import ConfigError

TINY_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
TINY_COMMON = ("query", "passage", "what", "who", "where", "when", "which", "how", "why", "is", "are",
               "was", "the", "a", "of", "in", "and", "to", "it")


def tiny_vocab() -> tuple[str, ...]:
    """The tiny tokenizer's default words (after the 4 specials, in this order).

    - ``"a0"`` .. ``"z9"`` (260 words): the word ``<letter><digit>``. Tests
      treat each letter as a fake language (language ``"x"`` writes words
      ``x0``..``x9``), so parallel items are e.g. ``"a1 a2"`` / ``"b1 b2"``;
    - the single letters and digits ``a``..``z``, ``0``..``9``;
    - a few English words (:data:`TINY_COMMON`, includes ``query`` and
      ``passage`` so the e5 prefixes tokenize) and punctuation ``: . , ? !``.

    Text is lowercased; anything else maps to ``[UNK]``.
    """
    letters, digits = string.ascii_lowercase, string.digits
    words = [l + d for l in letters for d in digits] + list(letters) + list(digits)
    words += [w for w in TINY_COMMON if w not in words] + [":", ".", ",", "?", "!"]
    return tuple(words)


def _tiny_tokenizer(words: Iterable[str]):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in (*TINY_SPECIALS, *words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]",
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_encoder(seed: int = 0, vocab: Iterable[str] | None = None, hidden: int = 32,
                       layers: int = 2, heads: int = 2, max_positions: int = 130) -> Encoder:
    """A random tiny BERT (no pooler) with a word-level tokenizer; see :func:`tiny_vocab`.

    Same ``seed`` -> same weights; the global torch RNG is left untouched.
    Mean pooling and e5 prefixes, like the embedded backbone.
    """
    from transformers import BertConfig, BertModel

    if hidden % heads:
        raise ConfigError(f"hidden={hidden} must be a multiple of heads={heads}")
    tokenizer = _tiny_tokenizer(tiny_vocab() if vocab is None else vocab)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    model.eval()
    return Encoder(model, tokenizer, "mean", name=f"tiny-bert-h{hidden}-l{layers}-s{seed}", **E5_PREFIXES)
