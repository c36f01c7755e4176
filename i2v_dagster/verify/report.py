"""An offline HTML report of one video's checks and figures.

The HTML refers to its pictures by relative path, so write it in the bundle root with the PNGs in the same
folder (or below it); the bundle then opens anywhere without a network. The page is a jinja2 template with
autoescape on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from i2v_dagster.fsutil import write_bytes_atomic
from i2v_dagster.verify.outcome import CheckOutcome, to_jsonable

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.PASS { color: #176f2c; font-weight: bold; }
.FAIL { color: #b3261e; font-weight: bold; }
.SKIPPED { color: #7a5d00; font-weight: bold; }
pre { white-space: pre-wrap; font-size: 0.85em; max-height: 20em; overflow: auto; background: #fafafa; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
</style></head><body>
<h1>{{ title }}</h1>
<h2>Video</h2><table>
{% for key, value in info %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
<h2>Checks</h2><p>{{ counts.PASS }} passed, {{ counts.FAIL }} failed, {{ counts.SKIPPED }} skipped</p>
<table><tr><th>check</th><th>status</th><th>value</th><th>threshold</th><th>explanation</th></tr>
{% for o in outcomes %}<tr><td>{{ o.name }}</td>
<td><span class="{{ o.status }}">{{ o.status }}</span>
{%- if o.skipped_reason %}<br>{{ o.skipped_reason }}{% endif %}</td>
<td>{{ o.value }}</td><td>{{ o.threshold }}</td>
<td>{{ o.explanation }}<details><summary>details</summary><pre>{{ o.details }}</pre></details></td></tr>
{% endfor %}</table>
<h2>Figures</h2>
{% for caption, src in figures %}<figure><img src="{{ src }}" alt="{{ caption }}">
<figcaption>{{ caption }}</figcaption></figure>
{% else %}<p>none</p>
{% endfor %}
</body></html>
"""


@cache
def _template():
    import jinja2

    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(_TEMPLATE)


def _number(value: float | None) -> str:
    converted = to_jsonable(value)
    return "\u2014" if converted is None else f"{converted:.4g}"


def _picture_src(picture: str | os.PathLike[str], root: Path) -> str:
    """The picture's path relative to ``root`` as a URL (a relative ``picture`` is taken relative to
    ``root``); refuses a picture that is missing or outside ``root``."""
    resolved = (root / picture).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"picture {str(picture)!r} not found at {str(resolved)!r}.")
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        raise ValueError(
            f"picture {str(picture)!r} is outside the report's folder {str(root)!r}; the report refers to "
            "pictures by relative path, so they must sit in the report's folder or below it."
        ) from None
    return quote(relative.as_posix())


def render_report(
    *,
    title: str,
    video_info: Mapping[str, Any],
    outcomes: Sequence[CheckOutcome],
    picture_srcs: Mapping[str, str],
) -> str:
    """The report's HTML text (``picture_srcs``: caption -> already relative URL). Every value is escaped
    by the template engine (autoescape)."""
    rows = [
        {
            "name": o.name,
            "status": o.status,
            "skipped_reason": o.skipped_reason,
            "value": _number(o.value),
            "threshold": _number(o.threshold),
            "explanation": o.explanation,
            "details": json.dumps(to_jsonable(o.details), sort_keys=True),
        }
        for o in outcomes
    ]
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("PASS", "FAIL", "SKIPPED")}
    info = [(str(k), _info_text(v)) for k, v in video_info.items()]
    return _template().render(
        title=title, info=info, counts=counts, outcomes=rows, figures=list(picture_srcs.items())
    )


def _info_text(value: Any) -> str:
    converted = to_jsonable(value)
    return converted if isinstance(converted, str) else json.dumps(converted)


def write_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    video_info: Mapping[str, Any],
    outcomes: Sequence[CheckOutcome],
    pictures: Mapping[str, str | os.PathLike[str]],
) -> Path:
    """Write the report atomically to ``path``; return it.

    ``pictures`` maps a caption to a PNG inside ``path``'s folder (absolute, or relative to that folder);
    the HTML refers to each by its relative path.
    """
    target = Path(path)
    root = target.parent.resolve()
    srcs = {caption: _picture_src(picture, root) for caption, picture in pictures.items()}
    text = render_report(title=title, video_info=video_info, outcomes=outcomes, picture_srcs=srcs)
    return write_bytes_atomic(target, text.encode("utf-8"))
