import csv
import os

import numpy as np
import pytest

from contrl.agents.sac import SAC, SACConfig
from contrl.errors import CheckpointError
from contrl.run import Checkpoint, Logger, atomic_write_bytes, save_checkpoint, sync_tree


def _agent(seed=0):
    return SAC.create(SACConfig(hidden=(8,)), 3, 1, seed)


def test_save_load_gives_identical_actions(tmp_path):
    agent = _agent(0)
    save_checkpoint(tmp_path / "a.ckpt", agent, {"step": 5}, {"x/y": np.arange(3)}, {"k": [1, 2]})
    ckpt = Checkpoint(tmp_path / "a.ckpt")
    restored = ckpt.restore_agent(_agent(1))
    obs = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.eval_actions(obs)[0], restored.eval_actions(obs)[0])
    np.testing.assert_array_equal(agent.sample_actions(obs)[0], restored.sample_actions(obs)[0])
    assert ckpt.meta == {"step": 5} and ckpt.state() == {"k": [1, 2]}
    np.testing.assert_array_equal(ckpt.arrays("x/")["x/y"], np.arange(3))


def test_crash_during_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.ckpt"
    save_checkpoint(path, _agent(0), {"step": 1})
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, _agent(1), {"step": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.ckpt"]  # no temp file left


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_corrupted_or_foreign_checkpoint_gives_clear_error(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content is None:  # a valid npz that is not a contrl checkpoint
        np.savez(open(path, "wb"), weights=np.ones(3))
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.ckpt") as e:
        Checkpoint(path)
    assert "allow_pickle" not in str(e.value)  # numpy's hint is no advice for a damaged file


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = tmp_path / "t.ckpt"
    save_checkpoint(path, _agent(0), {"step": 1})
    atomic_write_bytes(path, path.read_bytes()[:-200])
    with pytest.raises(CheckpointError):
        Checkpoint(path).restore_agent(_agent(1))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.ckpt", _agent(0), {})
    other = SAC.create(SACConfig(hidden=(16, 16)), 3, 1, 0)
    with pytest.raises(CheckpointError, match="does not match"):
        Checkpoint(tmp_path / "c.ckpt").restore_agent(other)


def test_resumed_logger_drops_rows_logged_after_the_checkpoint(tmp_path):
    # an interrupted run logged steps 1-3 (and half a row) but its checkpoint is at step 2:
    # the resumed run logs step 3 again, so progress.csv must not keep the first step 3
    log = Logger(tmp_path, ("loss",), tensorboard=False)
    for step in (1, 2, 3):
        log.log({"step": step, "loss": float(step)})
    log.close()
    with (tmp_path / "progress.csv").open("a") as f:
        f.write("4,0.1")  # killed mid-row
    log = Logger(tmp_path, ("loss",), tensorboard=False, resume_step=2)
    log.log({"step": 3, "loss": 30.0})
    log.close()
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("step,")
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert rows[-1].endswith(",30.0")


def test_resumed_tensorboard_log_purges_steps_after_the_checkpoint(tmp_path):
    """The resumed writer's event file starts with TensorBoard's purge marker at the step
    after the checkpoint (the interrupted run's later scalars were shown beside the new)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event, SessionLog
    Logger(tmp_path, ("loss",), tensorboard=True).close()
    log = Logger(tmp_path, ("loss",), tensorboard=True, resume_step=2)
    log.log({"step": 3, "loss": 30.0})
    log.close()

    def events(path):
        data, out = path.read_bytes(), []
        while data:
            (n,) = struct.unpack("<Q", data[:8])
            out.append(Event.FromString(data[12:12 + n]))
            data = data[12 + n + 4:]
        return out
    marks = [(e.step, e.session_log.status) for f in (tmp_path / "tb").iterdir()
             for e in events(f) if e.HasField("session_log")]
    assert marks == [(3, SessionLog.START)]  # only the resumed writer's


def test_a_writer_opened_in_the_same_second_keeps_the_earlier_event_file(tmp_path,
                                                                          monkeypatch):
    """TensorBoard event files are named by the second they were opened: a run resumed within
    that second truncated the interrupted run's file (opened "wb")."""
    import tensorboardX.event_file_writer as efw
    monkeypatch.setattr(efw.time, "time", lambda: 1796640000.5)
    first = Logger(tmp_path, ("loss",), tensorboard=True)
    first.log({"step": 1, "loss": 10.0})
    first.close()
    size = {f.name: f.stat().st_size for f in (tmp_path / "tb").iterdir()}
    log = Logger(tmp_path, ("loss",), tensorboard=True, resume_step=1)
    log.log({"step": 2, "loss": 20.0})
    log.close()
    files = {f.name: f.stat().st_size for f in (tmp_path / "tb").iterdir()}
    assert len(files) == 2 and all(files[name] == n for name, n in size.items())


def test_a_resumed_run_continues_its_wandb_run(tmp_path, monkeypatch):
    """--wandb: every Logger of one run directory asks W&B for the same run id (a resume
    began a new W&B run); another directory gets another id."""
    import sys
    import types
    calls = []

    class Run:
        def log(self, *a, **k):
            pass

        def finish(self):
            pass
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(kw) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    (tmp_path / "b").mkdir()
    Logger(tmp_path, ("loss",), tensorboard=False, wandb_config={}).close()
    Logger(tmp_path, ("loss",), tensorboard=False, wandb_config={}, resume_step=0).close()
    Logger(tmp_path / "b", ("loss",), tensorboard=False, wandb_config={}).close()
    ids = [c["id"] for c in calls]
    assert ids[0] == ids[1] != ids[2] and all(c["resume"] == "allow" for c in calls)


def test_resumed_log_with_other_columns_gets_the_new_header(tmp_path):
    """A run logged by an older contrl (fewer columns) and resumed by this one keeps every
    value under its own column name."""
    (tmp_path / "progress.csv").write_text("step,eval_return,critic_loss\n100,-5.0,0.5\n200,-4.0,0.4\n")
    log = Logger(tmp_path, ("critic_loss",), tensorboard=False, resume_step=100)
    log.log({"step": 300, "eval_return": -3.0, "critic_loss": 0.3, "eval_success_rate": 0.5})
    log.close()
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["100", "300"]
    assert rows[0]["eval_return"] == "-5.0" and rows[0]["critic_loss"] == "0.5"
    assert rows[1]["eval_success_rate"] == "0.5" and rows[0]["eval_success_rate"] == ""


def test_a_progress_log_that_is_not_text_stops_the_resume_and_is_kept(tmp_path):
    from contrl.errors import ContrlError
    path = tmp_path / "progress.csv"
    path.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ContrlError, match="progress.csv is not a text progress log"):
        Logger(tmp_path, ("loss",), tensorboard=False, resume_step=10)
    assert path.read_bytes() == bytes(range(128, 256))
    path.write_text("a,b\n1,2\n")  # another file's rows: no blank row written for them
    Logger(tmp_path, ("loss",), tensorboard=False, resume_step=10).close()
    assert path.read_text().splitlines()[1:] == []


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path, monkeypatch):
    import datetime as dt

    import contrl.run as run_mod

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 4, 18, 10, 20)

    monkeypatch.setattr(run_mod, "datetime", Frozen)
    # another process may take a name between any look and the mkdir: the mkdir decides
    monkeypatch.setattr(run_mod.Path, "exists", lambda self: False)
    dirs = [run_mod.new_run_dir(str(tmp_path), "bc", "Pendulum-v1", 0) for _ in range(3)]
    assert [d.name for d in dirs] == ["bc-Pendulum-v1-s0-20261204-181020",
                                      "bc-Pendulum-v1-s0-20261204-181020-1",
                                      "bc-Pendulum-v1-s0-20261204-181020-2"]
    assert all((d / "checkpoints").is_dir() for d in dirs)


