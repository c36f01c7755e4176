"""Tiny tokenizers built in-process for tests: no downloads, at most ``VOCAB_SIZE`` ids.

Each function returns a real transformers tokenizer of the class a pipeline expects, with a small
vocabulary learned (BPE) or written (Unigram, WordPiece) here from ``WORDS``. Every id is below
``VOCAB_SIZE``, so tiny text encoders with ``vocab_size=VOCAB_SIZE`` accept all of them. Each tokenizer
round-trips ``save_pretrained`` / ``from_pretrained`` (its own class and ``AutoTokenizer``) offline.

- :func:`t5_tokenizer`: ``T5Tokenizer`` (Unigram), CogVideoX ``tokenizer`` and Flux ``tokenizer_2``.
- :func:`umt5_tokenizer`: ``T5Tokenizer`` (the class Wan loads for UMT5), Wan ``tokenizer``.
- :func:`clip_tokenizer`: ``CLIPTokenizer`` (byte-level BPE), Flux ``tokenizer`` and Hunyuan ``tokenizer_2``.
- :func:`llama_tokenizer`: ``LlamaTokenizer`` (= ``LlamaTokenizerFast``) with the Llama 3 header tokens and
  ``<image>``, HunyuanVideo-I2V ``tokenizer`` (Llava text encoder).
- :func:`bert_tokenizer`: ``BertTokenizer`` (cased WordPiece), Bark's processor.
- :func:`train_sentencepiece`: a ``spiece.model`` from sentencepiece's own trainer (the real repos' T5
  tokenizer file; see ``real_layout.py``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertTokenizer, CLIPTokenizer, LlamaTokenizer, T5Tokenizer

VOCAB_SIZE = 1000
"""Upper bound on every id any tokenizer here produces (tiny models use ``vocab_size=VOCAB_SIZE``)."""

T5_PAD_ID, T5_EOS_ID, T5_UNK_ID = 0, 1, 2
"""Special ids of :func:`t5_tokenizer` and :func:`umt5_tokenizer`, as in T5 (pad, eos, unk)."""
SPIECE_VOCAB_SIZE = 500
"""Pieces of :func:`train_sentencepiece`'s model; with T5's 100 (UMT5's 300) extra ids below VOCAB_SIZE."""

CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512
CLIP_BOS_ID, CLIP_EOS_ID = 0, 1
"""``<|startoftext|>`` and ``<|endoftext|>`` (also pad and unk) of :func:`clip_tokenizer`: a tiny
``CLIPTextConfig`` needs ``bos_token_id=CLIP_BOS_ID, eos_token_id=CLIP_EOS_ID`` (pooling finds the eos)."""

# Llama/Llava special tokens, at fixed ids so a tiny LlavaConfig can name them
# (``image_token_index=LLAMA_IMAGE_TOKEN_ID``, ``pad_token_id=LLAMA_PAD_TOKEN_ID``).
LLAMA_SPECIAL_TOKENS = (
    "<unk>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<pad>",
    "<image>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
LLAMA_UNK_ID, LLAMA_BOS_ID, LLAMA_EOS_ID, LLAMA_PAD_TOKEN_ID, LLAMA_IMAGE_TOKEN_ID = 0, 1, 2, 3, 4
LLAMA_MAX_LENGTH = 8192

BERT_PAD_ID, BERT_UNK_ID, BERT_CLS_ID, BERT_SEP_ID, BERT_MASK_ID = 0, 1, 2, 3, 4
BERT_MAX_LENGTH = 512

_WORD_TEXT = """
    a an the and or but of in on at to from with by for as into over under through across near behind above
    is are was were be been being it its this that these those there here his her their he she they we you
    i my your our me him them who what which when where while then than so very more most less slowly
    quickly gently softly up down out off away around along toward towards back again still just only all
    some each every one two three four five first second last other many few no not new old
    man woman boy girl child children person people dog cat bird horse fish cow sheep animal animals car
    cars train boat ship plane bike road street city town house building window door room table chair bed
    tree trees forest flower flowers grass field garden park river lake sea ocean beach wave waves water
    mountain mountains hill sky cloud clouds sun moon star stars rain snow wind fire smoke light night day
    morning evening sunset sunrise shadow shadows face eyes hair hand hands head arm legs body dress shirt
    hat red orange yellow green blue purple pink white black brown gray grey gold silver dark bright
    colorful small big large tall short long little young beautiful happy sad calm quiet soft warm cold
    walks walking runs running flies flying swims swimming jumps jumping dances dancing plays playing sits
    sitting stands standing looks looking smiles smiling moves moving turns turning falls falling rises
    rising holds holding opens opening waves waving rides riding drives driving eats eating talks talking
    sings singing reads reading watches watching makes making goes going comes coming glows glowing
    shines shining drifts drifting floats floating spins spinning grows growing blows blowing flows flowing
    camera shot close closeup wide slow motion pan zoom view scene frame frames video film cinematic
    realistic photo painting style detailed high quality sharp focus background foreground lighting color
    colors motion smooth gentle steady static still zooms pans tracks tracking aerial drone
    guitar music song piano electric plays red cup coffee book phone computer screen
    describe describes detailing following aspects according reference image main content theme shape
    size texture quantity text spatial relationships actions events behaviors temporal physical movement
    changes objects environment atmosphere angles movements transitions used system user assistant
    hello world test prompt generate generated
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
"""Vocabulary source: common words of video prompts and the words of HunyuanVideo-I2V's prompt template."""

_TEMPLATE_TEXT = """
    the video by detailing following aspects according to reference image The main content and theme of
    color shape size texture quantity text spatial relationships objects Actions events behaviors temporal
    physical movement changes background environment light style atmosphere camera angles movements
    transitions used in
"""
_TEMPLATE_WORDS = tuple(_TEMPLATE_TEXT.split())
"""Words of HunyuanVideo-I2V's default prompt template that follow a space."""
_LLAMA_BARE_WORDS = ("system", "user", "assistant", "Describe")
"""Template words right after a special token or a newline (no leading space)."""


def _transformers():
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import transformers

    return transformers


def _learn_bpe(
    words: tuple[tuple[str, ...], ...], *, base: tuple[str, ...], size: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn BPE merges from symbol sequences until the vocab (``base`` first) has ``size`` pieces.

    Plain Python on purpose: the ``tokenizers`` trainer breaks ties between equally frequent pairs in a
    different order in each process, and the ids must be the same in every run. A word listed twice counts
    twice. Ties go to the lexicographically smallest pair.
    """
    counts = Counter(words)
    seqs = [list(w) for w in counts]
    freq = list(counts.values())
    pairs: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for k, seq in enumerate(seqs):
        for pair in itertools.pairwise(seq):
            pairs[pair] += freq[k]
            where.setdefault(pair, set()).add(k)
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    pieces = list(dict.fromkeys(base))
    known = set(pieces)
    merges: list[tuple[str, str]] = []
    while len(pieces) < size and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -neg or neg == 0:
            continue  # stale heap entry
        joined = best[0] + best[1]
        merges.append(best)
        if joined not in known:
            pieces.append(joined)
            known.add(joined)
        touched: set[tuple[str, str]] = set()
        for k in sorted(where.pop(best, ())):
            seq, n = seqs[k], freq[k]
            for pair in itertools.pairwise(seq):
                pairs[pair] -= n
                touched.add(pair)
            i = 0
            while i < len(seq) - 1:
                if (seq[i], seq[i + 1]) == best:
                    seq[i : i + 2] = [joined]
                i += 1
            for pair in itertools.pairwise(seq):
                pairs[pair] += n
                touched.add(pair)
                where.setdefault(pair, set()).add(k)
        for pair in touched:
            if pairs[pair] > 0:
                heapq.heappush(heap, (-pairs[pair], pair))
    return {piece: i for i, piece in enumerate(pieces)}, merges


@cache
def _learned(words: tuple[tuple[str, ...], ...], base: tuple[str, ...]) -> tuple[tuple, tuple]:
    vocab, merges = _learn_bpe(words, base=base, size=VOCAB_SIZE)
    return tuple(vocab.items()), tuple(merges)


def _bpe(words: list[tuple[str, ...]], base: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """:func:`_learn_bpe` to ``VOCAB_SIZE`` pieces, cached; returns fresh copies."""
    vocab, merges = _learned(tuple(words), tuple(base))
    return dict(vocab), list(merges)


def _corpus() -> list[str]:
    words = list(dict.fromkeys(WORDS))
    return words + [w.capitalize() for w in words]


def _ascii_chars() -> list[str]:
    return [chr(c) for c in range(33, 127)]


def _unigram_vocab(extra: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """T5-style Unigram vocab: ``<pad>``, ``</s>``, ``<unk>``, then words, then single characters."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces = list(dict.fromkeys([*WORDS, *extra]))
    # Whole words score higher than any split into characters; earlier (more common) words a little higher.
    for i, word in enumerate(pieces):
        vocab.append((f"▁{word}", -4.0 - i / 1000))
    for i, word in enumerate(pieces):
        cap = word.capitalize()
        if cap != word:
            vocab.append((f"▁{cap}", -6.0 - i / 1000))
    for ch in _ascii_chars():
        vocab.append((ch, -10.0))
        vocab.append((f"▁{ch}", -11.0))
    seen: set[str] = set()
    unique = [(p, s) for p, s in vocab if not (p in seen or seen.add(p))]
    if len(unique) > VOCAB_SIZE:
        raise ValueError(f"Unigram vocab has {len(unique)} pieces, more than VOCAB_SIZE={VOCAB_SIZE}")
    return unique


def t5_tokenizer() -> T5Tokenizer:
    """``T5Tokenizer`` (Unigram): pad 0, ``</s>`` 1, ``<unk>`` 2, ``model_max_length`` 512, no sentinels."""
    tf = _transformers()
    tok = tf.T5Tokenizer(vocab=_unigram_vocab(), extra_ids=0, model_max_length=T5_MAX_LENGTH)
    return tok


def umt5_tokenizer() -> T5Tokenizer:
    """The tokenizer class Wan loads for UMT5 (``T5Tokenizer``), with a few non-English words added.

    Wan's pipeline calls it with ``padding="max_length"``, ``truncation=True`` and
    ``add_special_tokens=True``; ids follow T5's layout (pad 0, ``</s>`` 1, ``<unk>`` 2).
    """
    tf = _transformers()
    extra = ("der", "die", "und", "le", "la", "et", "el", "los", "y", "gato", "perro", "chat", "chien")
    return tf.T5Tokenizer(vocab=_unigram_vocab(extra), extra_ids=0, model_max_length=T5_MAX_LENGTH)


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary and merges of :func:`clip_tokenizer` (what a CLIP repo's ``vocab.json`` and
    ``merges.txt`` hold)."""
    chars = _ascii_chars()
    # Every character in both forms ("a" and "a</w>"), as CLIPTokenizer's BPE expects.
    base = ["<|startoftext|>", "<|endoftext|>", *chars, *(f"{ch}</w>" for ch in chars)]
    words = [(*w[:-1], f"{w[-1]}</w>") for w in dict.fromkeys(w.lower() for w in WORDS)]
    vocab, merges = _bpe(words, base)
    _check_size("CLIP", vocab)
    return vocab, merges


def clip_tokenizer() -> CLIPTokenizer:
    """``CLIPTokenizer`` (lower-cased byte-level BPE with ``</w>``): bos ``<|startoftext|>``, eos/pad/unk
    ``<|endoftext|>``, ``model_max_length`` 77."""
    tf = _transformers()
    vocab, merges = clip_vocab_and_merges()
    return tf.CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=CLIP_MAX_LENGTH,
    )


def train_sentencepiece(*, vocab_size: int = SPIECE_VOCAB_SIZE) -> bytes:
    """A Unigram ``spiece.model`` trained by sentencepiece's own trainer on :data:`WORDS`, with T5's special
    ids (pad 0, ``</s>`` 1, ``<unk>`` 2, no bos): the file format of a T5 repo's ``spiece.model``."""
    import io

    import sentencepiece as spm

    words = list(dict.fromkeys(WORDS))
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 3)]
    lines += [" ".join(w.capitalize() for w in words[i : i + 12]) for i in range(0, len(words), 5)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=T5_PAD_ID,
        eos_id=T5_EOS_ID,
        unk_id=T5_UNK_ID,
        bos_id=-1,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def llama_tokenizer() -> LlamaTokenizer:
    """``LlamaTokenizer`` (= ``LlamaTokenizerFast``, Metaspace BPE) for HunyuanVideo-I2V's Llava text encoder.

    Tokens follow Llama 3's split: no prefix space, ``"\\n\\n"`` one token, a bos at the start, and
    ``<image>``, ``<pad>`` and the chat header tokens as special tokens at the fixed ids ``LLAMA_*``. So
    HunyuanVideo-I2V's default prompt template tokenizes as with the real tokenizer: ``<image>`` at position
    5 (``image_emb_start``) and 103 tokens before the user's prompt (``crop_start``). Pads on the right.
    Characters outside ASCII fall back to byte tokens ``<0xXX>``, as in Llama.
    """
    tf = _transformers()
    # Word-start pieces carry "▁" (a space); the template's words after a special token or newline do not.
    # Template words count three times so that they become whole tokens first.
    spaced = [("▁", *w) for w in [*_TEMPLATE_WORDS, *WORDS, "A", "An", "The"]]
    words = spaced + [("▁", *w) for w in _TEMPLATE_WORDS] * 2 + [tuple(w) for w in _LLAMA_BARE_WORDS] * 3
    words += [("\n", "\n")] * 3  # "\n\n" is one token, as in Llama 3
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]  # byte fallback
    base = [*LLAMA_SPECIAL_TOKENS, *byte_tokens, "▁", "\n", *_ascii_chars()]
    vocab, merges = _bpe(words, base)
    _check_size("Llama", vocab)
    tok = tf.LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<unk>",
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<pad>",
        add_bos_token=True,
        add_eos_token=False,
        add_prefix_space=False,
        model_max_length=LLAMA_MAX_LENGTH,
        padding_side="right",
    )
    tok.add_special_tokens({"additional_special_tokens": list(LLAMA_SPECIAL_TOKENS[4:])})
    return tok


def bert_tokenizer() -> BertTokenizer:
    """``BertTokenizer`` (cased WordPiece, as Bark's ``bert-base-multilingual-cased``).

    ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4; unknown words split into ``##`` pieces.
    """
    tf = _transformers()
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_corpus(), *_ascii_chars()]
    pieces += [f"##{ch}" for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    pieces += ["##s", "##es", "##ed", "##ing", "##ly", "##er", "##est"]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    _check_size("BERT", vocab)
    return tf.BertTokenizer(vocab=vocab, do_lower_case=False, model_max_length=BERT_MAX_LENGTH)


def _check_size(name: str, vocab: dict[str, int]) -> None:
    top = max(vocab.values()) + 1
    if top > VOCAB_SIZE:
        raise ValueError(f"{name} vocab reaches id {top - 1}, beyond VOCAB_SIZE={VOCAB_SIZE}")
