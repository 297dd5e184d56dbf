import pytest
import torch
from torch import nn

from spkid.errors import SpkidError
from spkid.train.average import average_checkpoints, average_state_dicts, last_checkpoints


def net(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    m.train()
    m(torch.randn(8, 3) * (seed + 1))  # moves the running statistics
    return m


def save_epochs(exp, epochs):
    (exp / "checkpoints").mkdir(parents=True, exist_ok=True)
    nets = {}
    for e in epochs:
        nets[e] = net(e)
        torch.save({"model": nets[e].state_dict(), "epoch": e}, exp / "checkpoints" / f"epoch_{e:04d}.pt")
    return nets


def test_average_equals_hand_mean(tmp_path):
    nets = save_epochs(tmp_path, [3, 4, 5, 6])
    paths = last_checkpoints(tmp_path, 3)
    assert [p.name for p in paths] == ["epoch_0004.pt", "epoch_0005.pt", "epoch_0006.pt"]
    avg = average_checkpoints(paths)
    for k, v in nets[6].state_dict().items():
        vals = [nets[e].state_dict()[k] for e in (4, 5, 6)]
        if v.is_floating_point():
            hand = (vals[0] + vals[1] + vals[2]) / 3
            torch.testing.assert_close(avg[k], hand, rtol=1e-6, atol=1e-7)
            assert avg[k].dtype == v.dtype
        else:  # num_batches_tracked: the newest
            assert torch.equal(avg[k], v)
    # running statistics are averaged like the weights
    assert not torch.equal(avg["1.running_mean"], nets[6].state_dict()["1.running_mean"])
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    m.load_state_dict(avg)


def test_one_checkpoint_is_itself(tmp_path):
    nets = save_epochs(tmp_path, [1, 2])
    avg = average_checkpoints(last_checkpoints(tmp_path, 1))
    for k, v in nets[2].state_dict().items():
        assert torch.equal(avg[k], v)


def test_missing_or_gapped_checkpoints_named(tmp_path):
    save_epochs(tmp_path, [2, 4, 5])
    with pytest.raises(SpkidError, match="epochs there: 2, 4, 5"):
        last_checkpoints(tmp_path, 3)
    with pytest.raises(SpkidError, match="last 4"):
        last_checkpoints(tmp_path, 4)
    a, b = net(0).state_dict(), nn.Linear(3, 4).state_dict()
    with pytest.raises(SpkidError, match="other parameters"):
        average_state_dicts([a, b])
    bad = tmp_path / "checkpoints" / "epoch_0006.pt"
    bad.write_bytes(b"trunc")
    with pytest.raises(SpkidError, match="epoch_0006.pt"):
        average_checkpoints(last_checkpoints(tmp_path, 2))
