import torch

from vaenmf.data.matrix import MatrixDataModule


def test_whole_matrix_and_frame_batches():
    X = torch.rand(257, 300)
    whole = list(MatrixDataModule(X, batch_size=None).train_dataloader())
    assert len(whole) == 1 and torch.equal(whole[0], X)
    batches = list(MatrixDataModule(X, batch_size=128, shuffle=False).train_dataloader())
    assert [tuple(b.shape) for b in batches] == [(128, 257), (128, 257), (44, 257)]
    assert torch.equal(torch.cat(batches).T, X)
    a = list(MatrixDataModule(X, batch_size=64, seed=3).train_dataloader())
    b = list(MatrixDataModule(X, batch_size=64, seed=3).train_dataloader())
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(torch.cat(a), torch.cat(batches[:3])[:300])
    # A shuffled epoch is a permutation of the frames.
    torch.testing.assert_close(torch.cat(a).sum(0), X.sum(1))
