"""Where a video's files live, clip ids, atomic writes and their leftovers, the HF cache location."""

from __future__ import annotations

import os

import pytest

from i2v_dagster.fsutil import remove_stale_temporaries, scratch_name, write_bytes_atomic
from i2v_dagster.hfcache import hub_cache_dir, user_path
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import clip_id


def test_files_sit_under_the_video_folder_with_three_digit_ids(tmp_path):
    paths = VideoPaths.for_video(tmp_path, "demo")
    assert paths.root == tmp_path.resolve() / "demo"
    assert paths.rel(paths.clip(7)) == "clips/clip_007.mp4" and clip_id(7) == "007"
    assert paths.rel(paths.clip_last(12)) == "clips/clip_012_last.png"
    assert paths.rel(paths.keyframe(0)) == "keyframes/keyframe_000.png"
    assert paths.final.name == "demo.mp4" and paths.bundle("abcdef123456").name == "demo-abcdef12.zip"
    with pytest.raises(ValueError):
        paths.rel(tmp_path / "elsewhere.txt")


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "out" / "a.json"
    write_bytes_atomic(dest, b"one")
    write_bytes_atomic(dest, b"two")
    assert dest.read_bytes() == b"two"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.json"]
    assert oct(dest.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    live = scratch_name(tmp_path / "final" / "v.mp4")  # this process: kept
    live.write_bytes(b"in progress")
    dead = tmp_path / "clips" / ".clip_003.tmp-999999999-abcd.mp4"  # no such process: removed
    dead.parent.mkdir()
    dead.write_bytes(b"half a clip")
    kept = tmp_path / "clips" / "clip_003.mp4"
    kept.write_bytes(b"a real clip")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and kept.exists() and not dead.exists()


def test_hub_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hub_cache_dir() == tmp_path / "cache"
    assert hub_cache_dir("/explicit") == type(tmp_path)("/explicit")


def test_user_paths_hide_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path(tmp_path / ".cache" / "huggingface") == "~/.cache/huggingface"
    assert user_path("/opt/models") == "/opt/models"


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    from i2v_dagster.errors import MediaError

    dest = tmp_path / "clips" / "clip_000.json"
    write_bytes_atomic(dest, b"old")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(dest), "write_bytes", full)
    with pytest.raises(MediaError, match=r"cannot write .*clip_000\.json: No space left on device"):
        write_bytes_atomic(dest, b"new")
    monkeypatch.undo()
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["clip_000.json"]
