"""The job spec as Dagster config: the Launchpad's form, descriptions and up-front checks.

The spec itself is plain pydantic (:mod:`i2v_dagster.spec`, importable without Dagster). Here each spec
model gets a ``dagster.Config`` twin with the same fields, types, defaults and descriptions, built with
pydantic's own ``create_model``; Dagster turns the twin into its config schema, so the Launchpad shows every
field's description, refuses unknown keys and wrong types, and checks the closed sets (adapter names, chain
mode, dtype, ...) as enums before launch. The rules Dagster's config cannot express (name pattern, bounds,
adapter sizes, files) run when the config is resolved at launch, before a run exists: :class:`SpecShape`
hands the resolved value to :func:`i2v_dagster.specfile.parse_spec`.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import dagster as dg
from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo

from i2v_dagster.defs.partitions import SEPARATOR
from i2v_dagster.spec import JobSpec


def _twin_annotation(annotation: Any) -> Any:
    """``annotation`` with every spec model in it replaced by its Dagster twin."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dagster_twin(annotation)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args:
        return list[_twin_annotation(args[0])]
    return annotation


def _twin_field(info: FieldInfo) -> FieldInfo:
    """The field with a nested model's default factory pointing at the twin (so Dagster can show it)."""
    factory = info.default_factory
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        return FieldInfo.merge_field_infos(info, default_factory=dagster_twin(factory))
    return info


@cache
def dagster_twin(model: type[BaseModel]) -> type[dg.Config]:
    """A ``dagster.Config`` subclass with ``model``'s fields (nested models twinned too)."""
    fields = {
        name: (_twin_annotation(info.annotation), _twin_field(info))
        for name, info in model.model_fields.items()
    }
    return create_model(model.__name__, __base__=dg.Config, __doc__=model.__doc__, **fields)


class SpecShape(dg.Shape):
    """The spec's Dagster shape, whose post-processing runs every rule of the spec
    (:func:`i2v_dagster.specfile.parse_spec`): Dagster applies it while it resolves a run's config, before
    the run is created, so a spec that breaks a rule Dagster's types cannot express (a bound, a name
    pattern, an adapter's size rule, a file that is missing) is refused at launch, from the Launchpad,
    ``dagster job execute`` or ``dg launch``, with no run, partition or file made."""

    def __new__(cls, fields, description=None, field_aliases=None):
        # Shape memoizes its instances by a hash of the fields; this one must stay a SpecShape
        instance = object.__new__(cls)
        instance._initialized = False
        return instance

    def post_process(self, value: Any) -> Any:
        from dagster._config import PostProcessingError

        from i2v_dagster.errors import SpecError
        from i2v_dagster.specfile import parse_spec

        try:
            for path in cli_config_files():
                strict_read(path)
            parse_spec(value)
        except SpecError as exc:
            raise PostProcessingError(str(exc)) from None
        return value


def cli_config_files(argv: list[str] | None = None) -> list[str]:
    """The run config files of a Dagster command line (``dagster job execute -c F``, ``dg launch --config
    F``, ``dagster asset materialize -c F``), globs expanded; none in any other process (the webserver, a
    test run)."""
    import glob
    import sys
    from pathlib import Path

    argv = sys.argv if argv is None else argv
    program = Path(argv[0]).name if argv else ""
    if program not in ("dagster", "dg") and not argv[0].endswith(("dagster/__main__.py", "dg/__main__.py")):
        return []
    patterns: list[str] = []
    for i, arg in enumerate(argv[1:], start=1):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            patterns.append(argv[i + 1])
        elif arg.startswith("--config="):
            patterns.append(arg.split("=", 1)[1])
    return [path for pattern in patterns for path in sorted(glob.glob(pattern)) or [pattern]]


def strict_read(path: str) -> None:
    """Read a run config file again with this project's strict reader. Dagster's CLI has already read it
    with its own YAML loader, which keeps the last of two equal keys and follows every alias; here a
    duplicate key, an oversized file or an alias bomb is refused, naming the file and the key's path."""
    from i2v_dagster.errors import SpecError
    from i2v_dagster.specfile import read_document

    try:
        read_document(path)
    except SpecError as exc:
        raise SpecError(f"invalid job spec:\n  {exc}") from None


def spec_config_schema() -> dg.Field:
    """The Dagster config schema of a :class:`~i2v_dagster.spec.JobSpec` (the ``script`` asset's config)."""
    from dagster._config.pythonic_config.config import infer_schema_from_config_class

    field = infer_schema_from_config_class(dagster_twin(JobSpec), description=JobSpec.__doc__)
    return dg.Field(SpecShape(fields=field.config_type.fields, description=JobSpec.__doc__), is_required=True)


def config_error_lines(exc: BaseException) -> list[str] | None:
    """The problems of a run config Dagster refused, one line each (the spec's own lines for its rules), or
    None when ``exc`` is not such a refusal."""
    if isinstance(exc, dg.DagsterUnknownPartitionError):
        return [
            f"{exc} (a new video's partition is added by its first run: `i2v run SPEC`, `dagster job "
            "execute ... --tags '{\"dagster/partition\": NAME}'`, or the asset graph's launchpad -> Add new "
            "partition)"
        ]
    if isinstance(exc, dg.DagsterInvalidSubsetError) and "partition key" in str(exc):
        # `dagster asset materialize --partition KEY` with a key the selected assets do not have
        key = str(exc).split("partition key `", 1)[-1].split("`", 1)[0]
        if SEPARATOR in key:
            video = key.split(SEPARATOR, 1)[1]
            return [
                f"no clip partition {key!r}: a video's clip partitions are the clips of its plan, registered "
                f"as its run plans them (see Assets -> clip -> Partitions for {video!r})"
            ]
        return [f"no partition {key!r} of the selected assets"]
    if not isinstance(exc, dg.DagsterInvalidConfigError):
        return None
    lines: list[str] = []
    for error in exc.errors:
        info = getattr(error, "error_data", None)
        message = getattr(info, "message", "") if info is not None else ""
        if "invalid job spec:" in message:  # a PostProcessingError raised by SpecShape: parse_spec's lines
            lines += [line.strip() for line in message.split("invalid job spec:", 1)[1].splitlines()]
        else:
            lines.append(error.message.splitlines()[0].split(" Expected: ", 1)[0])  # not the whole schema
    return [line for line in lines if line] or None


def install_config_error_hook() -> None:
    """In a command-line process (``dagster job execute``, ``dg launch``, ``dagster asset materialize``) a run
    config that Dagster refuses ends the process with its problems, one line each, instead of a traceback that
    buries them (the whole resolved spec printed first); so does an unknown partition. Only when nothing else
    has set ``sys.excepthook``."""
    import sys

    if sys.excepthook is not sys.__excepthook__:
        return

    def hook(exc_type, exc, tb) -> None:
        lines = config_error_lines(exc)
        if lines is None:
            sys.__excepthook__(exc_type, exc, tb)
            return
        if isinstance(exc, dg.DagsterInvalidConfigError):
            print("error: invalid run config:\n" + "\n".join(f"  {line}" for line in lines), file=sys.stderr)
        else:
            print(f"error: {lines[0]}", file=sys.stderr)

    sys.excepthook = hook