def test_a_held_directory_is_refused_to_a_second_holder_until_let_go(tmp_path):
    from contrl.errors import ContrlError
    from contrl.run import DirLock
    with DirLock(tmp_path):
        # a second open of the lock file is another holder (as another process would be)
        with pytest.raises(ContrlError, match=rf"{tmp_path} is in use by another contrl "
                                              rf"process \(pid {os.getpid()}\): wait"):
            DirLock(tmp_path).__enter__()
    with DirLock(tmp_path, "contrl sweep"):  # let go at the end of the first
        pass
    # a process that ended without letting go holds nothing: its pid alone is no lock
    assert (tmp_path / DirLock.FILE).read_text() == str(os.getpid())
    with DirLock(tmp_path):
        pass


def test_a_file_system_without_locks_gets_a_note_not_a_refusal(tmp_path, monkeypatch, capsys):
    import errno

    from contrl import run as run_mod

    def no_locks(f, op):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    monkeypatch.setattr(run_mod.fcntl, "flock", no_locks)
    with run_mod.DirLock(tmp_path):
        pass
    err = capsys.readouterr().err
    assert f"note: {tmp_path} cannot be locked here" in err and len(err.splitlines()) == 1


def test_atomic_writes_sync_the_file_and_its_directory(tmp_path, monkeypatch):
    """A rename is on disk only once its directory is synced: atomic writes sync the file,
    then the folder; a dataset folder is synced file by file before it is renamed in."""
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert synced[-1] == str(tmp_path) and synced[-2].startswith(str(tmp_path / ".a.bin."))
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.h5").write_bytes(b"y")
    synced.clear()
    sync_tree(tmp_path / "d")
    assert set(synced) == {str(tmp_path / "d"), str(tmp_path / "d" / "e"),
                           str(tmp_path / "d" / "e" / "f.h5")}
