"""Tiny model folders laid out exactly like the real hub repos the adapters load.

Each ``layouts/<adapter>.json`` mirrors one repo: its id, the revision mirrored (and how the file list was
checked), the real ``model_index.json`` class names, every file path with its format, and the files prefetch
need not fetch (with why). :func:`build_layout` writes a folder holding exactly those files, in those
formats, with tiny random weights:

- weights as safetensors, sharded with an index where the real repo is sharded (``save_pretrained`` with a
  ``max_shard_size`` that gives the repo's shard count), Bark's as a ``pytorch_model.bin``;
- T5 tokenizers as the repos ship them: CogVideoX's ``spiece.model`` only (from sentencepiece's own
  trainer) with ``added_tokens.json``/``special_tokens_map.json``/``tokenizer_config.json``; Wan's UMT5 and
  FLUX's T5 with a ``tokenizer.json`` (a ``tokenizers`` Unigram model of the same pieces) beside it;
  CLIP's BPE as ``vocab.json``/``merges.txt``; Llama and BERT as ``tokenizer.json``;
- Bark's voice presets as ``speaker_embeddings/`` ``.npy`` files listed in ``speaker_embeddings_path.json``;
- open_clip's ``open_clip_config.json`` + ``open_clip_model.safetensors``;
- the other files (model cards, single-file checkpoints, images) as small stand-ins.

:func:`to_hub_cache` places a folder's files in a Hugging Face cache as the snapshot of the repo's
revision, so an adapter loads them by repo id with ``HF_HUB_OFFLINE=1``, through the same
``from_pretrained`` call as for the real repo.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from i2v_dagster_tests.models import tiny_tokenizers as toks

LAYOUTS = Path(__file__).parent / "layouts"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""Snapshot name for layouts that mirror a branch, not a commit."""


@dataclass(frozen=True)
class Layout:
    adapter: str
    repo: str
    revision: str
    source: str
    files: dict[str, str]
    """Path -> format."""
    not_fetched: dict[str, str]
    """Path -> why prefetch need not fetch it."""
    model_index: dict[str, Any] | None = None

    @property
    def fetched(self) -> set[str]:
        return set(self.files) - set(self.not_fetched)

    @property
    def commit(self) -> str:
        is_commit = len(self.revision) == 40 and all(c in "0123456789abcdef" for c in self.revision)
        return self.revision if is_commit else FAKE_COMMIT

    def shards(self, folder: str) -> int:
        """Safetensors files of ``folder`` (0 when it holds none)."""
        return sum(1 for f in self.files if f.startswith(f"{folder}/") and f.endswith(".safetensors"))


@cache
def load_layout(adapter: str) -> Layout:
    data = json.loads((LAYOUTS / f"{adapter}.json").read_text())
    return Layout(**data)


def match_allow_patterns(files: Iterable[str], patterns: Iterable[str]) -> set[str]:
    """The files ``snapshot_download(allow_patterns=patterns)`` fetches (huggingface_hub's own filter)."""
    from huggingface_hub.utils import filter_repo_objects

    return set(filter_repo_objects(list(files), allow_patterns=list(patterns)))


def folder_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# ----- writing -----


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _shard_count(module: Any, size: int) -> int:
    from huggingface_hub import split_torch_state_dict_into_shards

    state = {k: v for k, v in module.state_dict().items() if v.device.type != "meta"}
    return len(split_torch_state_dict_into_shards(state, max_shard_size=size).filename_to_tensors)


def _save_sharded(module: Any, folder: Path, shards: int) -> None:
    """``module.save_pretrained(folder)`` in ``shards`` safetensors files (one unsharded file for 1): the
    ``max_shard_size`` is searched on huggingface_hub's split (what both libraries save with), then
    checked on the files saved."""
    if shards <= 1:
        module.save_pretrained(folder)
        return
    low, high = 1, sum(t.numel() * t.element_size() for t in module.state_dict().values())
    while low <= high:
        size = (low + high) // 2
        made = _shard_count(module, size)
        if made == shards:
            module.save_pretrained(folder, max_shard_size=size)
            saved = sum(1 for p in folder.iterdir() if p.suffix == ".safetensors")
            if saved == shards:
                return
            raise ValueError(f"{type(module).__name__} saved in {saved} shards, not {shards}")
        low, high = (size + 1, high) if made > shards else (low, size - 1)
    raise ValueError(f"no max_shard_size saves {type(module).__name__} in {shards} shards")


def _extra_ids(count: int, first: int) -> dict[str, int]:
    """T5's sentinel tokens: ``<extra_id_0>`` has the highest id."""
    return {f"<extra_id_{i}>": first + count - 1 - i for i in range(count)}


