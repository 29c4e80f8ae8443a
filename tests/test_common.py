"""What every loop shares (contrl.loops.common): due-step arithmetic, metric checks, the
policy state read back from a checkpoint."""
import numpy as np
import pytest

from contrl.errors import ContrlError, NonFiniteLossError
from contrl.loops.common import check_finite, crossed, saved_carry
from contrl.policy import carry_arrays
from contrl.run import Checkpoint, save_checkpoint


def test_crossed_by_hand():
    assert crossed(990, 1010, 1000) and crossed(999, 1000, 1000)
    assert not crossed(1000, 1999, 1000) and not crossed(5, 10, 0)


def test_check_finite_names_the_metric(tmp_path):
    assert check_finite({"a": np.float32(1.5)}, 10, tmp_path) == {"a": 1.5}
    with pytest.raises(NonFiniteLossError, match="critic_loss became inf at step 7"):
        check_finite({"critic_loss": np.inf}, 7, tmp_path)


def test_saved_carry_restores_or_refuses(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"w": np.zeros(1)}, {"step": 1}, carry_arrays(np.arange(3)))
    ckpt = Checkpoint(path)
    np.testing.assert_array_equal(saved_carry(ckpt, np.zeros(3, np.int64)), [0, 1, 2])
    assert saved_carry(None, ()) == ()
    with pytest.raises(ContrlError, match="does not match this policy"):
        saved_carry(ckpt, np.zeros(4, np.int64))
