"""Videos of a policy: render deterministic episodes to MP4 (and GIF) without a display.

MuJoCo renders off-screen through OSMesa on a CPU (Debian's libosmesa6 + PyOpenGL) or EGL
where a GPU is present; ``MUJOCO_GL`` set by the user wins. Each frame is checked: a blank
(single-colour) frame, the usual sign of a broken GL context, is an error, not a silent video.
"""
from __future__ import annotations

import ctypes.util
import os
import warnings
from pathlib import Path

import numpy as np

from contrl.errors import ContrlError


def choose_gl_backend() -> str:
    """MUJOCO_GL (and PyOpenGL's platform) for off-screen rendering: the user's choice if set,
    EGL with an NVIDIA device, else OSMesa. Must run before the first GL context."""
    backend = os.environ.get("MUJOCO_GL")
    if not backend:
        if os.path.exists("/dev/nvidia0"):
            backend = "egl"
        elif ctypes.util.find_library("OSMesa") is not None:
            backend = "osmesa"
        else:  # choosing osmesa anyway would break every later dm_control import
            raise ContrlError("no off-screen OpenGL to render videos with: install OSMesa "
                              "(Debian/Ubuntu: apt install libosmesa6) or set MUJOCO_GL")
        os.environ["MUJOCO_GL"] = backend
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def check_renderable(env_id: str, **env_kwargs) -> None:
    """Refuse, before training starts, a --video-every run whose env cannot be rendered."""
    from contrl.envs import make_env
    from contrl.envs.dmc import PREFIX
    if not env_id.startswith(PREFIX):  # whether MuJoCo renders it is known without GL
        make_env(env_id, render_size=(16, 16), **env_kwargs).close()
    choose_gl_backend()
    make_env(env_id, render_size=(16, 16), **env_kwargs).close()


def frame_skip(env, fps: int, action_repeat: int = 1) -> tuple[int, int]:
    """Env steps between frames, and the frame rate, so that the video plays near real time:
    ``fps``, or fewer where even a frame every step is slower (one step of an env with
    ``action_repeat`` k lasts k physics control steps)."""
    dt = getattr(env.unwrapped, "dt", None)
    if dt is None:  # dm_control: the control timestep of its physics
        inner = getattr(env.unwrapped, "_env", None)
        dt = inner.control_timestep() if inner is not None else None
    if not dt:
        return 1, fps
    step = dt * action_repeat
    skip = max(1, round(1.0 / (step * fps)))
    return skip, fps if skip > 1 else min(fps, max(1, round(1.0 / step)))


def is_blank(frame: np.ndarray) -> bool:
    """A frame of one colour (what a failed GL context renders)."""
    return bool(np.ptp(frame.reshape(-1, frame.shape[-1]), axis=0).max() == 0)


def render_episodes(policy, env_id: str, episodes: int, seed: int, size=(256, 256),
                    fps: int = 30, max_steps: int | None = None, **env_kwargs) -> dict:
    """Roll out ``episodes`` deterministic episodes of ``policy`` (its state carried through
    each) and render them. Returns frames (T x H x W x 3 uint8), the episode returns and the
    frame rate; every episode starts with its first frame, whatever was rendered before."""
    choose_gl_backend()
    from contrl.envs import make_env  # after the GL backend is chosen

    env = make_env(env_id, render_size=tuple(size), **env_kwargs)
    skip, fps = frame_skip(env, fps, env_kwargs.get("action_repeat", 1))
    frames, returns, lengths = [], [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            carry = policy.initial_carry(1)
            frames.append(np.asarray(env.render(), np.uint8).copy())
            ret, t, done = 0.0, 0, False
            while not done and (max_steps is None or t < max_steps):
                actions, carry = policy.eval_actions(np.asarray(obs, np.float32)[None], carry)
                obs, r, term, trunc, _ = env.step(np.asarray(actions)[0])
                ret, t, done = ret + float(r), t + 1, bool(term or trunc)
                if t % skip == 0 or done:
                    frames.append(np.asarray(env.render(), np.uint8).copy())
            returns.append(ret)
            lengths.append(t)
    finally:
        env.close()
    blank = [i for i, f in enumerate(frames) if is_blank(f)]
    if blank:
        raise ContrlError(f"rendering produced {len(blank)} blank frame(s) of {len(frames)} "
                          f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')}); on a CPU install "
                          "libosmesa6 and set MUJOCO_GL=osmesa")
    return {"frames": np.stack(frames), "returns": returns, "lengths": lengths,
            "fps": fps, "frame_skip": skip}


def write_video(frames: np.ndarray, path: Path, fps: int) -> Path:
    """MP4 (H.264 through imageio-ffmpeg) or GIF, by the suffix; written to a temporary file
    and renamed, so a crash leaves no half video."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ContrlError("videos need imageio: pip install 'contrl[video]'") from None
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, list(frames), duration=1000.0 / fps, loop=0)
        else:
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise ContrlError("MP4 videos need imageio-ffmpeg: pip install "
                                  "'contrl[video]'") from None
            with warnings.catch_warnings():  # ffmpeg runs in a forked child that execs at once:
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)  # JAX's warning is moot
                imageio.mimsave(tmp, list(frames), fps=fps, macro_block_size=1)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise ContrlError(f"the video encoder wrote nothing for {path} (see its messages "
                              "above); nothing was replaced")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def gif_frames(frames: np.ndarray, fps: int, gif_fps: int = 15, width: int = 192) -> np.ndarray:
    """Fewer and smaller frames for a GIF small enough for a README (played at
    ``gif_rate(fps, gif_fps)``)."""
    sub = frames[::max(1, round(fps / gif_fps))]
    factor = max(1, -(-frames.shape[2] // width))  # ceil: at most ``width`` pixels wide
    return sub[:, ::factor, ::factor]


def gif_rate(fps: float, gif_fps: int = 15) -> float:
    """The frame rate at which ``gif_frames``' frames play in real time."""
    return fps / max(1, round(fps / gif_fps))


def frame_strip(frames: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` frames side by side (H x n*W x 3): a still summary of a video for TensorBoard."""
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).astype(int)
    return np.concatenate(list(frames[idx]), axis=1)
