"""Shared fixtures: the real data (``MINIDENSE_DATA``) and a tiny network for fast training tests."""

import os
from pathlib import Path

import pytest
import torch

import minidense

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root():
    """The real Fashion-MNIST files; tests that need them skip where ``MINIDENSE_DATA`` is unset."""
    root = os.environ.get("MINIDENSE_DATA")
    if not root or not (Path(root) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip("MINIDENSE_DATA does not point at the Fashion-MNIST files (.ci/run sets it)")
    return Path(root)


def tiny_densenet(seed=0):
    """A two-block book DenseNet (growth rate 8) for 32x32 inputs: fast enough to train in tests."""
    torch.manual_seed(seed)
    return minidense.densenet(growth_rate=8, convs_per_block=(2, 2))


@pytest.fixture
def tiny_data(data_root):
    """512 training and 256 test images at 32x32, batch 64."""
    return minidense.load_fashion_mnist(64, resize=32, root=data_root, device="cpu", num_train=512,
                                        num_test=256, seed=0)
