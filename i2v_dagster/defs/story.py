"""script -> narration -> keyframes: the spec made concrete, audio first.

(No `from __future__ import annotations` in asset modules: Dagster resolves config and resource
parameters from real annotations.)
"""

import time

import dagster as dg
import numpy as np

from i2v_dagster.defs.common import load_video, path_md, timings_md
from i2v_dagster.defs.config import spec_config_schema
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.errors import SpecError
from i2v_dagster.fsutil import save_png_atomic, sha256_file, write_json_atomic
from i2v_dagster.media.audio import pad_to, write_wav
from i2v_dagster.models.registry import max_clip_frames, settings_for
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import plan_timeline, scene_frames
from i2v_dagster.spec import derive_seed
from i2v_dagster.specfile import parse_spec

SILENT_SCENE_S = 2.0


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
    paths = VideoPaths.for_video(config.outputs_root or outputs.root, config.name)
    started = time.monotonic()
    choice = config.models.script
    with residency.use(choice.adapter, settings_for(choice)) as writer:
        written = writer.write(config)
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


@dg.asset(
    partitions_def=VIDEOS,
    deps=[script],
    group_name="video",
    pool="gpu",
    description="Narration per scene (audio first): its durations decide each scene's frame count.",
)
def narration(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    spec, paths, scenes = state.spec, state.paths, state.script().scenes
    started = time.monotonic()
    fps = spec.fps
    durations: list[float] = []
    padded: list[np.ndarray] = []
    rate = 24_000
    speech = spec.models.speech
    if spec.silent:
        durations = [float(s.duration_s or SILENT_SCENE_S) for s in scenes]
    else:
        with residency.use(speech.adapter, settings_for(speech)) as model:
            for i, scene in enumerate(scenes):
                if scene.narration.strip():
                    audio = model.synthesize(scene.narration, seed=derive_seed(spec.seed, f"speech:{i}"))
                    samples, rate = audio.samples, audio.sample_rate
                else:
                    samples = np.zeros(int((scene.duration_s or SILENT_SCENE_S) * rate), dtype=np.float32)
                durations.append(len(samples) / rate)
                write_wav(paths.scene_audio(i), samples, rate)
                padded.append(pad_to(samples, rate, scene_frames(durations[-1], fps) / fps))
    if not spec.silent:
        context.log.info(
            "narration: %d scenes, %s s", len(durations), ", ".join(f"{d:.2f}" for d in durations)
        )
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
        "scene_durations_s": dg.MetadataValue.json([round(d, 4) for d in durations]),
        "scene_frames": dg.MetadataValue.json([s.frames for s in timeline.scenes]),
        "planned_clips": len(timeline.clips),
        "video_duration_s": round(timeline.duration_s, 4),
        "spoken_duration_s": round(sum(durations), 4),
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
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=VIDEOS,
    deps=[narration],
    group_name="video",
    pool="gpu",
    description="One keyframe per scene, all with the spec's one fixed seed.",
)
def keyframes(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    spec, paths = state.spec, state.paths
    written = state.script()
    choice = spec.models.image
    started = time.monotonic()
    prompts, files, seconds = [], [], []
    with residency.use(choice.adapter, settings_for(choice)) as model:
        for i, scene in enumerate(written.scenes):
            prompt = spec.keyframe_prompt(scene, written.subject)
            t0 = time.monotonic()
            image = model.generate(prompt, width=spec.width, height=spec.height, seed=spec.seed)
            seconds.append(round(time.monotonic() - t0, 3))
            save_png_atomic(image.image, paths.keyframe(i))
            prompts.append(prompt)
            files.append(paths.rel(paths.keyframe(i)))
        context.log.info(
            "keyframes: %d in %.2f s, seed %d", len(files), time.monotonic() - started, spec.seed
        )
        model_id = model.model_id
    return dg.MaterializeResult(
        metadata={
            "keyframes": dg.MetadataValue.json(files),
            "prompts": dg.MetadataValue.json(prompts),
            "seed": spec.seed,
            "model_id": model_id,
            "adapter": choice.adapter,
            "size": f"{spec.width}x{spec.height}",
            "seconds_per_keyframe": dg.MetadataValue.json(seconds),
            **timings_md(total=time.monotonic() - started),
        }
    )
