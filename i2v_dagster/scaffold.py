"""Seed-scaffold job specs turned into this project's spec (``i2v import``).

The seed scaffold (github.com/ibrahimm7004/I2V-OSS-videoGen-pipeline, ``pipeline/job_schema.py``) describes
a video as ``job_name``, ``model: {id, version}``, ``output_root``, ``dry_run``, ``input_image``,
``global_params``, ``constants`` and a list of ``shots`` (``prompt``, ``negative_prompt``,
``duration_seconds``, ``steps``, ``fps``, ``frames``, ``seed``, ``width``, ``height``, ``params``), one clip
per shot. :func:`convert` maps what maps (one silent scene per shot) and says, in a :class:`Note` per key,
what each key became or why it was dropped; a key of the input never disappears without a note.

Plain Python (no Dagster, nothing written): the CLI validates the result with
:func:`i2v_dagster.specfile.parse_spec` and writes it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2v_dagster.errors import SpecError
from i2v_dagster.spec import NAME_PATTERN, JobSpec

SCAFFOLD_KEYS = (
    "job_name",
    "run_id",
    "model",
    "input_image",
    "output_root",
    "dry_run",
    "global_params",
    "constants",
    "shots",
)
"""Top-level keys of the scaffold's job spec."""
SHOT_KEYS = (
    "prompt",
    "negative_prompt",
    "duration_seconds",
    "steps",
    "fps",
    "frames",
    "seed",
    "width",
    "height",
    "params",
)
"""Keys of one scaffold shot."""
MARKERS = ("job_name", "shots", "output_root", "global_params", "constants", "run_id")
"""Keys only a scaffold spec has (``model``, ``input_image`` alone could be a typo of this project's keys)."""
DEFAULT_JOB_NAME = "video-gen-job"
SHOT_DEFAULTS: dict[str, Any] = {"duration_seconds": 2.0, "steps": 20, "fps": 8, "width": 512, "height": 512}
"""The scaffold's defaults for a shot's keys (applied when a shot leaves them out, as the scaffold did)."""

SCAFFOLD_MODEL_IDS: dict[str, str] = {
    "mock": "mock_video",
    "wan2.2": "wan22_ti2v_5b",
    "wan22": "wan22_ti2v_5b",
    "wan2.2-i2v": "wan22_ti2v_5b",
    "wan22_ti2v_5b": "wan22_ti2v_5b",
    "hunyuan-i2v": "hunyuan_i2v",
    "hunyuan_i2v": "hunyuan_i2v",
    "cogvideox1.5-i2v": "cogvideox15_5b_i2v",
    "cogvideox15-i2v": "cogvideox15_5b_i2v",
    "cogvideox15_5b_i2v": "cogvideox15_5b_i2v",
    "cogvideox-5b-i2v": "cogvideox_5b_i2v",
    "cogvideox_5b_i2v": "cogvideox_5b_i2v",
}
"""The scaffold's ``model.id`` values (matched without case, as the scaffold did) -> this project's video
adapter. CogVideoX-5B-I2V (720x480, 8 fps) is not in the scaffold; its ids are accepted for the 1.5's
sibling."""
NEGATIVE_PROMPT_ADAPTERS = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b")
"""Video adapters that take ``options.negative_prompt``."""
GUIDANCE_KEYS = ("cfg", "guidance_scale")
"""Where the scaffold looked for guidance, in order: a shot's ``params``, then ``global_params``."""


@dataclass(frozen=True)
class Note:
    """One scaffold key (``shots.*.fps`` for a key of every shot) and what became of it."""

    key: str
    text: str
    dropped: bool = False

    def __str__(self) -> str:
        return f"{self.key}: {self.text}"


@dataclass
class Conversion:
    """The converted spec (this project's, as a plain mapping) and a note per scaffold key."""

    spec: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    source: str = "spec"

    @property
    def name(self) -> str:
        return self.spec["name"]


