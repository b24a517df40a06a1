"""fastnerf.fields.mlp.MLP: the CPU path that pads odd input widths gives the plain network's
values and gradients, and the module's parameters and state_dict keys are unchanged."""

import torch
import torch.nn.functional as F

from fastnerf.fields.mlp import MLP


def _plain(mlp: MLP, x: torch.Tensor) -> torch.Tensor:  # the network written out, no padding
    h = x
    for index, layer in enumerate(mlp.hidden):
        if index in mlp.skips:
            h = torch.cat([h, x], dim=-1)
        h = torch.relu(F.linear(h, layer.weight, layer.bias))
    return F.linear(h, mlp.output.weight, mlp.output.bias)


def test_odd_widths_match_the_plain_network_with_gradients():
    torch.manual_seed(0)
    # 31 -> 64 -> 64 -> 3 (the teacher's colour head, padded to 32) and a skip layer of odd width.
    for mlp in (MLP(31, 3, width=64, n_hidden=2, bias=False), MLP(13, 5, width=24, n_hidden=3, skips=(2,))):
        mlp = mlp.double()
        x = torch.randn(37, mlp.in_dim, dtype=torch.float64, requires_grad=True)
        x_plain = x.detach().clone().requires_grad_()
        out, want = mlp(x), _plain(mlp, x_plain)
        torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
        cotangent = torch.randn_like(out)
        params = list(mlp.parameters())
        got = torch.autograd.grad(out, [x, *params], cotangent)
        expected = torch.autograd.grad(want, [x_plain, *params], cotangent)
        for a, e in zip(got, expected):
            assert a.shape == e.shape
            torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


def test_parameters_and_state_dict_keys_are_those_of_the_plain_layers():
    mlp = MLP(31, 16, width=64, n_hidden=1, bias=False)
    assert list(mlp.state_dict()) == ["hidden.0.weight", "output.weight"]
    assert mlp.hidden[0].weight.shape == (64, 31)  # no padding stored: checkpoints load as before
    assert mlp(torch.randn(4, 31)).shape == (4, 16)
