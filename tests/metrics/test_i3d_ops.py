"""I3D's SAME pooling and convolutions, as computed for speed, equal the plain padded ops value for value."""
import pytest
import torch
import torch.nn.functional as F

from lfdm.metrics.i3d import Unit3D, max_pool_same, pad_same


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 3, 9, 17, 17), (3, 3, 3), (1, 1, 1)),        # the inception modules' branch pool
    ((1, 4, 8, 15, 16), (1, 3, 3), (1, 2, 2)),        # the stem's pools, odd and even sizes
    ((1, 4, 9, 14, 15), (3, 3, 3), (2, 2, 2)),
    ((1, 2, 4, 7, 6), (2, 2, 2), (2, 2, 2)),
])
def test_axis_by_axis_max_pool_equals_max_pool3d(shape, kernel, stride):
    x = torch.randn(shape)
    expected = F.max_pool3d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)
    assert torch.equal(max_pool_same(x, kernel, stride), expected)


@pytest.mark.parametrize("kernel, stride", [((3, 3, 3), (1, 1, 1)), ((1, 1, 1), (1, 1, 1)), ((7, 7, 7), (2, 2, 2))])
def test_unit_equals_convolution_of_the_padded_input(kernel, stride):
    torch.manual_seed(0)
    unit = Unit3D(3, 5, kernel, stride).eval()
    x = torch.randn(1, 3, 10, 12, 12)
    expected = F.relu(unit.bn(unit.conv3d(pad_same(x, kernel, stride))))
    with torch.no_grad():
        assert torch.allclose(unit(x), expected, atol=1e-6, rtol=0)