def looks_like_scaffold(data: Any) -> bool:
    """Whether ``data`` is a seed-scaffold job spec: a mapping with a key only the scaffold has, or a
    ``model`` mapping holding an ``id``."""
    if not isinstance(data, dict):
        return False
    if any(key in data for key in MARKERS):
        return True
    model = data.get("model")
    return isinstance(model, dict) and "id" in model and "models" not in data


def scaffold_hint(data: dict[str, Any], source: str) -> str:
    """The one-line refusal of a scaffold spec where this project's spec is expected."""
    keys = [k for k in (*MARKERS, "model") if k in data]
    return (
        f"{source}: looks like a seed-scaffold job spec ({', '.join(keys)}), not this project's; "
        f"convert it with `i2v import {source}`"
    )


def safe_name(text: str) -> str:
    """``text`` as a video name (:data:`~i2v_dagster.spec.NAME_PATTERN`): lowercase, runs of other
    characters as '-', at most 64 characters; empty when nothing usable is left."""
    name = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).lstrip("-_")
    return name[:64].rstrip("-_")


def video_adapter(model_id: str, *, source: str = "spec") -> str:
    """This project's video adapter for a scaffold ``model.id``; an unknown id is refused naming it."""
    adapter = SCAFFOLD_MODEL_IDS.get(model_id.strip().lower())
    if adapter is None:
        raise SpecError(
            f"{source}: model.id: unknown video model {model_id!r}; known: {', '.join(SCAFFOLD_MODEL_IDS)}"
        )
    return adapter


def convert(
    data: Any, *, source: str, name: str | None = None, base_dir: str | Path | None = None
) -> Conversion:
    """A scaffold job spec as this project's spec (a mapping, not validated yet: the caller runs
    :func:`~i2v_dagster.specfile.parse_spec` on it), with a :class:`Note` for every key of ``data``.

    ``name`` replaces the name made from ``job_name``; ``base_dir`` is where a relative ``input_image`` is
    found (the scaffold read it relative to the job file). Bad input is a one-line :class:`SpecError`
    naming the key.
    """
    read = _Reader(source)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    notes: list[Note] = []
    out: dict[str, Any] = {}

    out["name"] = _name(read, data, name, notes)
    for key in data:
        if key not in SCAFFOLD_KEYS:
            notes.append(
                Note(str(key), "not a key of the scaffold's job spec (it ignored it too); dropped", True)
            )
    if "run_id" in data:
        run_id = read.text("run_id", data["run_id"], optional=True)
        notes.append(
            Note(
                "run_id",
                f"{run_id!r} dropped: Dagster gives every run its own id (the video's key is name)",
                True,
            )
        )

    adapter = _model(read, data, notes)
    video: dict[str, Any] = {"adapter": adapter}
    models: dict[str, Any] = {
        "script": {"adapter": "spec"},
        "speech": {"adapter": "none"},
        "image": {"adapter": "mock_image" if adapter == "mock_video" else "flux_schnell"},
        "video": video,
    }

    shots = _shots(read, data)
    scenes = [
        {"visual_prompt": s["prompt"], "motion_prompt": s["prompt"], "duration_s": s["seconds"]}
        for s in shots
    ]
    _shot_notes(data["shots"], shots, notes)
    for key, target in (("fps", "fps"), ("width", "width"), ("height", "height"), ("seed", "seed")):
        out[target] = _one_value(key, target, [s[key] for s in shots], notes, present=_present(data, key))
    steps = _one_value(
        "steps",
        "models.video.num_inference_steps",
        [s["steps"] for s in shots],
        notes,
        _present(data, "steps"),
    )
    video["num_inference_steps"] = steps
    _negative_prompt(shots, adapter, video, notes)
    _guidance(read, data, shots, video, notes)
    chain_mode = _global_params(read, data, adapter, notes)
    if chain_mode is not None:
        out["chain_mode"] = chain_mode
    subject = _constants(read, data, notes)
    if subject:
        out["subject"] = subject

    if data.get("input_image") is not None:
        raw = read.text("input_image", data["input_image"])
        image = Path(raw).expanduser()
        where = ""
        if not image.is_absolute() and base_dir is not None:
            image, where = Path(base_dir) / image, "; found beside the job file, as the scaffold did"
        out["initial_image"] = str(image)
        notes.append(Note("input_image", f"-> initial_image: {str(image)!r} (starts clip 0{where})"))
    elif "input_image" in data:
        notes.append(Note("input_image", "empty: clip 0 starts from keyframe 0"))
    if "output_root" in data:
        root = read.text("output_root", data["output_root"])
        out["outputs_root"] = root
        notes.append(
            Note("output_root", f"-> outputs_root: {root!r} (the video lands in {root}/{out['name']}/)")
        )
    if "dry_run" in data:
        dry = read.flag("dry_run", data["dry_run"])
        out["dry_run"] = dry
        how = (
            f"validated against {adapter}'s rules, then rendered with the mock adapters: no model loads"
            if dry
            else "a full render"
        )
        notes.append(Note("dry_run", f"-> dry_run: {str(dry).lower()} ({how})"))
    out["scenes"] = scenes
    out["models"] = models
    return Conversion(spec=out, notes=notes, source=source)


