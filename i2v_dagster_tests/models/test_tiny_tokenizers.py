"""The in-process tokenizers: small ids, English prompts, padding/truncation, offline save/load round trip."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from i2v_dagster_tests.models import tiny_tokenizers as tt  # noqa: E402

pytestmark = pytest.mark.models

PROMPTS = [
    "A man with short gray hair plays a red electric guitar.",
    "A small dog runs across the green field at sunset, slow motion, cinematic.",
    "Xylophones and zebras in a Café",  # words outside the vocabulary
]

# function, expected class name, max length, pad id, (first id, last id) of a plain encoding or None
CASES = {
    "t5": (tt.t5_tokenizer, "T5Tokenizer", 512, tt.T5_PAD_ID, (None, tt.T5_EOS_ID)),
    "umt5": (tt.umt5_tokenizer, "T5Tokenizer", 512, tt.T5_PAD_ID, (None, tt.T5_EOS_ID)),
    "clip": (tt.clip_tokenizer, "CLIPTokenizer", 77, None, None),
    "llama": (
        tt.llama_tokenizer,
        "LlamaTokenizer",
        tt.LLAMA_MAX_LENGTH,
        tt.LLAMA_PAD_TOKEN_ID,
        (tt.LLAMA_BOS_ID, None),
    ),
    "bert": (tt.bert_tokenizer, "BertTokenizer", 512, tt.BERT_PAD_ID, (tt.BERT_CLS_ID, tt.BERT_SEP_ID)),
}


@pytest.fixture(scope="module")
def built():
    return {name: case[0]() for name, case in CASES.items()}


@pytest.fixture(params=list(CASES))
def case(request, built):
    name = request.param
    return name, built[name], CASES[name]


def test_class_size_and_special_ids(case):
    name, tok, (_, cls_name, max_len, pad_id, ends) = case
    assert type(tok).__name__ == cls_name
    assert tok.model_max_length == max_len
    assert len(tok) <= tt.VOCAB_SIZE
    assert max(tok.get_vocab().values()) < tt.VOCAB_SIZE
    if pad_id is not None:
        assert tok.pad_token_id == pad_id
    ids = tok(PROMPTS[0]).input_ids
    if ends is not None:
        first, last = ends
        if first is not None:
            assert ids[0] == first
        if last is not None:
            assert ids[-1] == last


def test_t5_layout():
    tok = tt.t5_tokenizer()
    assert (tok.pad_token, tok.eos_token, tok.unk_token) == ("<pad>", "</s>", "<unk>")
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok("é").input_ids == [tok.convert_tokens_to_ids("▁"), 2, 1]  # unknown character -> <unk>


def test_clip_layout():
    tok = tt.clip_tokenizer()
    ids = tok("a dog").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "dog</w>", "<|endoftext|>"]
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert (tok.bos_token_id, tok.eos_token_id) == (tt.CLIP_BOS_ID, tt.CLIP_EOS_ID)


def test_english_prompts_tokenize(case):
    name, tok, _ = case
    enc = tok(PROMPTS, add_special_tokens=False)
    for text, ids in zip(PROMPTS, enc.input_ids, strict=True):
        assert ids and all(0 <= i < tt.VOCAB_SIZE for i in ids)
        assert len(ids) < len(text)  # known words are merged, not spelled out
    known = tok(" video", add_special_tokens=False).input_ids
    unknown = tok(" xylophones", add_special_tokens=False).input_ids
    assert len(known) == 1
    assert len(unknown) > 1 or unknown == [tok.unk_token_id]
    if name != "clip":  # CLIP lower-cases, BERT keeps case
        decoded = tok.decode(tok(PROMPTS[1]).input_ids, skip_special_tokens=True)
        assert decoded.replace(" ,", ",").replace(" .", ".") == PROMPTS[1]


def test_padding_and_truncation(case):
    _, tok, _ = case
    enc = tok(PROMPTS, padding="max_length", max_length=24, truncation=True)
    assert [len(ids) for ids in enc.input_ids] == [24, 24, 24]
    short = tok("a cat").input_ids
    padded = tok("a cat", padding="max_length", max_length=24)
    assert padded.input_ids[: len(short)] == short  # pads on the right
    assert padded.input_ids[len(short) :] == [tok.pad_token_id] * (24 - len(short))
    assert padded.attention_mask == [1] * len(short) + [0] * (24 - len(short))
    full = tok(" ".join(PROMPTS * 4)).input_ids
    cut = tok(" ".join(PROMPTS * 4), max_length=10, truncation=True).input_ids
    assert len(full) > 10 and len(cut) == 10
    if tok.eos_token_id is not None and full[-1] == tok.eos_token_id:
        assert cut[-1] == tok.eos_token_id  # special tokens survive truncation


@pytest.mark.parametrize("loader", ["class", "auto"])
def test_save_pretrained_round_trip(case, loader, tmp_path):
    import transformers

    _, tok, _ = case
    tok.save_pretrained(tmp_path)
    cls = transformers.AutoTokenizer if loader == "auto" else getattr(transformers, type(tok).__name__)
    loaded = cls.from_pretrained(tmp_path, local_files_only=True)
    assert type(loaded) is type(tok)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.all_special_ids == tok.all_special_ids
    assert (loaded.model_max_length, loaded.padding_side) == (tok.model_max_length, tok.padding_side)
    kwargs = {"padding": "max_length", "max_length": 32, "truncation": True}
    assert loaded(PROMPTS, **kwargs).input_ids == tok(PROMPTS, **kwargs).input_ids
    assert loaded(PROMPTS).input_ids == tok(PROMPTS).input_ids


def test_builds_are_deterministic():
    for build, *_ in CASES.values():
        first, second = build(), build()
        assert first.get_vocab() == second.get_vocab()
        assert first(PROMPTS).input_ids == second(PROMPTS).input_ids


def test_bpe_learning_ignores_input_order():
    """Same merges whatever the order of the words (the ``tokenizers`` trainer differs run to run)."""
    words = [tuple(w) for w in ["low", "lower", "newest", "widest", "newer", "wider"]]
    base = sorted({ch for w in words for ch in w})
    forward = tt._learn_bpe(tuple(words), base=tuple(base), size=len(base) + 8)
    backward = tt._learn_bpe(tuple(reversed(words)), base=tuple(base), size=len(base) + 8)
    assert forward == backward
    assert len(forward[0]) == len(base) + 8
    assert forward[1][0] == ("e", "r")  # the most frequent pair (4 words) first; ties broken by order


def _hunyuan_i2v_template() -> dict:
    """``DEFAULT_PROMPT_TEMPLATE`` read from the installed pipeline's source (importing it takes seconds)."""
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        pytest.skip("diffusers is not installed")
    source = Path(spec.origin).parent / "pipelines/hunyuan_video/pipeline_hunyuan_video_image2video.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DEFAULT_PROMPT_TEMPLATE":
            return ast.literal_eval(node.value)
    raise AssertionError(f"DEFAULT_PROMPT_TEMPLATE not found in {source}")


def test_llama_fits_hunyuan_i2v_prompt_template():
    template = _hunyuan_i2v_template()
    tok = tt.llama_tokenizer()
    assert tok.convert_tokens_to_ids("<image>") == tt.LLAMA_IMAGE_TOKEN_ID
    assert tok.convert_tokens_to_ids("<pad>") == tt.LLAMA_PAD_TOKEN_ID
    prefix = template["template"].split("{}")[0]
    assert len(tok(prefix).input_ids) == template["crop_start"]  # 103, as with the real Llava tokenizer

    enc = tok(
        template["template"].format("A cat walks on the beach."),
        max_length=256 + template["crop_start"],
        padding="max_length",
        truncation=True,
    )
    ids = enc.input_ids
    assert ids.index(tt.LLAMA_IMAGE_TOKEN_ID) == template["image_emb_start"]
    assert ids.count(tt.LLAMA_IMAGE_TOKEN_ID) == 1
    assert ids.count(tok.convert_tokens_to_ids("<|end_header_id|>")) == 3  # system, user, assistant
    assert ids[-1] == tt.LLAMA_PAD_TOKEN_ID and enc.attention_mask[-1] == 0
