"""Augmentation: seeded, the same change for every frame of a sequence, shadows darken, slices match the whole."""

import numpy as np
import torch

from drive.train.augment import Augmenter, batch_generator, slice_params


def flat_frames(b=3, t=4, value=120):
    return torch.full((b, t, 78, 200, 3), value, dtype=torch.uint8)


def textured_frames(b=3, t=4, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(30, 220, size=(b, t, 78, 200, 3), dtype=np.uint8))


def test_same_seed_same_result_other_seed_other_result():
    aug = Augmenter(hue=0.05)
    x = textured_frames()
    a = aug(x, batch_generator(0, 1, 2))
    b = aug(x, batch_generator(0, 1, 2))
    c = aug(x, batch_generator(0, 1, 3))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_every_frame_of_a_sequence_gets_the_same_change():
    aug = Augmenter(brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0, shadow_prob=1.0)
    x = textured_frames(b=4, t=5)
    x[:, :] = x[:, :1]  # identical frames within each sequence
    y = aug(x, batch_generator(3, 0, 0))
    assert all(torch.equal(y[i, 0], y[i, k]) for i in range(4) for k in range(5))
    assert not torch.equal(y[0, 0], y[1, 0])  # but sequences differ


def test_shadow_darkens_a_region_spanning_the_height():
    aug = Augmenter(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, shadow_prob=1.0, shadow_darkness=0.6)
    x = flat_frames(b=6, t=1, value=200)
    params = aug.sample(6, 78, 200, batch_generator(0, 0, 0))
    y = aug.apply(x, params)
    for i in range(6):
        dark = y[i, 0, :, :, 0] < 200
        assert dark.any() and not dark.all()
        factor = float(params["shadow_factor"][i])
        assert 0.4 - 1e-6 <= factor <= 0.9
        assert torch.all(y[i, 0][dark] == round(200 * factor))
        assert dark[0].any() or dark[-1].any()  # the quadrilateral touches the top or bottom edge


def test_a_slice_of_the_batch_is_augmented_as_in_the_whole_batch():
    aug = Augmenter(hue=0.05)
    x = textured_frames(b=4, t=3)
    params = aug.sample(4, 78, 200, batch_generator(5, 2, 7))
    whole = aug.apply(x, params)
    part = aug.apply(x[2:4], slice_params(params, 2, 4))
    assert torch.equal(whole[2:4], part)
