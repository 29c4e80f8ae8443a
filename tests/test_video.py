"""Videos: frames rendered off-screen are not blank and move; MP4/GIF files; --video-every."""
import ctypes.util
import os

import numpy as np
import pytest

from contrl import video

HAVE_GL = (os.environ.get("MUJOCO_GL") not in (None, "", "osmesa") or
           ctypes.util.find_library("OSMesa") is not None or os.path.exists("/dev/nvidia0"))
needs_gl = pytest.mark.skipif(not HAVE_GL, reason="no off-screen GL: apt install libosmesa6")


def test_blank_frames_are_detected():
    frame = np.full((4, 5, 3), 17, np.uint8)
    assert video.is_blank(frame)
    frame[1, 2, 0] = 18
    assert not video.is_blank(frame)


def test_frames_keep_real_time_with_action_repeat():
    from types import SimpleNamespace
    env = lambda dt: SimpleNamespace(unwrapped=SimpleNamespace(dt=dt))  # noqa: E731
    assert video.frame_skip(env(0.008), 30) == (4, 30)  # Hopper: every 4th step at 30 fps
    # dm_control walker (0.025 s a step) with action repeat 4: a frame every step is 10 per
    # second of simulation, shown at 10 fps (at 30 it played 3x too fast)
    assert video.frame_skip(env(0.025), 30, action_repeat=4) == (1, 10)
    assert video.frame_skip(env(None), 30) == (1, 30)  # no time step known
    assert video.gif_rate(30) == 15 and video.gif_rate(10) == 10  # the GIF as the MP4


def test_frame_strip_and_gif_frames():
    frames = np.arange(10 * 4 * 6 * 3, dtype=np.uint8).reshape(10, 4, 6, 3)
    assert video.frame_strip(frames, 5).shape == (4, 30, 3)
    assert video.gif_frames(frames, fps=30, gif_fps=15, width=3).shape == (5, 2, 3, 3)
    assert video.gif_frames(frames, fps=30, gif_fps=15, width=4).shape == (5, 2, 3, 3)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_a_failed_encoding_replaces_nothing(tmp_path):
    # H.264 refuses odd sides: ffmpeg exits without writing, and the empty temporary file was
    # renamed over the target (the CLI now refuses odd sizes first; this is the last guard)
    from contrl.errors import ContrlError
    pytest.importorskip("imageio_ffmpeg")
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"an older video")
    frames = np.zeros((3, 33, 17, 3), np.uint8)
    with pytest.raises(ContrlError, match="wrote nothing"):
        video.write_video(frames, target, 30)
    assert target.read_bytes() == b"an older video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@needs_gl
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the test reads the MP4 with ffmpeg
def test_video_during_training_and_of_a_saved_run(tiny, tmp_path):
    """A run with --video-every writes its MP4 and TensorBoard frames; `contrl video` renders
    the saved policy: every frame non-blank, consecutive frames different, files readable."""
    import imageio.v2 as imageio

    from contrl.cli import main
    from contrl.train import train

    run_cfg, algo_cfg = tiny(steps=300, video_every=300, eval_every=300, tensorboard=True)
    overrides = {**vars(run_cfg), **vars(algo_cfg)}
    overrides.pop("env")
    out = train("sac", "InvertedPendulum-v5", overrides)
    run = out["run_dir"]
    clip = os.path.join(run, "videos", "step-300.mp4")
    assert os.path.getsize(clip) > 0
    assert any(f.startswith("events") for f in os.listdir(os.path.join(run, "tb")))

    target = tmp_path / "v.mp4"
    assert main(["video", run, "--checkpoint", "latest", "--out", str(target), "--gif",
                 "--size", "96", "96", "--max-steps", "40"]) == 0
    frames = np.stack(imageio.mimread(str(target), memtest=False))
    assert frames.shape[1:] == (96, 96, 3) and len(frames) >= 5
    assert not any(video.is_blank(f) for f in frames)
    moved = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    assert np.mean([m > 0 for m in moved]) > 0.8, moved  # the pendulum moves
    assert target.with_suffix(".gif").stat().st_size > 0


def test_video_of_a_non_mujoco_env_is_refused():
    from contrl.envs import make_env
    from contrl.errors import ContrlError
    with pytest.raises(ContrlError, match="not rendered by MuJoCo"):
        make_env("Pendulum-v1", render_size=(64, 64))


@needs_gl
def test_dm_control_frames_larger_than_its_default_buffer():
    """dm_control's offscreen buffer is 640x480 in its tasks' models; a larger video enlarges
    it (it raised a multi-line ValueError before), also after a seeded reset reloads the task."""
    import subprocess
    import sys
    code = ("from contrl import video; video.choose_gl_backend(); "
            "from contrl.envs import make_env; "
            "env = make_env('dmc:walker-walk', render_size=(500, 720)); env.reset(seed=1); "
            "frame = env.render(); print(frame.shape, video.is_blank(frame))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # a fresh process: dm_control fixes its GL at import
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "(500, 720, 3) False", proc.stdout


def test_no_off_screen_gl_is_one_error_and_leaves_mujoco_gl_unset(monkeypatch):
    """Without EGL or OSMesa, choosing a backend is refused in one line; setting MUJOCO_GL
    to osmesa anyway made every later dm_control import in the process fail."""
    from contrl.errors import ContrlError

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(video.os.path, "exists", lambda path: False)
    monkeypatch.setattr(video.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(ContrlError, match="no off-screen OpenGL"):
        video.choose_gl_backend()
    assert "MUJOCO_GL" not in os.environ
