"""An offline HTML report of one video's checks and figures.

The HTML refers to its pictures by relative path, so write it in the bundle root with the PNGs in the same
folder (or below it); the bundle then opens anywhere without a network. Every string is HTML-escaped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from i2v_dagster.verify._util import atomic_write_bytes
from i2v_dagster.verify.outcome import CheckOutcome, to_jsonable

_STYLE = """
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
"""


def _number(value: float | None) -> str:
    converted = to_jsonable(value)
    return "&mdash;" if converted is None else escape(f"{converted:.4g}")


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


def _outcome_row(outcome: CheckOutcome) -> str:
    status = outcome.status
    status_cell = f'<span class="{status}">{status}</span>'
    if outcome.skipped_reason:
        status_cell += f"<br>{escape(outcome.skipped_reason)}"
    details = json.dumps(to_jsonable(outcome.details), sort_keys=True)
    return (
        "<tr>"
        f"<td>{escape(outcome.name)}</td>"
        f"<td>{status_cell}</td>"
        f"<td>{_number(outcome.value)}</td>"
        f"<td>{_number(outcome.threshold)}</td>"
        f"<td>{escape(outcome.explanation)}"
        f"<details><summary>details</summary><pre>{escape(details)}</pre></details></td>"
        "</tr>"
    )


def render_report(
    *,
    title: str,
    video_info: Mapping[str, Any],
    outcomes: Sequence[CheckOutcome],
    picture_srcs: Mapping[str, str],
) -> str:
    """The report's HTML text (``picture_srcs``: caption -> already relative URL)."""
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("PASS", "FAIL", "SKIPPED")}
    info_rows = "".join(
        f"<tr><th>{escape(str(key))}</th><td>{escape(_info_text(value))}</td></tr>"
        for key, value in video_info.items()
    )
    check_rows = "".join(_outcome_row(o) for o in outcomes)
    figures = "".join(
        f'<figure><img src="{escape(src)}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, src in picture_srcs.items()
    )
    summary = f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIPPED']} skipped"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<h2>Video</h2><table>{info_rows}</table>"
        f"<h2>Checks</h2><p>{escape(summary)}</p>"
        "<table><tr><th>check</th><th>status</th><th>value</th><th>threshold</th><th>explanation</th></tr>"
        f"{check_rows}</table>"
        f"<h2>Figures</h2>{figures or '<p>none</p>'}"
        "</body></html>\n"
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
    return atomic_write_bytes(target, text.encode("utf-8"))
