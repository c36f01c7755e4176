"""Deterministic mock adapters for every role: no GPU, no weights, seconds per video.

They make real content, so every downstream step and check works on them:
- ``MockImage``: a textured picture drawn from a hash of (seed, prompt);
- ``MockVideo``: pan and zoom over the conditioning image (frame 0 is the conditioning image, exactly);
- ``MockSpeech``: voiced audio whose length follows the text;
- ``MockScriptWriter`` / ``SpecScriptWriter``: a script from the brief / from the spec's own scenes.

The same inputs give byte-identical outputs. ``MockVideo`` options (``models.video.options``) are
:class:`MockVideoOptions`: ``steps``, ``seconds_per_step``, ``slow_after``, ``color_cast``,
``bad_attempts``. The other mocks and ``SpecScriptWriter`` take no options (the empty
:class:`~i2v_dagster.models.base.AdapterOptions`: any key is refused).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from i2v_dagster.models.base import (
    AdapterOptions,
    Audio,
    ClipFrames,
    ClipRequest,
    GeneratedImage,
    ImageModel,
    ScriptWriter,
    SpeechModel,
    StepProgress,
    VideoModel,
)
from i2v_dagster.models.constraints import ImageConstraints, SizeRule, VideoConstraints

if TYPE_CHECKING:
    from i2v_dagster.spec import JobSpec, Script

MOCK_SIZES = SizeRule(multiple_of=8, min_side=64, max_side=1920)


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


class _NoWeights:
    """Mocks hold no weights; load/unload only flip the flag (and are logged by the residency)."""

    holds_weights = False

    def _load(self) -> None:
        self._state = object()

    def _unload(self) -> None:
        self._state = None


class SpecScriptWriter(_NoWeights, ScriptWriter):
    """The script is the spec's own scenes and subject."""

    name = "spec"

    @property
    def model_id(self) -> str:
        return "spec"

    def write(self, spec: JobSpec) -> Script:
        from i2v_dagster.spec import Script

        return Script(subject=spec.subject or spec.name, scenes=list(spec.scenes))


class MockScriptWriter(_NoWeights, ScriptWriter):
    """Writes ``num_scenes`` scenes from the brief, deterministically from the seed."""

    name = "mock_script"
    _PLACES: ClassVar[tuple[str, ...]] = (
        "a misty harbour",
        "a quiet forest",
        "a desert road",
        "a city rooftop",
    )
    _MOVES: ClassVar[tuple[str, ...]] = ("slow push in", "gentle pan left", "drift upward", "slow pan right")

    @property
    def model_id(self) -> str:
        return "mock_script"

    def write(self, spec: JobSpec) -> Script:
        from i2v_dagster.spec import Scene, Script

        rng = _rng("script", spec.seed, spec.brief)
        subject = spec.subject or (spec.brief.split(".")[0] if spec.brief else spec.name)
        scenes = []
        for i in range(spec.num_scenes):
            place = self._PLACES[int(rng.integers(len(self._PLACES)))]
            move = self._MOVES[int(rng.integers(len(self._MOVES)))]
            scenes.append(
                Scene(
                    narration=f"Part {i + 1}. {subject} arrives at {place}.",
                    visual_prompt=f"{subject} in {place}",
                    motion_prompt=move,
                )
            )
        return Script(subject=subject, scenes=scenes)


class MockSpeech(_NoWeights, SpeechModel):
    """Voiced, syllable-shaped audio: about 65 ms per character, at least 0.8 s."""

    name = "mock_speech"
    large = True
    sample_rate = 24_000
    seconds_per_char = 0.065

    @property
    def model_id(self) -> str:
        return "mock_speech"

    def duration_for(self, text: str) -> float:
        return max(0.8, 0.3 + self.seconds_per_char * len(text.strip()))

    def synthesize(self, text: str, *, seed: int) -> Audio:
        sr = self.sample_rate
        n = int(round(self.duration_for(text) * sr))
        rng = _rng("speech", seed, text)
        t = np.arange(n, dtype=np.float64) / sr
        f0 = 110.0 + 60.0 * rng.random()
        vibrato = 1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * t)
        phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sr
        voice = sum(np.sin(k * phase) / k for k in range(1, 6))
        words = max(1, len(text.split()))
        syllable_rate = max(2.0, 2.5 * words / max(t[-1], 1e-3))
        envelope = np.clip(np.sin(np.pi * syllable_rate * t) ** 2, 0, 1)
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
        samples = 0.3 * voice * envelope * fade / 2.3
        return Audio(samples=samples.astype(np.float32), sample_rate=sr, model_id=self.model_id)