def with_overrides(spec: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``spec`` with ``--set key=value`` overrides applied (the same rules as every other entry point:
    a key that is no field of the spec is refused), keeping only the keys given or changed."""
    if not overrides:
        return spec
    from pydantic import ValidationError

    from i2v_dagster.specfile import apply_overrides

    try:
        before = JobSpec.model_validate(spec).model_dump(mode="json")
    except ValidationError:  # the override may be the fix: applied to the spec as given
        return apply_overrides(spec, overrides)
    after = apply_overrides(before, overrides)
    return _changes(spec, before, after)


def job_file_text(spec: dict[str, Any], conversion: Conversion, *, overrides: list[str] | None = None) -> str:
    """``spec`` as a job file like those in ``jobs/`` (run config: the spec under ``ops.script.config``),
    headed by comments naming the source and every conversion note."""
    import yaml

    lines = [
        f"# Run config for render_video, imported from the seed-scaffold job spec {conversion.source}",
        f"#   i2v run <this file>   (the run's videos partition: {spec['name']})",
        "# What became of each scaffold key:",
        *(f"#   {_one_line(str(note))}" for note in conversion.notes),
    ]
    if overrides:
        lines.append("# Overrides given to i2v import: " + _one_line(" ".join(overrides)))
    body = yaml.safe_dump(
        {"ops": {"script": {"config": spec}}}, sort_keys=False, allow_unicode=True, width=100
    )
    return "\n".join(lines) + "\n" + body


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _changes(given: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out = dict(given)
    for key, value in after.items():
        if key in before and before[key] == value:
            continue
        old = given.get(key)
        if isinstance(value, dict) and isinstance(before.get(key), dict):
            out[key] = _changes(old if isinstance(old, dict) else {}, before[key], value)
        else:
            out[key] = value
    return out


# ---- the parts ---------------------------------------------------------------------------------------------


class _Reader:
    """Typed reads of scaffold values; a wrong one is a one-line SpecError naming the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, what: str, value: Any) -> SpecError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return SpecError(f"{self.source}: {key}: expected {what}, got {shown} ({type(value).__name__})")

    def text(self, key: str, value: Any, *, optional: bool = False) -> str:
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            raise self.fail(key, "text", value)
        return value

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def whole(self, key: str, value: Any, *, positive: bool = True) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (positive and value <= 0):
            raise self.fail(key, "a whole number > 0" if positive else "a whole number", value)
        return value

    def number(self, key: str, value: Any, *, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, "a finite number", value)
        if positive and value <= 0:
            raise self.fail(key, "a number > 0", value)
        return float(value)

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "a mapping", value)
        return value