def _t5_special_files(folder: Path, *, extra_ids: int, max_length: int, spiece_only: bool) -> None:
    import sentencepiece as spm

    model = toks.train_sentencepiece()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model)
    size = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    extras = _extra_ids(extra_ids, size)
    specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    decoder = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": True}
        for t, i in [("<pad>", 0), ("</s>", 1), ("<unk>", 2), *extras.items()]
    }  # fmt: skip
    _write_json(folder / "special_tokens_map.json", {"additional_special_tokens": list(extras), **specials})
    config = {
        "added_tokens_decoder": decoder,
        "additional_special_tokens": list(extras),
        "clean_up_tokenization_spaces": True,
        **specials,
        "extra_ids": extra_ids,
        "legacy": True,
        "model_max_length": max_length,
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
    }
    _write_json(folder / "tokenizer_config.json", config)
    if spiece_only:
        _write_json(folder / "added_tokens.json", extras)
    else:
        _t5_tokenizer_json(folder / "tokenizer.json", model, extras)


def _t5_tokenizer_json(path: Path, model: bytes, extras: dict[str, int]) -> None:
    """A ``tokenizer.json`` of the pieces in ``model`` (Unigram, Metaspace, ``$A </s>``), as T5's fast
    tokenizer files hold; read through sentencepiece's C++ API (no protobuf)."""
    import sentencepiece as spm
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    sp = spm.SentencePieceProcessor(model_proto=model)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=toks.T5_UNK_ID, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", toks.T5_EOS_ID)]
    )
    specials = ["<pad>", "</s>", "<unk>", *sorted(extras, key=extras.__getitem__)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.save(str(path))


def write_t5_spiece_only(folder: Path, *, max_length: int = 226) -> None:
    """CogVideoX's ``tokenizer/``: ``spiece.model`` + ``added_tokens.json`` + the two JSON configs."""
    _t5_special_files(folder, extra_ids=100, max_length=max_length, spiece_only=True)


def write_t5_fast(folder: Path, *, extra_ids: int = 100, max_length: int = 512) -> None:
    """FLUX's ``tokenizer_2/`` (T5, 100 extra ids) or Wan's ``tokenizer/`` (UMT5, 300): ``spiece.model`` and
    the ``tokenizer.json`` of the same pieces, with the JSON configs."""
    _t5_special_files(folder, extra_ids=extra_ids, max_length=max_length, spiece_only=False)


def write_clip_bpe(folder: Path) -> None:
    """A CLIP tokenizer as FLUX's ``tokenizer/`` and HunyuanVideo's ``tokenizer_2/``: ``vocab.json``,
    ``merges.txt`` and the JSON configs."""
    vocab, merges = toks.clip_vocab_and_merges()
    _write_json(folder / "vocab.json", vocab)
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    specials = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    _write_json(folder / "special_tokens_map.json", specials)
    config = {
        "add_prefix_space": False,
        **specials,
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": toks.CLIP_MAX_LENGTH,
        "tokenizer_class": "CLIPTokenizer",
    }
    _write_json(folder / "tokenizer_config.json", config)


def _special_tokens_map(tokenizer: Any) -> dict[str, Any]:
    names = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
    found = {n: getattr(tokenizer, n) for n in names if getattr(tokenizer, n, None)}
    extra = [t for t in tokenizer.all_special_tokens if t not in found.values()]
    return {**({"additional_special_tokens": extra} if extra else {}), **found}


def write_fast_tokenizer(folder: Path, tokenizer: Any, *, vocab_txt: bool = False) -> None:
    """``tokenizer.json`` + ``tokenizer_config.json`` (its ``save_pretrained``), ``special_tokens_map.json``,
    and for a WordPiece tokenizer (Bark's BERT) the ``vocab.txt`` beside them."""
    tokenizer.save_pretrained(folder)
    _write_json(folder / "special_tokens_map.json", _special_tokens_map(tokenizer))
    if vocab_txt:
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        (folder / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")


def _stand_in(path: Path, fmt: str) -> None:
    """A small file where the real repo holds one the adapters never read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "other-weights":  # a single-file checkpoint, as the real one is
        import torch
        from safetensors.torch import save_file

        save_file({"stand_in.weight": torch.zeros(4, 4)}, str(path))
    elif path.suffix == ".jpeg":
        from PIL import Image

        Image.new("RGB", (8, 8), (128, 64, 32)).save(path, format="JPEG")
    else:
        path.write_text(f"stand-in for {path.name}\n", encoding="utf-8")


# ----- per repo -----


def _diffusers_folder(layout: Layout, folder: Path, pipe: Any, tokenizers: dict[str, Callable[[Path], None]]):
    """Modules, scheduler, image processor and tokenizers of ``pipe`` into ``folder``, as ``layout`` says."""
    assert layout.model_index is not None
    for name, (library, _cls) in ((k, v) for k, v in layout.model_index.items() if isinstance(v, list)):
        if library is None or name in tokenizers:
            continue
        component = getattr(pipe, name)
        if name == "scheduler":
            component.save_config(folder / name)
        elif name == "image_processor":
            component.save_pretrained(folder / name)
        else:
            _save_sharded(component, folder / name, layout.shards(name))
    for name, write in tokenizers.items():
        write(folder / name)
    _write_json(folder / "model_index.json", layout.model_index)


TOKENIZERS: dict[str, dict[str, Callable[[Path], None]]] = {
    "cogvideox_5b_i2v": {"tokenizer": write_t5_spiece_only},
    "cogvideox15_5b_i2v": {"tokenizer": write_t5_spiece_only},
    "wan22_ti2v_5b": {"tokenizer": lambda f: write_t5_fast(f, extra_ids=300)},
    "hunyuan_i2v": {
        "tokenizer": lambda f: write_fast_tokenizer(f, toks.llama_tokenizer()),
        "tokenizer_2": write_clip_bpe,
    },
    "flux_schnell": {"tokenizer": write_clip_bpe, "tokenizer_2": write_t5_fast},
}
"""Per diffusers adapter: tokenizer folder -> the writer of its files in the repo's formats."""


def write_pipeline_layout(adapter: str, pipe: Any, folder: str | Path) -> Path:
    """Save ``pipe`` (modules of any size, e.g. full size with random weights) into ``folder`` in the
    layout of ``adapter``'s repo, tokenizers written in the repo's formats; stand-ins for the rest."""
    folder = Path(folder)
    layout = load_layout(adapter)
    _diffusers_folder(layout, folder, pipe, TOKENIZERS[adapter])
    return _finish(layout, folder)


def _video(adapter: str) -> Callable[[Layout, Path], None]:
    def build(layout: Layout, folder: Path) -> None:
        from i2v_dagster_tests.models.tiny_video import build_tiny_pipeline

        _diffusers_folder(layout, folder, build_tiny_pipeline(adapter), TOKENIZERS[adapter])

    return build


def _flux(layout: Layout, folder: Path) -> None:
    from i2v_dagster_tests.models.tiny_flux import build_tiny_flux

    _diffusers_folder(layout, folder, build_tiny_flux(), TOKENIZERS["flux_schnell"])


def _bark(layout: Layout, folder: Path) -> None:
    import numpy as np
    import torch

    from i2v_dagster_tests.models.tiny_bark import build_tiny_bark

    model, processor, voice = build_tiny_bark()
    model.save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the repo's weights are a pickle
    write_fast_tokenizer(folder, processor.tokenizer, vocab_txt=True)
    presets: dict[str, Any] = {"repo_or_path": layout.repo}
    for name in ("en_speaker_6", "v2/en_speaker_6"):
        presets[name] = {}
        for key, array in voice.items():
            rel = f"speaker_embeddings/{name}_{key}.npy"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(folder / rel, array, allow_pickle=False)
            presets[name][key] = rel
    _write_json(folder / "speaker_embeddings_path.json", presets)


def _clip(layout: Layout, folder: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    from i2v_dagster_tests.models.tiny_clip import tiny_clip_config

    cfg = tiny_clip_config()
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    preprocess = {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    _write_json(folder / "open_clip_config.json", {"model_cfg": cfg, "preprocess_cfg": preprocess})
    save_file(state, str(folder / "open_clip_model.safetensors"))
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    torch.save(state, folder / "pytorch_model.bin")
    _write_json(folder / "config.json", {"architecture": "vit_base_patch32_clip_224", "num_classes": 512})
    write_clip_bpe(folder)
    toks.clip_tokenizer().backend_tokenizer.save(str(folder / "tokenizer.json"))


BUILDERS: dict[str, Callable[[Layout, Path], None]] = {
    **{a: _video(a) for a in ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")},
    "flux_schnell": _flux,
    "bark": _bark,
    "clip": _clip,
}


def _finish(layout: Layout, folder: Path) -> Path:
    """Stand-ins for the files adapters never read, then check the folder holds exactly the layout."""
    for path, fmt in layout.files.items():
        if fmt in ("other", "other-weights"):
            _stand_in(folder / path, fmt)
    made = folder_files(folder)
    if made != set(layout.files):
        raise AssertionError(
            f"{layout.adapter}: the folder differs from {layout.repo}'s layout: "
            f"extra {sorted(made - set(layout.files))}, missing {sorted(set(layout.files) - made)}"
        )
    return folder


def build_layout(adapter: str, folder: str | Path) -> Path:
    """Write the tiny folder of ``adapter``'s real repo into ``folder``: exactly the layout's files."""
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout = load_layout(adapter)
    BUILDERS[adapter](layout, folder)
    return _finish(layout, folder)


def to_hub_cache(folder: Path, files: Iterable[str], cache_dir: Path, layout: Layout) -> Path:
    """Copy ``files`` of ``folder`` into ``cache_dir`` as the snapshot of ``layout.repo`` at its revision
    (``refs/main`` pointing at it), as a download would leave them; returns the snapshot folder."""
    repo = cache_dir / f"models--{layout.repo.replace('/', '--')}"
    snapshot = repo / "snapshots" / layout.commit
    for rel in files:
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / rel, snapshot / rel)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(layout.commit)
    return snapshot
