"""`i2v`: what Dagster does not do. `validate`, `plan`, `doctor`, `adapters`, `home`, `run`, `submit`,
`import`.

i2v validate jobs/example_mock.yaml --set seed=7 --set fps=12
i2v doctor
i2v run jobs/example_mock.yaml          # render_video in this process, project-local DAGSTER_HOME
i2v submit jobs/example_mock.yaml       # on the instance's run queue (`dagster job launch`)
i2v import scaffold_job.yaml            # a seed-scaffold job spec -> jobs/<name>.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from i2v_dagster.errors import I2VError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def ensure_dagster_home() -> Path:
    """Use DAGSTER_HOME if set, else ``./.dagster_home`` with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    source = PROJECT_ROOT / "dagster.yaml"
    if not config.exists() and source.is_file():
        shutil.copyfile(source, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_validate(args: argparse.Namespace) -> int:
    from i2v_dagster.models.registry import max_clip_frames
    from i2v_dagster.specfile import load_spec

    spec = load_spec(args.spec, args.set)
    per_clip = max_clip_frames(spec)
    print(f"ok: {args.spec} is a valid spec for video {spec.name!r}")
    print(
        f"  scenes: {len(spec.scenes)}  fps: {spec.fps}  size: {spec.width}x{spec.height}  seed: {spec.seed}"
    )
    print("  models: " + ", ".join(f"{r}={c['adapter']}" for r, c in spec.models.model_dump().items()))
    print(
        f"  at most {per_clip} frames per clip; chain mode {spec.chain_mode}; "
        f"clip limit {spec.clip_time_limit_s:g} s"
    )
    for line in dry_run_lines(spec):
        print(f"  {line}")
    if args.json:
        print(json.dumps(spec.model_dump(mode="json"), indent=2))
    return 0


def dry_run_lines(spec) -> list[str]:
    """What a dry-run spec renders with (nothing for a full render); refuses what the mocks cannot make."""
    if not spec.dry_run:
        return []
    from i2v_dagster.specfile import rehearsal

    lines = ["dry run: checked against the adapters the spec names, rendered with the mocks (no model loads)"]
    rehearsal(spec, log=lines.append)
    return lines


def _doctor_lines() -> list[tuple[str, bool | None, str]]:
    lines: list[tuple[str, bool | None, str]] = []
    from i2v_dagster.media.ffmpeg import ffmpeg_version, find_ffmpeg, find_ffprobe

    try:
        tool = find_ffmpeg()
        import numpy as np

        from i2v_dagster.media.video import encode_frames, probe

        with tempfile.TemporaryDirectory() as tmp:
            out = encode_frames(np.zeros((2, 16, 16, 3), dtype=np.uint8), Path(tmp) / "t.mp4", fps=2)
            frames = probe(out).video.frames
        lines.append(
            (
                "ffmpeg",
                True,
                f"{tool.path} ({tool.source}); {ffmpeg_version(tool.path)}; "
                f"H.264 encode ok ({frames} frames)",
            )
        )
    except I2VError as exc:
        lines.append(("ffmpeg", False, str(exc).splitlines()[0]))
    probe_tool = find_ffprobe()
    lines.append(("ffprobe", None, probe_tool.path if probe_tool else "not found: probing in-process (PyAV)"))
    try:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"torch {torch.__version__}; CUDA " + (
            f"available: {torch.cuda.get_device_name(0)}" if cuda else "not available (CPU only)"
        )
        lines.append(("torch", True, detail))
    except ImportError:
        lines.append(("torch", None, "not installed (mock models only; pip install -e '.[models]')"))
    from i2v_dagster.hfcache import hub_cache_dir

    cache = hub_cache_dir()
    probe_dir = cache if cache.exists() else next((p for p in cache.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(probe_dir).free / 1e9
    token = "set" if os.environ.get("HF_TOKEN") else "not set"
    lines.append(
        (
            "hf cache",
            True,
            f"{cache} ({'exists' if cache.exists() else 'not created yet'}); "
            f"{free:.1f} GB free; HF_TOKEN {token}",
        )
    )
    try:
        from i2v_dagster.models.ollama_writer import ollama_status

        ok, detail = ollama_status()
        lines.append(("ollama", ok, detail))
    except ImportError as exc:
        lines.append(("ollama", None, f"client not installed ({exc.name})"))
    home = os.environ.get("DAGSTER_HOME")
    lines.append(
        (
            "dagster",
            True if home else None,
            f"DAGSTER_HOME={home}"
            if home
            else "DAGSTER_HOME not set: the CLI would use a temporary instance (run `i2v home`)",
        )
    )
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    """Each GPU stage's placement and estimated peak against a card, before any weights load."""
    from i2v_dagster.gpu_plan import current_free_gb, spec_plan
    from i2v_dagster.models.memory import free_gb_for_card
    from i2v_dagster.specfile import load_spec

    spec = load_spec(args.spec, args.set, check_files=False, check_card=False, check_extras=False)
    if args.free_gb is not None:
        free, card = args.free_gb, f"{args.free_gb:g} GB free"
    elif args.card_gb is not None:
        free, card = (
            free_gb_for_card(args.card_gb),
            f"a {args.card_gb:g} GB card ({args.card_gb:g} GiB, idle)",
        )
    elif (now := current_free_gb()) is not None:
        free, card = now, "this GPU"
    elif spec.target_gpu_gb is not None:
        free, card = (
            free_gb_for_card(spec.target_gpu_gb),
            f"the {spec.target_gpu_gb:g} GB card the spec names ({spec.target_gpu_gb:g} GiB, idle)",
        )
    else:
        print(
            "error: no GPU here and the spec names no card: give --card-gb N or --free-gb N", file=sys.stderr
        )
        return 2
    plans = spec_plan(spec, free_gb=free)
    size = f"{spec.width}x{spec.height}"
    print(f"{spec.name}: GPU memory plan at {size} on {card}: {free:.1f} GB free (GB = 10^9 bytes)")
    for plan in plans:
        print(f"  {plan.describe()}")
    misfits = [p for p in plans if not p.fits]
    print("all stages fit" if not misfits else f"{len(misfits)} stage(s) do not fit: see the fix above")
    return 0 if not misfits else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    failed = False
    for name, ok, detail in _doctor_lines():
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
        failed |= ok is False and name == "ffmpeg"
        print(f"[{mark}] {name:9s} {detail}")
    return 1 if failed else 0


def cmd_adapters(args: argparse.Namespace) -> int:
    from i2v_dagster.models.registry import ROLES, adapter_names, get_adapter_info

    for role in ROLES:
        print(f"{role}:")
        for name in adapter_names(role):
            try:
                info = get_adapter_info(name)
            except ImportError as exc:
                print(f"  {name:20s} (unavailable: {exc})")
                continue
            rule = info.constraints.rule_text() if hasattr(info.constraints, "rule_text") else ""
            print(f"  {name:20s} {info.repo_id or '-':45s} {rule}")
    return 0


def cmd_home(args: argparse.Namespace) -> int:
    print(ensure_dagster_home())
    return 0


PHASES = {
    "script": "writing the script",
    "narration": "narration",
    "keyframes": "keyframes",
    "clips": "clips",
    "stitched_video": "stitching",
    "bundle": "bundling",
}


class ProgressBar:
    """``i2v run``'s live bar (rich): the phase, clip i of N with its step, and the ETA the pipeline
    estimates; Dagster's own console lines are kept to warnings and errors while it shows."""

    def __init__(self, video: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.video = video
        # Dagster captures each step's stdout and stderr (file descriptors 1 and 2) into its compute logs:
        # the bar writes to a duplicate of the terminal's descriptor, made before the run starts.
        self.terminal = open(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        self.bar = Progress(
            TextColumn("[bold]{task.fields[video]}[/bold] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.0f} clips"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=self.terminal, force_terminal=True),
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.bar.add_task("starting", total=1, video=video, eta="?")

    def __enter__(self) -> ProgressBar:
        from i2v_dagster.progress import listen

        self.bar.start()
        listen(self.update)
        return self

    def __exit__(self, *exc) -> None:
        from i2v_dagster.progress import unlisten

        unlisten(self.update)
        self.bar.stop()
        self.terminal.close()

    def update(self, event) -> None:
        from i2v_dagster.progress import format_seconds

        if event.video != self.video:
            return
        fields: dict = {"description": event.text or PHASES.get(event.phase, event.phase)}
        if event.total:
            fields.update(total=event.total, completed=event.done, eta=format_seconds(event.eta_s))
        elif event.phase in ("stitched_video", "bundle"):
            task = self.bar.tasks[0]
            fields.update(completed=task.total, eta="0.0 s")
        self.bar.update(self.task, **fields)


def run_outputs(instance, run_id: str) -> dict[str, str]:
    """The final video's and bundle's paths as this run recorded them (nothing a run did not make)."""
    import dagster as dg

    found = {}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        mat = record.event_log_entry.asset_materialization
        name = mat.asset_key.to_user_string()
        if name in ("stitched_video", "bundle") and "path" in mat.metadata:
            found["video" if name == "stitched_video" else "bundle"] = str(mat.metadata["path"].value)
    return found


def cmd_run(args: argparse.Namespace) -> int:
    from i2v_dagster.specfile import load_spec

    spec = load_spec(args.spec, args.set)
    dry_run = dry_run_lines(spec)
    home = ensure_dagster_home()
    import dagster as dg

    from i2v_dagster.definitions import render_video_job

    for line in dry_run:
        print(line)
    print(f"rendering {spec.name!r} (DAGSTER_HOME={home})", flush=True)
    show_bar = args.progress == "on" or (args.progress == "auto" and sys.stdout.isatty())
    run_config: dict = {"ops": {"script": {"config": spec.model_dump(mode="json")}}}
    if show_bar:
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
    instance = dg.DagsterInstance.get()
    with ProgressBar(spec.name) if show_bar else contextlib.nullcontext():
        result = dg.execute_job(
            dg.reconstructable(render_video_job),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": spec.name},
        )
    print(f"run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    if not result.success:
        failure = dg.DagsterEventType.STEP_FAILURE
        for record in instance.get_records_for_run(result.run_id, of_type=failure).records[:1]:
            error = record.event_log_entry.dagster_event.event_specific_data.error
            message = error.cause.message if error.cause is not None else error.message
            print(f"failed in {record.event_log_entry.step_key}: {message.strip().splitlines()[0]}")
        print("no video was made by this run; earlier outputs are as they were")
        return 1
    made = run_outputs(instance, result.run_id)
    for label in ("video", "bundle"):
        if label in made:
            print(f"{label + ':':9s}{made[label]}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Put a video on the instance's run queue with `dagster job launch` (the daemon starts it), instead of
    rendering it in this process. Everything is checked before anything is written."""
    import subprocess
    import uuid

    from i2v_dagster.deploy import load_tags, read_yaml
    from i2v_dagster.errors import SpecError
    from i2v_dagster.specfile import load_spec

    spec = load_spec(args.spec, args.set)
    dry_run = dry_run_lines(spec)
    workspace = Path(args.workspace).resolve()
    if not workspace.is_file():
        raise SpecError(f"--workspace: {workspace} not found")
    tags = {"dagster/partition": spec.name}
    if args.queue:
        tags["dagster-celery/queue"] = args.queue
    for source in args.tags:
        tags.update(load_tags(source))
    run_config: dict = {}
    for source in args.config:
        extra = read_yaml(Path(source))
        if not isinstance(extra, dict) or "ops" in extra:
            raise SpecError(f"--config {source}: expected run config without `ops` (e.g. `execution:`)")
        run_config.update(extra)
    run_config["ops"] = {"script": {"config": spec.model_dump(mode="json")}}
    job = "render_video_parallel" if args.parallel else "render_video"

    home = ensure_dagster_home()
    import dagster as dg

    from i2v_dagster.defs.partitions import VIDEOS

    with dg.DagsterInstance.get() as instance:
        coordinator = type(instance.run_coordinator).__name__
        if not instance.has_dynamic_partition(VIDEOS.name, spec.name):
            instance.add_dynamic_partitions(VIDEOS.name, [spec.name])
    for line in dry_run:
        print(line)
    if coordinator != "QueuedRunCoordinator":
        print(
            f"note: {home}/dagster.yaml has no run queue ({coordinator}): the run starts at once in its own "
            "process; deploy/README.md sets up the queue"
        )
    if args.parallel and spec.chain_mode != "keyframe":
        print(f"note: chain mode {spec.chain_mode}: the clips are one chain, made in one step")
    run_id = str(uuid.uuid4())
    command = [sys.executable, "-m", "dagster", "job", "launch", "-w", str(workspace), "-j", job]
    command += ["--config-json", json.dumps(run_config), "--tags", json.dumps(tags), "--run-id", run_id]
    done = subprocess.run(command, cwd=workspace.parent, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        print(f"error: dagster job launch failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
        return done.returncode
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
    status = run.status.value if run is not None else "not found"
    print(f"submitted run {run_id} ({job}, video {spec.name!r}): {status} (DAGSTER_HOME={home})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """A seed-scaffold job spec -> this project's job file (run config), with a note per scaffold key."""
    from i2v_dagster.errors import SpecError
    from i2v_dagster.fsutil import write_text_atomic
    from i2v_dagster.scaffold import convert, job_file_text, with_overrides
    from i2v_dagster.specfile import parse_spec, read_document

    source = Path(args.spec)
    conversion = convert(read_document(source), source=str(source), name=args.name, base_dir=source.parent)
    print(f"{source}: seed-scaffold job spec -> video {conversion.name!r}")
    for note in conversion.notes:
        print(f"  {note}")
    data = with_overrides(conversion.spec, args.set)
    try:
        spec = parse_spec(data)
        dry_run = dry_run_lines(spec)
    except SpecError as exc:
        raise SpecError(f"{exc}\n  (set a field with `i2v import {source} --set FIELD=VALUE`)") from None
    out = Path(args.out) if args.out else Path("jobs") / f"{spec.name}.yaml"
    if out.exists() and not args.force:
        raise SpecError(f"{out} exists; pass --force to replace it, or --out another file")
    if out.exists() and not out.is_file():
        raise SpecError(f"{out}: not a regular file")
    write_text_atomic(out, job_file_text(data, conversion, overrides=args.set))
    print(f"wrote {out}")
    for line in dry_run:
        print(f"  {line}")
    print(f"  i2v validate {out}\n  i2v run {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2v", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate a job spec (YAML/JSON, bare or as run config)")
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    p.add_argument("--json", action="store_true", help="print the validated spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="each GPU stage's placement and estimated peak memory against a card")
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--card-gb", type=float, help="a card of this size (e.g. 24, 80), idle")
    card.add_argument("--free-gb", type=float, help="this much free GPU memory")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("doctor", help="check FFmpeg, torch/CUDA, the HF cache and Ollama")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("adapters", help="list adapters and their rules")
    p.set_defaults(func=cmd_adapters)
    p = sub.add_parser("home", help="create the project-local DAGSTER_HOME and print it")
    p.set_defaults(func=cmd_home)
    p = sub.add_parser("run", help="render a video with render_video in this process")
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="a live progress bar (auto: when the output is a terminal)",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("submit", help="put a video on the instance's run queue (the daemon renders it)")
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--parallel", action="store_true", help="render_video_parallel: each scene in its own GPU step"
    )
    p.add_argument("--queue", help="Celery queue for the run (dagster-celery/queue tag), e.g. gpu-80g")
    p.add_argument(
        "--tags",
        action="append",
        default=[],
        metavar="FILE[:NAME]",
        help="run tags from a file (or one named set of it), e.g. deploy/k8s/run-tags.yaml:gpu-80g",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="more run config (e.g. deploy/k8s/parallel-run-config.yaml's `execution`)",
    )
    p.add_argument(
        "--workspace", default=str(PROJECT_ROOT / "workspace.yaml"), help="the daemon's workspace file"
    )
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser("import", help="convert a seed-scaffold job spec (job_name, shots, model.id)")
    p.add_argument("spec")
    p.add_argument("--out", help="job file to write (default: jobs/<name>.yaml)")
    p.add_argument("--name", help="video name (default: made from job_name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except I2VError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
