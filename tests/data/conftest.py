import os

import numpy as np
import pytest


def write_image(path, size=(20, 30), colour=(200, 30, 30), fmt=None):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.zeros((size[0], size[1], 3), np.uint8)
    array[...] = colour
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.fixture
def make_image():
    return write_image
