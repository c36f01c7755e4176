"""Offline checks of the deployment files in ``deploy/``: every error is one line naming the file and the key
path, found before a daemon, worker or cluster ever reads the file.

    python -m i2v_dagster.deploy            # every file under deploy/
    python -m i2v_dagster.deploy deploy/k8s

What is checked, by file:
- ``dagster.yaml`` (an instance): Dagster's instance schema, then each configurable class it names
  (storage, run coordinator, run launcher, ...) imported and its ``config`` validated against the class's
  own ``config_type()`` (Dagster itself does that only when the daemon or a run starts);
- ``celery.yaml``: dagster-celery's executor schema (what ``dagster-celery worker start -y`` reads);
- ``*tags*.yaml`` (named sets of run tags): the ``dagster-k8s/config`` tag against dagster-k8s's schema, then
  as dagster-k8s turns it into Kubernetes objects;
- ``*run-config*.yaml``: ``execution.config`` against dagster-k8s's executor schema, for
  ``render_video_parallel``.

On top of Dagster's schemas, which take raw Kubernetes config as free-form mappings: every key of a
container, pod spec, job spec, metadata, volume or security context is checked against the Kubernetes API
model it becomes (a ``resourcez`` typo passes Dagster's validation and fails only when a pod is made), and
``per_step_k8s_config`` may only name ops of ``render_video_parallel`` (an unknown op name is ignored by
dagster-k8s, so its GPU request would silently never apply).

Plain Python: Dagster, dagster-k8s and dagster-celery are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from i2v_dagster.errors import I2VError

K8S_CONFIG_TAG = "dagster-k8s/config"
K8S_MODELS = {
    "container_config": "V1Container",
    "pod_template_spec_metadata": "V1ObjectMeta",
    "pod_spec_config": "V1PodSpec",
    "job_config": "V1Job",
    "job_metadata": "V1ObjectMeta",
    "job_spec_config": "V1JobSpec",
    "deployment_metadata": "V1ObjectMeta",
    "service_metadata": "V1ObjectMeta",
    "service_spec_config": "V1ServiceSpec",
    "security_context": "V1SecurityContext",
    "volume_mounts": "list[V1VolumeMount]",
    "volumes": "list[V1Volume]",
}
"""Dagster config fields holding raw Kubernetes config (free-form to Dagster), and the model each becomes."""

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "deploy"


class DeployConfigError(I2VError, ValueError):
    """A deployment file is wrong; the message has one line per problem, each naming the file and key."""


# ----- Dagster's own schemas ----------------------------------------------------------------------------


def _path(levels: Iterable[str]) -> str:
    return ".".join(str(level) for level in levels) or "(top level)"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def dagster_errors(config_type: Any, value: Any, *, prefix: str = "") -> list[str]:
    """``value`` validated against a Dagster config schema: one ``key.path: problem`` per error."""
    from dagster._config import convert_potential_field, validate_config
    from dagster._config.errors import (
        FieldNotDefinedErrorData,
        FieldsNotDefinedErrorData,
        MissingFieldErrorData,
        MissingFieldsErrorData,
    )

    result = validate_config(convert_potential_field(config_type).config_type, value)
    out = []
    for error in result.errors or []:
        where = _join(prefix, _path(error.stack.levels)) if error.stack.levels else prefix
        data = error.error_data
        if isinstance(data, FieldNotDefinedErrorData):
            out.append(f"{_join(where, data.field_name)}: unknown key")
        elif isinstance(data, FieldsNotDefinedErrorData):
            out += [f"{_join(where, name)}: unknown key" for name in data.field_names]
        elif isinstance(data, MissingFieldErrorData):
            out.append(f"{_join(where, data.field_name)}: required key missing")
        elif isinstance(data, MissingFieldsErrorData):
            out += [f"{_join(where, name)}: required key missing" for name in data.field_names]
        else:
            out.append(f"{where or '(top level)'}: {error.message.splitlines()[0]}")
    return out


def _configurable_class(module: str, name: str) -> Any:
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        raise DeployConfigError(
            f"module {module!r} not installed ({exc.name}): pip install -c constraints.txt -e '.[fleet]'"
        ) from None
    except AttributeError:
        raise DeployConfigError(f"module {module!r} has no class {name!r}") from None


def instance_errors(config: Mapping[str, Any]) -> list[str]:
    """An instance's ``dagster.yaml``: the instance schema, then each configurable class's own config."""
    from dagster._core.instance.config import dagster_instance_config_schema

    errors = dagster_errors(dagster_instance_config_schema(), dict(config))
    if errors:
        return errors
    for section, value in config.items():
        if not (isinstance(value, Mapping) and "module" in value and "class" in value):
            continue
        try:
            cls = _configurable_class(value["module"], value["class"])
        except DeployConfigError as exc:
            errors.append(f"{section}.module: {exc}")
            continue
        prefix = f"{section}.config"
        errors += dagster_errors(cls.config_type(), value.get("config") or {}, prefix=prefix)
        errors += k8s_errors(value.get("config") or {}, prefix=prefix)
    return errors


# ----- raw Kubernetes config ----------------------------------------------------------------------------

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]+), (.+)\)$")


def _model_errors(value: Any, type_name: str, where: str) -> list[str]:
    """``value`` against the Kubernetes client's model ``type_name`` (keys in snake_case or camelCase)."""
    import kubernetes.client

    if (match := _LIST.match(type_name)) is not None:
        if not isinstance(value, list):
            return [f"{where}: expected a list ({type_name})"]
        return [e for i, item in enumerate(value) for e in _model_errors(item, match[1], f"{where}[{i}]")]
    if (match := _DICT.match(type_name)) is not None:
        if not isinstance(value, Mapping):
            return [f"{where}: expected a mapping ({type_name})"]
        return [e for k, v in value.items() for e in _model_errors(v, match[2], f"{where}.{k}")]
    model = getattr(kubernetes.client, type_name, None)
    if model is None:  # str, int, bool, object, datetime: a value, not a model
        return []
    if not isinstance(value, Mapping):
        return [f"{where}: expected a mapping ({type_name})"]
    snake_by_camel = {camel: snake for snake, camel in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        attr = key if key in model.attribute_map else snake_by_camel.get(key)
        if attr is None:
            errors.append(f"{where}.{key}: unknown key (not a field of Kubernetes {type_name})")
            continue
        errors += _model_errors(item, model.openapi_types[attr], f"{where}.{key}")
    return errors


def k8s_errors(value: Any, *, prefix: str = "") -> list[str]:
    """Every raw Kubernetes mapping under ``value`` (at the keys of :data:`K8S_MODELS`), checked against
    its model."""
    errors: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = _join(prefix, str(key))
            if key in K8S_MODELS and item is not None:
                try:
                    errors += _model_errors(item, K8S_MODELS[key], where)
                except ModuleNotFoundError:
                    return [
                        f"{where}: the kubernetes client is not installed: pip install -c constraints.txt "
                        "-e '.[fleet]'"
                    ]
            else:
                errors += k8s_errors(item, prefix=where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            errors += k8s_errors(item, prefix=f"{prefix}[{i}]")
    return errors


def tag_errors(tags: Mapping[str, Any], *, prefix: str = "") -> list[str]:
    """Run tags: ``dagster-k8s/config`` (a mapping here, JSON in the run's tags) against dagster-k8s's schema
    and the Kubernetes models; every other tag must be a string."""
    errors = []
    for key, value in tags.items():
        where = _join(prefix, key)
        if key != K8S_CONFIG_TAG:
            if not isinstance(value, str):
                errors.append(f"{where}: a tag value must be a string, got {type(value).__name__}")
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                errors.append(f"{where}: not JSON ({exc})")
                continue
        from dagster_k8s.job import USER_DEFINED_K8S_JOB_CONFIG_SCHEMA

        found = dagster_errors(USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, value, prefix=where) or k8s_errors(
            value, prefix=where
        )
        if not found:
            found = _dagster_k8s_conversion_errors({key: json.dumps(value)}, where)
        errors += found
    return errors


def _dagster_k8s_conversion_errors(tags: Mapping[str, str], where: str) -> list[str]:
    """What dagster-k8s says when it turns the tag into Kubernetes objects (as a launched run would)."""
    from dagster_k8s.job import get_user_defined_k8s_config

    try:
        get_user_defined_k8s_config(tags)
    except Exception as exc:  # dagster-k8s raises bare Exception for unexpected model keys
        return [f"{where}: {str(exc).splitlines()[0]}"]
    return []


def tags_for_run(tags: Mapping[str, Any]) -> dict[str, str]:
    """Run tags as Dagster takes them: ``dagster-k8s/config`` as JSON, the others as they are."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()}


# ----- executors ----------------------------------------------------------------------------------------


def parallel_op_names() -> set[str]:
    """The ops of ``render_video_parallel`` (what ``per_step_k8s_config`` may name)."""
    from i2v_dagster.definitions import resources
    from i2v_dagster.defs.parallel import render_video_parallel

    job = render_video_parallel(resources, executor_name="multiprocess")
    return {op.name for op in job.graph.iterate_op_defs()}


def k8s_executor_errors(config: Mapping[str, Any], *, prefix: str = "execution.config") -> list[str]:
    from dagster_k8s import k8s_job_executor

    errors = dagster_errors(k8s_job_executor.config_schema.config_type, dict(config), prefix=prefix)
    if errors:
        return errors
    errors += k8s_errors(config, prefix=prefix)
    per_step = config.get("per_step_k8s_config") or {}
    if per_step:
        ops = parallel_op_names()
        for name in per_step:
            if name not in ops:
                errors.append(
                    f"{prefix}.per_step_k8s_config.{name}: no op {name!r} in render_video_parallel "
                    f"(its ops: {', '.join(sorted(ops))})"
                )
    return errors


def celery_errors(config: Mapping[str, Any], *, prefix: str = "execution.config") -> list[str]:
    from dagster_celery import celery_executor

    return dagster_errors(celery_executor.config_schema.config_type, dict(config), prefix=prefix)


# ----- files --------------------------------------------------------------------------------------------


def read_yaml(path: Path) -> Any:
    """A deployment file, read by the job specs' strict YAML reader: a key written twice (which YAML would
    resolve to the last one silently) or an alias bomb is refused, naming the file and the key's path."""
    from i2v_dagster.errors import SpecError
    from i2v_dagster.specfile import parse_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return parse_yaml(text, source=str(path))
    except SpecError as exc:
        raise DeployConfigError(str(exc)) from None


def file_kind(path: Path) -> str | None:
    name = path.name
    if name == "dagster.yaml":
        return "instance"
    if name == "celery.yaml":
        return "celery"
    if "tags" in name and name.endswith((".yaml", ".yml")):
        return "tags"
    if "run-config" in name and name.endswith((".yaml", ".yml")):
        return "run_config"
    return None


def file_errors(path: Path) -> list[str]:
    """Problems in one deployment file, each ``file: key.path: problem``; [] when it is fine."""
    kind = file_kind(path)
    if kind is None:
        return [
            f"{path}: not a deployment file this checks (dagster.yaml, celery.yaml, *tags*.yaml, "
            "*run-config*.yaml)"
        ]
    data = read_yaml(path)
    if not isinstance(data, Mapping):
        return [f"{path}: expected a mapping at the top level"]
    if kind == "instance":
        found = instance_errors(data)
    elif kind == "celery":
        found = celery_errors(((data.get("execution") or {}).get("config")) or {})
    elif kind == "tags":
        found = []
        for name, tags in data.items():
            if not isinstance(tags, Mapping):
                found.append(f"{name}: expected a mapping of run tags")
                continue
            found += tag_errors(tags, prefix=str(name))
    else:
        execution = (data.get("execution") or {}).get("config") or {}
        found = k8s_executor_errors(execution)
    return [f"{path}: {line}" for line in found]


def deployment_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.y*ml") if file_kind(p) is not None)


def check(paths: Iterable[Path]) -> dict[Path, list[str]]:
    """Errors per file (every deployment file under each path)."""
    found: dict[Path, list[str]] = {}
    for root in paths:
        if not root.exists():
            raise DeployConfigError(f"{root}: not found")
        for path in deployment_files(root):
            found[path] = file_errors(path)
    return found


def load_tags(spec: str) -> dict[str, str]:
    """``FILE`` (a mapping of run tags) or ``FILE:NAME`` (one named set of a ``*tags*.yaml``), checked, as
    the run's tags."""
    file, _, name = spec.partition(":")
    path = Path(file)
    data = read_yaml(path)
    if name:
        if not isinstance(data, Mapping) or name not in data:
            known = ", ".join(data) if isinstance(data, Mapping) else "none"
            raise DeployConfigError(f"{path}: no tag set {name!r} (sets: {known})")
        data = data[name]
    if not isinstance(data, Mapping):
        raise DeployConfigError(f"{spec}: expected a mapping of run tags")
    errors = tag_errors(data, prefix=name)
    if errors:
        raise DeployConfigError("\n".join(f"{path}: {e}" for e in errors))
    return tags_for_run(data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    roots = [Path(a) for a in args] or [DEFAULT_ROOT]
    try:
        results = check(roots)
    except DeployConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path, errors in results.items():
        if errors:
            failed += 1
            for line in errors:
                print(line, file=sys.stderr)
        else:
            print(f"ok: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
