"""Reading, overriding and validating job specs: the one way every entry point turns input into a JobSpec.

``i2v validate``, ``i2v run``, ``dagster job execute`` and the Launchpad all end in :func:`validate_spec`:
pydantic's field rules (:mod:`i2v_dagster.spec`), then the adapters' rules (the registry), then the files a
spec names. Files are read strictly: duplicate keys, oversized documents and YAML alias bombs are refused.
Every error is a :class:`SpecError` whose lines each name the field (or file) and the value.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from i2v_dagster.errors import SpecError
from i2v_dagster.spec import NONE, JobSpec

MAX_DOCUMENT_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
"""Nodes a YAML document may expand to once aliases are followed (a 9-line alias bomb expands to millions)."""
MAX_IMAGE_SIDE = 8192
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")


# ---- reading ---------------------------------------------------------------------------------------------


def _duplicate_key(node: yaml.Node, path: tuple[str, ...], seen: set[int]) -> SpecError | None:
    """The first mapping key written twice under the same parent (PyYAML keeps the last one silently),
    named by its dotted path and both lines."""
    if id(node) in seen:  # an alias: checked where it was defined
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Mark] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in first:
                mark = key_node.start_mark
                return SpecError(
                    f"duplicate key {'.'.join((*path, key))} at line {mark.line + 1}, column "
                    f"{mark.column + 1} (first at line {first[key].line + 1})"
                )
            if key is not None:
                first[key] = key_node.start_mark
            found = _duplicate_key(value_node, (*path, str(key)), seen)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            found = _duplicate_key(child, (*path, str(index)), seen)
            if found is not None:
                return found
    return None


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds with every alias followed (shared nodes counted each time they appear)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_NODES + 1)
    return memo[id(node)]


def parse_yaml(text: str, *, source: str) -> Any:
    """One YAML document, strictly: duplicate keys and alias expansion beyond ``MAX_YAML_NODES`` refused."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise SpecError(
                f"{source}: the document expands to more than {MAX_YAML_NODES:,} values once its aliases "
                "are followed (a YAML alias bomb?)"
            )
        duplicate = _duplicate_key(node, (), set())
        if duplicate is not None:
            raise SpecError(f"{source}: {duplicate}")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def read_document(path: str | Path) -> Any:
    """The parsed contents of a YAML or JSON file (refused when missing, not a file, or too large)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}" if not p.exists() else f"{p}: not a regular file")
    size = p.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise SpecError(f"{p}: {size:,} bytes; a spec file may hold at most {MAX_DOCUMENT_BYTES:,}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_json_keys)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{p}: not valid JSON: {exc}") from None
        except SpecError as exc:
            raise SpecError(f"{p}: {_json_duplicate_with_path(text) or exc}") from None
    return parse_yaml(text, source=str(p))


def _json_duplicate_with_path(text: str) -> SpecError | None:
    """The duplicate key of a JSON document named by its path (JSON is YAML's flow style)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return _duplicate_key(node, (), set()) if node is not None else None


def _no_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError(f"duplicate key {key!r}")
        out[key] = value
    return out


def extract_spec_dict(data: Any, *, source: str = "spec") -> dict[str, Any]:
    """Accept a bare spec, or Dagster run config holding it under ``ops.script.config``."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    ops = data.get("ops")
    if isinstance(ops, dict) and "script" in ops:
        unknown = sorted(set(data) - {"ops", "resources", "execution", "loggers"})
        if unknown:
            raise SpecError(f"{source}: unknown top-level key {unknown[0]!r} in run config")
        try:
            inner = ops["script"]["config"]
        except (KeyError, TypeError):
            raise SpecError(f"{source}: ops.script.config is missing") from None
        if not isinstance(inner, dict):
            raise SpecError(f"{source}: ops.script.config must be a mapping")
        return inner
    return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    data = extract_spec_dict(read_document(path), source=str(path))
    refuse_scaffold(data, source=str(path))
    return data


def refuse_scaffold(data: dict[str, Any], *, source: str) -> None:
    """A seed-scaffold job spec (``job_name``, ``shots``, ``model.id``) is refused in one line that names
    ``i2v import`` (pydantic would list every scaffold key as unknown instead)."""
    from i2v_dagster.scaffold import looks_like_scaffold, scaffold_hint

    if looks_like_scaffold(data):
        raise SpecError(scaffold_hint(data, source))


# ---- overrides -------------------------------------------------------------------------------------------


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML); every part of the path must exist
    in the spec (with defaults filled in), so a typo is refused instead of silently dropped."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected key=value")
        value = parse_yaml(raw, source=f"--set {key}") if raw.strip() else ""
        target: Any = out
        parts = key.split(".")
        for depth, part in enumerate(parts):
            where = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(target, list):
                if not part.isdigit() or int(part) >= len(target):
                    raise SpecError(f"--set {key}: {part!r} is not an index of a list of {len(target)}")
                index = int(part)
                if last:
                    target[index] = value
                else:
                    target = target[index]
                continue
            if not isinstance(target, dict):
                parent = ".".join(parts[:depth]) or "the spec"
                kind = type(target).__name__
                raise SpecError(f"--set {key}: {parent} holds {kind} {target!r}, not a mapping")
            if part not in target and not _open_mapping(parts[:depth]):
                raise SpecError(f"--set {key}: no field {where!r} in the spec")
            if last:
                target[part] = value
            else:
                target = target.setdefault(part, {})
    return out


def _open_mapping(path: list[str]) -> bool:
    """Mappings whose keys are free (adapter options): a new key there is checked by the adapter."""
    return len(path) == 3 and path[0] == "models" and path[2] == "options"


# ---- validating ------------------------------------------------------------------------------------------


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (not a field of the spec)")
            continue
        if err["type"] == "missing":
            lines.append(f"{loc}: required")
            continue
        if err["type"] == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            what = "unknown adapter" if loc.endswith(".adapter") else "not allowed:"
            lines.append(f"{loc}: {what} {_short(value)}; known: {allowed}")
            continue
        shown = "" if isinstance(value, dict | list) else f" (got {_short(value)})"
        lines.append(f"{loc}: {msg}{shown}")
    return "invalid job spec:\n  " + "\n  ".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_spec(
    data: Any,
    overrides: list[str] | None = None,
    *,
    check_files: bool = True,
    check_card: bool = True,
    check_extras: bool = True,
) -> JobSpec:
    """``data`` (a spec mapping) with ``overrides`` applied, validated by every rule; raises SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"invalid job spec: expected a mapping, got {type(data).__name__}")
    if overrides:
        data = apply_overrides(_with_defaults(data), overrides)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
    problems = spec_problems(spec, check_files=check_files, check_card=check_card, check_extras=check_extras)
    if problems:
        raise SpecError("invalid job spec:\n  " + "\n  ".join(problems))
    return spec


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The spec with its defaults filled in, so an override of a nested default lands on a real field;
    the data as given when it does not validate yet (the override may be the fix)."""
    try:
        return JobSpec.model_validate(data).model_dump()
    except ValidationError:
        return data


def load_spec(path: str | Path, overrides: list[str] | None = None, **checks: bool) -> JobSpec:
    """A spec file (``checks``: ``check_files``, ``check_card``, ``check_extras``, all on by default)."""
    return parse_spec(read_spec_file(path), overrides, **checks)


def spec_problems(
    spec: JobSpec, *, check_files: bool = True, check_card: bool = True, check_extras: bool = True
) -> list[str]:
    """Rules across fields: the adapters' (the registry's business) and the files the spec names."""
    from i2v_dagster.models.registry import spec_problems as adapter_problems

    problems = []
    if spec.models.script.adapter == "spec" and not spec.scenes:
        problems.append(
            "scenes: empty, and models.script.adapter is 'spec': fill in the scenes (a new video's Launchpad "
            "config is a stub without any), or let a script writer write them"
        )
    if spec.silent:
        missing = [i for i, s in enumerate(spec.scenes) if s.duration_s is None]
        if missing:
            problems.append(
                f"scenes.{missing[0]}.duration_s: required when models.speech.adapter is 'none' "
                "(silent video)"
            )
    problems += adapter_problems(spec, check_extras=check_extras)
    if not problems and check_card:
        from i2v_dagster.gpu_plan import card_problems

        problems += card_problems(spec)
    if check_files:
        if spec.initial_image is not None:
            problems += image_problems("initial_image", spec.initial_image)
        if spec.outputs_root is not None:
            problems += folder_problems("outputs_root", spec.outputs_root)
    return problems


def image_problems(field: str, value: str) -> list[str]:
    """A readable image file of sane size, opened now (not when the clips step reaches it)."""
    path = Path(value).expanduser()
    if not path.exists():
        return [f"{field}: file not found: {path.resolve()}"]
    if not path.is_file():
        return [f"{field}: {path} is not a regular file"]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt, (w, h) = img.format, img.size
            if fmt not in IMAGE_FORMATS:
                return [f"{field}: {path} is a {fmt} image; use {', '.join(IMAGE_FORMATS)}"]
            if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
                return [f"{field}: {path} is {w}x{h}; each side must be 1..{MAX_IMAGE_SIDE} pixels"]
            img.load()
    except UnidentifiedImageError:
        return [f"{field}: {path} is not an image file"]
    except (OSError, SyntaxError, ValueError) as exc:
        return [f"{field}: {path} cannot be read as an image: {exc}"]
    except Image.DecompressionBombError as exc:
        return [f"{field}: {path} is too large an image: {exc}"]
    return []


def folder_problems(field: str, value: str) -> list[str]:
    """A folder we can write in (probed with a temporary file, removed at once), or one that can be made
    under such a folder."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        return [f"{field}: {path} exists and is not a folder"]
    probe_dir = path if path.exists() else next((p for p in path.absolute().parents if p.is_dir()), None)
    if probe_dir is None:
        return [f"{field}: {path} cannot be created (no existing folder above it)"]
    try:
        with tempfile.TemporaryFile(dir=probe_dir):
            pass
    except OSError as exc:
        what = "is not a writable folder" if probe_dir == path else f"cannot be created under {probe_dir}"
        return [f"{field}: {path} {what} ({exc.strerror})"]
    return []