def _name(read: _Reader, data: dict[str, Any], given: str | None, notes: list[Note]) -> str:
    job_name = read.text("job_name", data["job_name"]) if "job_name" in data else DEFAULT_JOB_NAME
    if given is not None:
        if not re.fullmatch(NAME_PATTERN, given):
            raise SpecError(f"--name: {given!r} must match {NAME_PATTERN}")
        if "job_name" in data:
            notes.append(Note("job_name", f"{job_name!r} replaced by the name given: {given!r}"))
        return given
    name = safe_name(job_name)
    if not name:
        raise SpecError(
            f"{read.source}: job_name: {job_name!r} has no letter or digit to make a video name of; "
            "pass --name"
        )
    if "job_name" not in data:
        notes.append(Note("job_name", f"absent: the scaffold's default {name!r} used as name"))
    elif name == job_name:
        notes.append(Note("job_name", f"-> name: {name!r}"))
    else:
        notes.append(
            Note(
                "job_name",
                f"{job_name!r} -> name: {name!r} (a name is lowercase letters, digits, '-' and '_', "
                "at most 64)",
            )
        )
    return name


def _model(read: _Reader, data: dict[str, Any], notes: list[Note]) -> str:
    if "model" not in data:
        raise SpecError(f"{read.source}: model: required (model.id names the video model)")
    model = read.mapping("model", data["model"])
    if "id" not in model:
        raise SpecError(f"{read.source}: model.id: required (the video model, e.g. mock or wan22_ti2v_5b)")
    model_id = read.text("model.id", model["id"])
    adapter = video_adapter(model_id, source=read.source)
    keyframes = (
        "mock_image"
        if adapter == "mock_video"
        else "flux_schnell (the scaffold had no keyframe model; this project draws one keyframe per scene)"
    )
    notes.append(Note("model.id", f"{model_id!r} -> models.video.adapter: {adapter}; keyframes: {keyframes}"))
    if "version" in model:
        version = read.text("model.version", model["version"], optional=True)
        notes.append(
            Note(
                "model.version",
                f"{version!r} dropped: a label in the scaffold's manifest, not a hub revision "
                "(pin one with models.video.revision)",
                True,
            )
        )
    for key in model:
        if key not in ("id", "version"):
            notes.append(
                Note(f"model.{key}", "not a key of the scaffold's model (it ignored it too); dropped", True)
            )
    return adapter


