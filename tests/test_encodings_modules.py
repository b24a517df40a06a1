"""The encoding modules: shapes with any leading batch, parameters and initialisation, the
spherical-harmonics basis (orthonormal, tiny-cuda-nn's constants), gradients."""

import math

import pytest
import torch

from fastnerf.fields import FrequencyEncoding, HashEncoding, SphericalHarmonicsEncoding
from fastnerf.ops import freq_encode, hash_encode


@pytest.mark.parametrize("batch", [(), (7,), (2, 5), (0, 3)])
def test_frequency_encoding_shapes_and_values(batch):
    enc = FrequencyEncoding(3, 6)
    assert enc.out_dim == 3 * 13
    x = torch.randn(*batch, 3)
    out = enc(x)
    assert out.shape == (*batch, enc.out_dim)
    torch.testing.assert_close(out.reshape(-1, enc.out_dim), freq_encode(x.reshape(-1, 3), 6, backend="torch"))
    assert FrequencyEncoding(2, 4, include_input=False).out_dim == 16
    with pytest.raises(ValueError, match="in_dim"):
        enc(torch.randn(4, 2))


def test_hash_encoding_defaults_and_init():
    enc = HashEncoding()
    assert enc.out_dim == 32 and enc.table.shape == (16, 2**19, 2)
    assert enc.resolutions[0] == 16 and enc.resolutions[-1] == 2048
    assert enc.table.abs().max() <= 1e-4 and enc.table.std() > 3e-5  # uniform in +-1e-4
    assert [n for n, _ in enc.named_parameters()] == ["table"]


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_hash_encoding_forward_backward_with_leading_batch(backend):
    enc = HashEncoding(n_levels=4, n_features=2, log2_table_size=10, n_min=4, n_max=64, backend=backend)
    x = torch.rand(3, 5, 3)
    out = enc(x)
    assert out.shape == (3, 5, 8)
    torch.testing.assert_close(out.reshape(15, 8), hash_encode(x.reshape(15, 3), enc.table, n_min=4, n_max=64,
                                                               backend="torch"))
    out.square().sum().backward()
    assert enc.table.grad is not None and enc.table.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="x must end in 3"):
        enc(torch.rand(4, 2))


def _sphere_quadrature(n_theta=64, n_phi=128):
    """Gauss-Legendre in cos(theta) times uniform phi: exact for the products of bands <= 3."""
    nodes, weights = torch.from_numpy(__import__("numpy").polynomial.legendre.leggauss(n_theta)[0]), \
        torch.from_numpy(__import__("numpy").polynomial.legendre.leggauss(n_theta)[1])
    phi = torch.arange(n_phi, dtype=torch.float64) * (2 * math.pi / n_phi)
    z = nodes[:, None].expand(n_theta, n_phi)
    r = torch.sqrt(1 - z**2)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1).reshape(-1, 3)
    w = (weights[:, None] * (2 * math.pi / n_phi)).expand(n_theta, n_phi).reshape(-1)
    return dirs, w


def test_spherical_harmonics_are_orthonormal():
    enc = SphericalHarmonicsEncoding(4)
    assert enc.out_dim == 16
    dirs, w = _sphere_quadrature()
    y = enc(dirs)  # [M, 16]
    gram = (y * w[:, None]).T @ y
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=1e-10, rtol=0)


def test_spherical_harmonics_match_tiny_cuda_nn_constants():
    y = SphericalHarmonicsEncoding(4)(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64))
    # +z: only the m = 0 functions are non-zero
    expected_z = torch.zeros(16, dtype=torch.float64)
    expected_z[[0, 2, 6, 12]] = torch.tensor([0.28209479177387814, 0.48860251190291987,
                                              0.94617469575755997 - 0.31539156525251999, 0.3731763325901154 * 2],
                                             dtype=torch.float64)
    torch.testing.assert_close(y[0], expected_z)
    # +x: tcnn's signs, e.g. out3 = -0.4886 x, out15 = 0.5900 x (3y^2 - x^2) = -0.5900
    assert y[1, 3] == pytest.approx(-0.48860251190291987) and y[1, 15] == pytest.approx(-0.59004358992664352)
    assert y[1, 8] == pytest.approx(0.54627421529603959) and y[1, 13] == pytest.approx(0.45704579946446572)


@pytest.mark.parametrize("degree,out_dim", [(1, 1), (2, 4), (3, 9), (4, 16)])
def test_spherical_harmonics_degrees_batch_and_gradcheck(degree, out_dim):
    enc = SphericalHarmonicsEncoding(degree)
    assert enc.out_dim == out_dim
    d = torch.nn.functional.normalize(torch.randn(2, 3, 3, dtype=torch.float64), dim=-1).requires_grad_()
    assert enc(d).shape == (2, 3, out_dim)
    assert torch.autograd.gradcheck(enc, (d,))
    with pytest.raises(ValueError, match="degree"):
        SphericalHarmonicsEncoding(5)