class MockImage(_NoWeights, ImageModel):
    """A textured picture from a hash of (seed, prompt): gradient sky, shapes, mottled texture, grain."""

    name = "mock_image"
    large = True
    weights_gb = 0.0
    constraints = ImageConstraints(size=MOCK_SIZES)

    @property
    def model_id(self) -> str:
        return "mock_image"

    def generate(self, prompt: str, *, width: int, height: int, seed: int) -> GeneratedImage:
        from PIL import Image, ImageDraw

        rng = _rng("image", seed, prompt)
        top, bottom = rng.integers(30, 225, size=(2, 3))
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
        canvas = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1))
        img = Image.fromarray(canvas.astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x0, x1 = sorted(rng.integers(0, width, size=2))
            y0, y1 = sorted(rng.integers(0, height, size=2))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            if rng.random() < 0.5:
                draw.ellipse([x0, y0, x1 + 4, y1 + 4], fill=colour)
            else:
                draw.rectangle([x0, y0, x1 + 4, y1 + 4], fill=colour)
        arr = np.asarray(img, dtype=np.int16)
        # mottled mid-scale texture (so a pan changes most pixels, as in a photograph) plus fine grain
        coarse = rng.integers(-24, 25, size=(max(height // 8, 2), max(width // 8, 2)), dtype=np.int16)
        mottle = (
            np.asarray(
                Image.fromarray((coarse + 128).astype(np.uint8)).resize(
                    (width, height), Image.Resampling.BICUBIC
                ),
                dtype=np.int16,
            )
            - 128
        )
        grain = rng.integers(-8, 9, size=(height, width, 1), dtype=np.int16)
        arr = np.clip(arr + mottle[:, :, None] + grain, 0, 255).astype(np.uint8)
        return GeneratedImage(
            image=Image.fromarray(arr, "RGB"), prompt=prompt, seed=seed, model_id=self.model_id
        )


class MockVideoOptions(AdapterOptions):
    """``models.video.options`` of ``mock_video`` (for tests and demos: slow clips, drifting colours)."""

    steps: int = Field(4, ge=1, le=200, description="Simulated denoising steps.")
    seconds_per_step: float = Field(0.0, ge=0, le=60, description="Sleep per step (a slow model).")
    slow_after: int = Field(
        0, ge=0, le=10_000, description="Clips made at full speed before the sleep applies."
    )
    color_cast: list[float] = Field(
        default_factory=lambda: [0.0, 0.0, 0.0],
        min_length=3,
        max_length=3,
        description="RGB added progressively over each clip (drift that compounds along a chain).",
    )
    bad_attempts: list[int] = Field(
        default_factory=list,
        max_length=100,
        description="Attempts (1 = the first try at a clip) on which every clip comes out frozen, for "
        "testing the quality gate.",
    )


class MockVideo(_NoWeights, VideoModel):
    """Pan and zoom over the conditioning image; frame 0 is the conditioning image itself.

    Drawn for speed (the encoder, not the mock, should dominate a mock run): nearest-neighbour zoom and a
    wrap-around pan done with slice copies, in uint8 throughout.
    """

    name = "mock_video"
    large = True
    constraints = VideoConstraints(size=MOCK_SIZES, frame_step=1, max_frames=49)
    Options = MockVideoOptions

    @property
    def model_id(self) -> str:
        return "mock_video"

    def generate(self, request: ClipRequest) -> ClipFrames:
        opts: MockVideoOptions = self.options
        steps = int(self.settings.num_inference_steps or opts.steps)
        per_step = opts.seconds_per_step
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls <= opts.slow_after:
            per_step = 0.0
        for step in range(1, steps + 1):
            started = time.monotonic()
            if per_step:
                time.sleep(per_step)
            if request.deadline is not None:
                request.deadline.check()
            if request.on_step is not None:
                request.on_step(StepProgress(step=step, total=steps, seconds=time.monotonic() - started))
        generated = self.constraints.generation_frames(request.num_frames)
        frames = self.draw(request, generated, np.asarray(opts.color_cast, dtype=np.float64))
        if request.attempt in opts.bad_attempts:  # a frozen clip: broken frames and no motion
            frames[1:] = frames[0]
        return ClipFrames(
            frames=frames[: request.num_frames],
            fps=request.fps,
            seed=request.seed,
            model_id=self.model_id,
            generated_frames=generated,
        )

    @staticmethod
    def draw(request: ClipRequest, count: int, cast: np.ndarray) -> np.ndarray:
        """``count`` frames: a steady pan (0.5% of the width per frame, at least 2 px, wrapping around so
        the picture's colours are kept) and a slow zoom in or out (0.15% per frame) about the centre."""
        from PIL import Image

        base = request.image.convert("RGB")
        if base.size != (request.width, request.height):
            base = base.resize((request.width, request.height), Image.Resampling.LANCZOS)
        rng = _rng("motion", request.seed, request.prompt)
        angle = rng.uniform(0, 2 * np.pi)
        w, h = base.size
        velocity = np.array([np.cos(angle), np.sin(angle)]) * max(0.005 * w, 2.0)
        zoom_rate = 0.0015 * (1 if rng.random() < 0.5 else -1)
        first = np.asarray(base, dtype=np.uint8)
        mx, my = w // 4, h // 4  # mirrored margins: zooming out never shows a blank border
        padded = Image.fromarray(np.pad(first, ((my, my), (mx, mx), (0, 0)), mode="reflect"))
        frames = np.empty((count, h, w, 3), dtype=np.uint8)
        frames[0] = first
        for t in range(1, count):
            scale = 1.0 / (1.0 + zoom_rate * t)
            data = (scale, 0.0, mx + w / 2 - scale * w / 2, 0.0, scale, my + h / 2 - scale * h / 2)
            zoomed = np.asarray(
                padded.transform((w, h), Image.Transform.AFFINE, data, Image.Resampling.NEAREST)
            )
            dx, dy = (int(v) % size for v, size in zip(np.rint(velocity * t), (w, h), strict=True))
            _roll_into(frames[t], zoomed, dy, dx)
            if cast.any():
                shift = np.rint(cast * (t / max(count - 1, 1))).astype(np.int16)
                frames[t] = np.clip(frames[t].astype(np.int16) + shift, 0, 255).astype(np.uint8)
        return frames


def _roll_into(out: np.ndarray, image: np.ndarray, dy: int, dx: int) -> None:
    """``out[:] = np.roll(image, (dy, dx), axis=(0, 1))`` by four slice copies (0 <= dy < h, 0 <= dx < w)."""
    h, w = image.shape[:2]
    out[dy:, dx:] = image[: h - dy, : w - dx]
    out[dy:, :dx] = image[: h - dy, w - dx :]
    out[:dy, dx:] = image[h - dy :, : w - dx]
    out[:dy, :dx] = image[h - dy :, w - dx :]
