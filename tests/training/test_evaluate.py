"""The evaluator ranks real data far above noise and a collapsed generator."""

import numpy as np
import pytest

from training import data
from training.evaluate import Evaluator, frechet_distance, to_unit_range


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator()


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift() -> None:
    features = np.random.default_rng(0).standard_normal((2000, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + 3.0
    assert frechet_distance(features, shifted) == pytest.approx(8 * 9.0, rel=1e-3)


def test_real_images_score_far_better_than_noise_and_a_repeated_image(evaluator) -> None:
    train = data.load("fashion-mnist", "train")
    pick = np.random.default_rng(1).permutation(len(train))[:3000]
    real = evaluator.score(to_unit_range(train.images[pick]), train.labels[pick])
    noise = evaluator.score(
        np.random.default_rng(2).uniform(-1, 1, (3000, 1, 28, 28)).astype(np.float32)
    )
    repeated = evaluator.score(np.repeat(to_unit_range(train.images[pick[:1]]), 3000, axis=0))

    assert real.ratio < 3  # ~1 up to sampling noise (3,000 rather than 10,000 images)
    assert noise.ratio > 20 * real.ratio
    assert repeated.ratio > 20 * real.ratio
    assert real.class_accuracy > 0.9  # the classifier itself is good
    assert real.diversity_ok and 0.8 < real.diversity < 1.2
    assert not repeated.diversity_ok and repeated.diversity < 0.05