# ---- dry run ---------------------------------------------------------------------------------------------

REHEARSAL_MOCKS = {
    "ollama": "mock_script",
    "bark": "mock_speech",
    "flux_schnell": "mock_image",
    "cogvideox_5b_i2v": "mock_video",
    "cogvideox15_5b_i2v": "mock_video",
    "wan22_ti2v_5b": "mock_video",
    "hunyuan_i2v": "mock_video",
    "clip": NONE,
}
"""Real adapter -> what a dry run uses instead (the ``spec`` writer, the mocks and ``none`` stay)."""


def rehearsal(spec: JobSpec, log: Callable[[str], None] | None = None) -> JobSpec:
    """What a dry run (``dry_run: true``) renders: ``spec`` with every real adapter swapped for its mock
    (the scorer for ``none``), the swapped roles' settings (model, revision, dtype, quantization, options)
    back to their defaults, and size, fps and frames per clip kept.

    The spec is first checked against the REAL adapters' rules, so a rehearsal still refuses a size or
    frame rate the real model cannot make. Where the mock makes fewer frames per clip than the real job
    plans, ``max_clip_frames`` becomes the mock's limit (more, shorter clips); otherwise it is pinned to
    the real job's value. Each change is passed to ``log`` as one line. Raises :class:`SpecError`.
    """
    from i2v_dagster.models.registry import ROLES, get_adapter_info, max_clip_frames, settings_for

    say = log or (lambda _line: None)
    problems = spec_problems(spec, check_files=False)
    if problems:
        raise SpecError("invalid job spec:\n  " + "\n  ".join(problems))
    data = spec.model_dump()
    swapped = []
    for role in ROLES:
        choice = getattr(spec.models, role)
        mock = REHEARSAL_MOCKS.get(choice.adapter)
        if mock is None:
            continue
        data["models"][role] = {"adapter": mock}
        swapped.append(role)
        say(f"dry run: models.{role}.adapter {choice.adapter} -> {mock} (its settings back to defaults)")
    real_frames = max_clip_frames(spec)
    if "video" in swapped:
        video = get_adapter_info(data["models"]["video"]["adapter"])
        mock_frames = video.constraints_for(
            settings_for(JobSpec.model_validate(data).models.video)
        ).usable_frames
        frames = min(real_frames, mock_frames)
        data["max_clip_frames"] = frames
        if frames < real_frames:
            say(
                f"dry run: max_clip_frames {frames}: {video.name} makes at most {mock_frames} frames per "
                f"clip, {spec.models.video.adapter} {real_frames} (the rehearsal has more, shorter clips)"
            )
    rehearsed = JobSpec.model_validate(data)
    problems = spec_problems(rehearsed, check_files=False)
    if problems:
        raise SpecError("dry run: the mock adapters cannot rehearse this spec:\n  " + "\n  ".join(problems))
    if not swapped:
        say("dry run: every adapter is already a mock (or the spec writer)")
    return rehearsed
