"""script -> narration -> keyframes: the spec made concrete, audio first.

(No `from __future__ import annotations` in asset modules: Dagster resolves config and resource
parameters from real annotations.)
"""

import contextlib
import time

import dagster as dg
import numpy as np

from i2v_dagster.artefacts import content_key, file_hashes, read_record, reusable
from i2v_dagster.defs.common import load_video, log_stage_plan, path_md, timings_md
from i2v_dagster.defs.config import spec_config_schema
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.errors import SpecError
from i2v_dagster.fsutil import remove_stale_temporaries, save_png_atomic, sha256_file, write_json_atomic
from i2v_dagster.media.audio import pad_to, read_wav, write_wav
from i2v_dagster.models.registry import max_clip_frames, settings_for, stage_settings
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import plan_timeline, scene_frames
from i2v_dagster.progress import ProgressEvent, notify
from i2v_dagster.spec import derive_seed
from i2v_dagster.specfile import parse_spec, rehearsal

SILENT_SCENE_S = 2.0
DEFAULT_RATE = 24_000


@dg.asset(
    partitions_def=VIDEOS,
    group_name="video",
    config_schema=spec_config_schema(),
    description="Validates the job spec (run config) and writes the script: subject and scenes.",
)
def script(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    try:
        config = parse_spec(context.op_execution_context.op_config)
    except SpecError as exc:  # one message naming each field, no stack trace
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if config.name != context.partition_key:
        raise dg.Failure(
            description=f"name: the spec is for video {config.name!r} "
            f"but the run's partition is {context.partition_key!r}",
            allow_retries=False,
        )
    try:
        run_spec = rehearsal(config, log=context.log.info) if config.dry_run else config
    except SpecError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    notify(ProgressEvent(video=config.name, phase="script"))
    paths = VideoPaths.for_video(config.outputs_root or outputs.root, config.name)
    stale = remove_stale_temporaries(paths.root)
    if stale:
        context.log.info(
            "removed %d temporary files left by a run that died: %s",
            len(stale),
            ", ".join(paths.rel(p) for p in stale[:12]),
        )
    started = time.monotonic()
    choice = run_spec.models.script
    with residency.use(choice.adapter, settings_for(choice)) as writer:
        written = writer.write(run_spec)
    write_json_atomic(paths.spec, config.model_dump(mode="json"))
    write_json_atomic(paths.script, written.model_dump(mode="json"))
    context.log.info(
        "script: %d scenes about %r (writer %s)", len(written.scenes), written.subject, choice.adapter
    )
    return dg.MaterializeResult(
        metadata={
            "video_dir": dg.MetadataValue.path(str(paths.root)),
            "spec": path_md(paths, paths.spec),
            "script": path_md(paths, paths.script),
            "spec_sha256": sha256_file(paths.spec),
            "scenes": len(written.scenes),
            "subject": written.subject,
            "writer": choice.adapter,
            "seed": config.seed,
            **timings_md(total=time.monotonic() - started),
        }
    )


def remove_beyond(paths, count: int, patterns: tuple[str, ...], log) -> list[str]:
    """Delete per-scene or per-clip files whose index is ``count`` or more (no longer in the plan)."""
    removed = []
    for pattern in patterns:
        for path in sorted(paths.root.glob(pattern)):
            digits = path.name.split("_")[1][:3]
            if digits.isdigit() and int(digits) >= count:
                path.unlink(missing_ok=True)
                removed.append(paths.rel(path) if path.is_absolute() else str(path))
    if removed:
        log.info("removed %d files no longer in the plan: %s", len(removed), ", ".join(removed[:12]))
    return removed


def scene_speech(spec, scenes, paths, speech_model, log) -> tuple[list[np.ndarray], int, list[bool]]:
    """Each scene's spoken audio: reused where a stored scene has the same key and an intact file, made by
    the speech model (loaded only when needed) otherwise. Returns samples, rate and which were reused."""
    choice = spec.models.speech
    settings = choice.model_dump(mode="json")
    audio, reused, rate = [], [], DEFAULT_RATE
    for i, scene in enumerate(scenes):
        seed = derive_seed(spec.seed, f"speech:{i}")
        key = content_key(
            {"text": scene.narration, "speech": settings, "seed": seed, "silence_s": scene.duration_s}
        )
        record = read_record(paths.scene_audio_record(i))
        if reusable(record, key, paths.root):
            samples, rate = read_wav(paths.scene_audio(i))
            audio.append(samples)
            reused.append(True)
            continue
        if scene.narration.strip():
            made = speech_model.get().synthesize(scene.narration, seed=seed)
            samples, rate = made.samples, made.sample_rate
        else:
            samples = np.zeros(int((scene.duration_s or SILENT_SCENE_S) * rate), dtype=np.float32)
        write_wav(paths.scene_audio(i), samples, rate)
        samples, _ = read_wav(paths.scene_audio(i))  # as stored (16-bit), so a reuse gives the same bytes
        write_json_atomic(
            paths.scene_audio_record(i),
            {
                "content_key": key,
                "files": file_hashes(paths.root, [paths.scene_audio(i)]),
                "sample_rate": rate,
            },
        )
        audio.append(samples)
        reused.append(False)
    return audio, rate, reused


@dg.asset(
    partitions_def=VIDEOS,
    deps=[script],
    group_name="video",
    pool="gpu",
    description="Narration per scene (audio first): its durations decide each scene's frame count. A scene "
    "whose text, voice and seed are unchanged keeps its stored audio.",
)
def narration(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key, phase="narration")
    spec, paths, scenes = state.spec, state.paths, state.script().scenes
    started = time.monotonic()
    fps = spec.fps
    padded: list[np.ndarray] = []
    rate = DEFAULT_RATE
    reused: list[bool] = []
    if spec.silent:
        durations = [float(s.duration_s or SILENT_SCENE_S) for s in scenes]
    else:
        speech = spec.models.speech
        with contextlib.ExitStack() as stack:
            log_stage_plan(context, spec, "speech")
            model = residency.lazy(stack, speech.adapter, stage_settings(spec, "speech"))
            audio, rate, reused = scene_speech(spec, scenes, paths, model, context.log)
        durations = [len(samples) / rate for samples in audio]
        padded = [pad_to(a, rate, scene_frames(d, fps) / fps) for a, d in zip(audio, durations, strict=True)]
        context.log.info(
            "narration: %d scenes (%d reused), %s s",
            len(durations),
            sum(reused),
            ", ".join(f"{d:.2f}" for d in durations),
        )
    remove_beyond(paths, len(scenes), ("narration/scene_*",), context.log)
    timeline = plan_timeline(
        durations,
        fps=fps,
        max_clip_frames=max_clip_frames(spec),
        clip_seed=spec.clip_seed,
        chain_mode=spec.chain_mode,
    )
    write_json_atomic(paths.timeline, timeline.to_dict())
    metadata: dict = {
        "timeline": path_md(paths, paths.timeline),
        "timeline_sha256": sha256_file(paths.timeline),
        "scene_durations_s": dg.MetadataValue.json([round(d, 4) for d in durations]),
        "scene_frames": dg.MetadataValue.json([s.frames for s in timeline.scenes]),
        "planned_clips": len(timeline.clips),
        "video_duration_s": round(timeline.duration_s, 4),
        "spoken_duration_s": round(sum(durations), 4),
        "reused_scenes": dg.MetadataValue.json([i for i, r in enumerate(reused) if r]),
        "fps": fps,
    }
    if padded:
        write_wav(paths.narration, np.concatenate(padded), rate)
        metadata.update(
            narration=path_md(paths, paths.narration),
            narration_sha256=sha256_file(paths.narration),
            sample_rate=rate,
            narration_duration_s=round(sum(len(p) for p in padded) / rate, 4),
        )
    else:
        paths.narration.unlink(missing_ok=True)
        metadata["narration"] = "none (silent video)"
    metadata.update(timings_md(total=time.monotonic() - started))
    version = content_key({"timeline": timeline.to_dict(), "narration": metadata.get("narration_sha256")})
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


@dg.asset(
    partitions_def=VIDEOS,
    deps=[narration],
    group_name="video",
    pool="gpu",
    description="One keyframe per scene, all with the spec's one fixed seed. A keyframe whose prompt, seed, "
    "model and size are unchanged is kept.",
)
def keyframes(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key, phase="keyframes")
    spec, paths = state.spec, state.paths
    written = state.script()
    choice = spec.models.image
    started = time.monotonic()
    prompts, files, keys, reused = [], [], [], []
    settings = choice.model_dump(mode="json")
    model_id = choice.model or choice.adapter
    with contextlib.ExitStack() as stack:
        log_stage_plan(context, spec, "image")
        model = residency.lazy(stack, choice.adapter, stage_settings(spec, "image"))
        for i, scene in enumerate(written.scenes):
            prompt = spec.keyframe_prompt(scene, written.subject)
            key = content_key(
                {"prompt": prompt, "seed": spec.seed, "image": settings, "size": [spec.width, spec.height]}
            )
            record = read_record(paths.keyframe_record(i))
            if reusable(record, key, paths.root):
                reused.append(i)
            else:
                image = model.get().generate(prompt, width=spec.width, height=spec.height, seed=spec.seed)
                model_id = image.model_id
                save_png_atomic(image.image, paths.keyframe(i))
                write_json_atomic(
                    paths.keyframe_record(i),
                    {
                        "content_key": key,
                        "files": file_hashes(paths.root, [paths.keyframe(i)]),
                        "prompt": prompt,
                    },
                )
            prompts.append(prompt)
            keys.append(key)
            files.append(paths.rel(paths.keyframe(i)))
    remove_beyond(paths, len(written.scenes), ("keyframes/keyframe_*",), context.log)
    context.log.info(
        "keyframes: %d (%d reused) in %.2f s, seed %d",
        len(files),
        len(reused),
        time.monotonic() - started,
        spec.seed,
    )
    return dg.MaterializeResult(
        metadata={
            "keyframes": dg.MetadataValue.json(files),
            "prompts": dg.MetadataValue.json(prompts),
            "content_keys": dg.MetadataValue.json([k[:12] for k in keys]),
            "reused_keyframes": dg.MetadataValue.json(reused),
            "seed": spec.seed,
            "model_id": model_id,
            "adapter": choice.adapter,
            "size": f"{spec.width}x{spec.height}",
            **timings_md(total=time.monotonic() - started),
        },
        data_version=dg.DataVersion(content_key({"keyframes": keys})),
    )