def _shots(read: _Reader, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each shot's values, typed, with the scaffold's defaults, and its length in seconds."""
    if "shots" not in data:
        raise SpecError(f"{read.source}: shots: required (one per clip)")
    raw = data["shots"]
    if not isinstance(raw, list):
        raise read.fail("shots", "a list of shots", raw)
    if not raw:
        raise SpecError(f"{read.source}: shots: empty; a job needs at least one shot")
    shots = []
    for i, shot in enumerate(raw):
        where = f"shots.{i}"
        shot = read.mapping(where, shot)
        if "prompt" not in shot:
            raise SpecError(f"{read.source}: {where}.prompt: required")
        values = {**SHOT_DEFAULTS, "negative_prompt": None, "frames": None, "seed": None, "params": {}}
        values["prompt"] = read.text(f"{where}.prompt", shot["prompt"])
        for key in ("steps", "fps", "width", "height"):
            if key in shot:
                values[key] = read.whole(f"{where}.{key}", shot[key])
        if "duration_seconds" in shot:
            values["duration_seconds"] = read.number(f"{where}.duration_seconds", shot["duration_seconds"])
        if shot.get("frames") is not None:
            values["frames"] = read.whole(f"{where}.frames", shot["frames"])
        if shot.get("seed") is not None:
            values["seed"] = read.whole(f"{where}.seed", shot["seed"], positive=False)
        if shot.get("negative_prompt") is not None:
            values["negative_prompt"] = read.text(f"{where}.negative_prompt", shot["negative_prompt"])
        if "params" in shot:
            values["params"] = read.mapping(f"{where}.params", shot["params"])
        frames = values["frames"]
        values["seconds"] = frames / values["fps"] if frames is not None else values["duration_seconds"]
        if values["seed"] is None:
            values["seed"] = i  # the scaffold seeded a shot without one with its clip index
        shots.append(values)
    return shots


def _present(data: dict[str, Any], key: str) -> bool:
    return any(isinstance(s, dict) and s.get(key) is not None for s in data["shots"])


def _shot_notes(raw: list[Any], shots: list[dict[str, Any]], notes: list[Note]) -> None:
    n = len(shots)
    notes.append(
        Note(
            "shots.*.prompt",
            f"-> scenes.*.visual_prompt and scenes.*.motion_prompt ({n} shot{'s' * (n != 1)} -> "
            f"{n} scene{'s' * (n != 1)}; narration empty)",
        )
    )
    given = {key: _present({"shots": raw}, key) for key in ("duration_seconds", "frames")}
    if given["duration_seconds"] or not all(s["frames"] is not None for s in shots):
        seconds = ", ".join(f"{s['seconds']:g}" for s in shots)
        default = "" if given["duration_seconds"] else " (the scaffold's default)"
        notes.append(
            Note(
                "shots.*.duration_seconds",
                f"-> scenes.*.duration_s: {seconds}{default}; a silent video (models.speech.adapter: none), "
                "each scene as long as its shot",
            )
        )
    if given["frames"]:
        notes.append(
            Note(
                "shots.*.frames",
                "-> scenes.*.duration_s = frames / fps where given (this project plans frames from seconds)",
            )
        )
    unknown: dict[str, list[int]] = {}
    params: dict[str, list[int]] = {}
    for i, shot in enumerate(raw):
        for key in shot:
            if key not in SHOT_KEYS:
                unknown.setdefault(str(key), []).append(i)
        for key in shot.get("params") or {}:
            if key not in GUIDANCE_KEYS:
                params.setdefault(str(key), []).append(i)
    for key, where in unknown.items():
        notes.append(
            Note(
                f"shots.*.{key}", f"in shots {_list(where)}: not a key of the scaffold's shot; dropped", True
            )
        )
    for key, where in params.items():
        notes.append(
            Note(
                f"shots.*.params.{key}",
                f"in shots {_list(where)}: no counterpart in this project's spec; dropped",
                True,
            )
        )


def _one_value(key: str, target: str, values: list[Any], notes: list[Note], present: bool) -> Any:
    """One value for the whole video from the shots' values: the first shot's, saying so when they differ."""
    first = values[0]
    label = f"shots.*.{key}"
    if key == "seed":
        extra = "; each clip's seed derives from it"
        default = "absent: the scaffold seeded each clip with its index"
    else:
        extra = ""
        default = f"absent: the scaffold's default {SHOT_DEFAULTS.get(key)!r}"
    if len(set(values)) > 1:
        notes.append(
            Note(
                label,
                f"the shots differ ({', '.join(map(str, values))}); {target} is one value for the whole "
                f"video: the first shot's {first!r} used{extra}",
            )
        )
    elif present:
        notes.append(Note(label, f"-> {target}: {first!r}{extra}"))
    else:
        notes.append(Note(label, f"{default} -> {target}: {first!r}{extra}"))
    return first


def _negative_prompt(
    shots: list[dict[str, Any]], adapter: str, video: dict[str, Any], notes: list[Note]
) -> None:
    values = [s["negative_prompt"] for s in shots]
    if all(v is None for v in values):
        return
    label = "shots.*.negative_prompt"
    if adapter not in NEGATIVE_PROMPT_ADAPTERS:
        notes.append(Note(label, f"dropped: {adapter} takes no negative prompt", True))
        return
    first = values[0]
    if first is not None:
        video["options"] = {"negative_prompt": first}
    target = "models.video.options.negative_prompt"
    if len(set(values)) > 1:
        notes.append(
            Note(
                label,
                f"the shots differ; {target} is one for the whole video: the first shot's {first!r} used",
            )
        )
    else:
        notes.append(Note(label, f"-> {target}"))


def _guidance(
    read: _Reader, data: dict[str, Any], shots: list[dict[str, Any]], video: dict[str, Any], notes: list[Note]
) -> None:
    """Guidance as the scaffold resolved it for each shot: the shot's params.cfg, its params.guidance_scale,
    then global_params.cfg, then global_params.guidance_scale."""
    glob = read.mapping("global_params", data["global_params"]) if data.get("global_params") else {}
    fallback, fallback_key = None, None
    for key in GUIDANCE_KEYS:
        if glob.get(key) is not None and fallback is None:
            fallback, fallback_key = read.number(f"global_params.{key}", glob[key], positive=False), key
    values, own = [], []
    for i, shot in enumerate(shots):
        value = None
        for key in GUIDANCE_KEYS:
            if shot["params"].get(key) is not None and value is None:
                value = read.number(f"shots.{i}.params.{key}", shot["params"][key], positive=False)
        own.append(value is not None)
        values.append(value if value is not None else fallback)
    target = "models.video.guidance_scale"
    first = values[0]
    if first is not None:
        video["guidance_scale"] = first
    for key in GUIDANCE_KEYS:
        if key not in glob:
            continue
        label = f"global_params.{key}"
        if key != fallback_key:
            why = "empty" if glob[key] is None else "global_params.cfg comes first (as in the scaffold)"
            notes.append(Note(label, f"dropped: {why}", True))
        elif all(own):
            notes.append(Note(label, "dropped: every shot's params set its own guidance", True))
        else:
            where = " (for the shots whose params set none)" if any(own) else ""
            notes.append(Note(label, f"-> {target}: {fallback!r}{where}"))
    differ = len(set(values)) > 1
    for key in GUIDANCE_KEYS:
        if any(key in s["params"] for s in shots):
            text = (
                f"the shots differ ({', '.join(map(str, values))}); {target} is one value for the whole "
                f"video: the first shot's {first!r} used"
                if differ
                else f"-> {target}: {first!r}"
            )
            notes.append(Note(f"shots.*.params.{key}", text))


def _global_params(read: _Reader, data: dict[str, Any], adapter: str, notes: list[Note]) -> str | None:
    """The keys of global_params other than guidance; returns a chain mode when one is set."""
    if "global_params" not in data:
        return None
    glob = read.mapping("global_params", data["global_params"]) if data["global_params"] is not None else {}
    chain_mode = None
    for key, value in glob.items():
        if key in GUIDANCE_KEYS:
            continue
        label = f"global_params.{key}"
        if key == "chain_last_frame":
            chain = read.flag(label, value)
            if adapter == "wan22_ti2v_5b":
                chain_mode = "last_frame" if chain else "keyframe"
                notes.append(
                    Note(
                        label,
                        f"-> chain_mode: {chain_mode} (last_frame: each clip starts from the last frame of "
                        "the one before; keyframe: each scene from its own keyframe)",
                    )
                )
            else:
                notes.append(
                    Note(
                        label,
                        "dropped: the scaffold read it for Wan only (other models always chained)",
                        True,
                    )
                )
        elif key == "sampler":
            notes.append(
                Note(label, f"{value!r} dropped: each adapter uses its pipeline's own scheduler", True)
            )
        else:
            notes.append(Note(label, "dropped: no counterpart in this project's spec", True))
    return chain_mode


def _constants(read: _Reader, data: dict[str, Any], notes: list[Note]) -> str:
    """The constants' global_prompt (the subject); every other constant named and dropped."""
    if "constants" not in data:
        return ""
    constants = read.mapping("constants", data["constants"]) if data["constants"] is not None else {}
    subject = ""
    for key, value in constants.items():
        label = f"constants.{key}"
        if key == "global_prompt":
            subject = read.text(label, value, optional=True).strip()
            notes.append(
                Note(
                    label, "-> subject (goes into every keyframe prompt)" if subject else "empty; no subject"
                )
            )
        else:
            notes.append(
                Note(
                    label,
                    "dropped: no counterpart (the scaffold wrote it into each clip's prompt text)",
                    True,
                )
            )
    return subject


def _list(indexes: list[int]) -> str:
    return ", ".join(str(i) for i in indexes)
