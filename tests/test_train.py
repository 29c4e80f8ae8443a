"""Starting runs: what a failed start removes (its own directory and the empty folders it made
above it, never another run's)."""
from types import SimpleNamespace

import json

from contrl.train import open_run_dir, prepare_rendering, remove_dirs


def test_a_run_with_videos_chooses_its_gl_backend_first(tmp_path, monkeypatch):
    # dm_control fixes its GL backend when first imported, which resolving a dmc: id does
    calls = []
    monkeypatch.setattr("contrl.video.choose_gl_backend", lambda: calls.append(1))
    prepare_rendering("dmc:walker-walk", {"video_every": 0}, [])
    assert calls == []
    prepare_rendering("dmc:walker-walk", {"video_every": 100}, [])
    assert calls == [1]
    prepare_rendering("Hopper-v5", {"video_every": 100}, [])  # gymnasium reads it when it renders
    assert calls == [1]
    (tmp_path / "config.json").write_text(json.dumps(
        {"algo": "sac", "run": {"env": "dmc:walker-walk", "video_every": 500}, "algo_config": {}}))
    prepare_rendering(None, {}, [str(tmp_path)])  # a resumed run that records videos
    assert calls == [1, 1]
    prepare_rendering(None, {"video_every": 0}, [str(tmp_path)])  # turned off on resume
    assert calls == [1, 1]


def test_a_failed_start_removes_what_it_made_and_nothing_else(tmp_path):
    cfg = SimpleNamespace(runs_dir=str(tmp_path / "new" / "runs"), env="Pendulum-v1", seed=0)
    mine, made = open_run_dir(cfg, "sac", None)
    assert made == [mine, tmp_path / "new" / "runs", tmp_path / "new"]
    other, made_other = open_run_dir(SimpleNamespace(**{**vars(cfg), "seed": 1}), "sac", None)
    remove_dirs([(mine, made)])  # another run started in the same new folder: it stays
    assert not mine.exists() and other.is_dir()
    remove_dirs([(other, [other, other.parent, other.parent.parent])])
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()
    # --run-dir: a new one goes with the folders made above it; an existing empty one stays,
    # emptied of what the failed start wrote in it
    path, made = open_run_dir(cfg, "sac", str(tmp_path / "a" / "b" / "run"))
    remove_dirs([(path, made)])
    assert not (tmp_path / "a").exists()
    (tmp_path / "mine").mkdir()
    path, made = open_run_dir(cfg, "sac", str(tmp_path / "mine"))
    assert made == [] and path.is_dir()
    (path / "config.json").write_text("{}")
    (path / ".lock").write_text("")
    remove_dirs([(path, made)])
    assert path.is_dir() and not any(path.iterdir())
