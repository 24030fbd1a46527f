"""The shared reference check must be able to fail: values, gradients, and detached outputs."""

import pytest
import torch
from helpers import assert_matches_reference


def test_equal_ops_pass():
    x = torch.randn(3, 4, requires_grad=True)
    assert_matches_reference(lambda x: x * 2, lambda x: 2 * x, x)


def test_a_detached_output_fails():
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(AssertionError, match="does not carry a gradient"):
        assert_matches_reference(lambda x: (x * 2).detach(), lambda x: x * 2, x)
    with pytest.raises(AssertionError, match="does not carry a gradient"):
        assert_matches_reference(lambda x: x * 2, lambda x: (x * 2).detach(), x)


def test_wrong_values_and_wrong_gradients_fail():
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(AssertionError, match="output 0"):
        assert_matches_reference(lambda x: x * 2, lambda x: x * 2 + 1e-2, x)
    # same values, another gradient (the straight-through trick): caught by the gradients
    with pytest.raises(AssertionError, match="gradient of input 0"):
        assert_matches_reference(lambda x: x.round() + (x - x.detach()),
                                 lambda x: x.round() + 0 * x, x)


def test_shapes_and_integer_outputs_are_compared():
    x = torch.randn(3, 4)
    with pytest.raises(AssertionError, match="shape"):
        assert_matches_reference(lambda x: x, lambda x: x.T, x)
    with pytest.raises(AssertionError, match="differs"):
        assert_matches_reference(lambda x: x.argmax(1), lambda x: x.argmin(1), x)
