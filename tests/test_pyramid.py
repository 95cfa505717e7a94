import torch

from mgbench.pyramid import downsample, laplacian_pyramid, reconstruct, upsample


def test_pyramid_reconstructs_exactly():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    bands = laplacian_pyramid(x, 3)
    assert [b.shape[-1] for b in bands] == [32, 16, 8]
    assert torch.allclose(reconstruct(bands), x, atol=1e-12)


def test_constant_image_passes_unchanged():
    x = torch.full((1, 1, 16, 16), 0.7, dtype=torch.float64)
    assert torch.allclose(downsample(x), torch.full((1, 1, 8, 8), 0.7, dtype=torch.float64))
    assert torch.allclose(upsample(downsample(x)), x)
    assert laplacian_pyramid(x, 2)[0].abs().max() < 1e-12  # no detail in a flat image


def test_nyquist_stripes_vanish_after_one_halving():
    # A period-2 pattern is exactly the frequency the binomial filter removes: [1,4,6,4,1]·[1,-1,...] = 0.
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[..., ::2] = 1.0
    assert torch.allclose(downsample(x), torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64))
