"""The evaluator ranks real data far above noise and a collapsed generator, measures class
coverage, and picks the classifier that matches a model's data set and image shape."""

import numpy as np
import pytest

from harness import MODELS_DIR
from service.card import MODEL_FILE, ImageShape, ModelCard, sha256_of
from training import data
from training.classifier_card import (
    ClassifierCard,
    NoClassifierError,
    dataset_slug,
    find_classifier,
    train_command,
)
from training.evaluate import (
    CLASSIFIER_DIR,
    Evaluator,
    coverage_tvd,
    frechet_distance,
    to_unit_range,
    uniform_coverage_tvd,
)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator()


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift() -> None:
    features = np.random.default_rng(0).standard_normal((2000, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + 3.0
    assert frechet_distance(features, shifted) == pytest.approx(8 * 9.0, rel=1e-3)


def test_uniform_coverage_noise_matches_the_multinomial_and_shrinks_with_samples() -> None:
    """E|p_k - 1/K| = sqrt(2/pi) * sigma for the normal limit, sigma = sqrt(p(1-p)/n)."""
    mean, std = uniform_coverage_tvd(10_000, 10)
    expected = 0.5 * 10 * np.sqrt(2 / np.pi) * np.sqrt(0.1 * 0.9 / 10_000)
    assert mean == pytest.approx(expected, rel=0.1) and 0 < std < mean
    assert uniform_coverage_tvd(40_000, 10)[0] == pytest.approx(mean / 2, rel=0.1)


def test_coverage_tvd_is_zero_for_uniform_and_one_minus_one_over_k_for_one_class() -> None:
    assert coverage_tvd(np.arange(1000) % 10, 10) == pytest.approx(0.0)
    assert coverage_tvd(np.full(500, 3), 10) == pytest.approx(0.9)
    # Two of four classes, half each: |0.5 - 0.25| * 2 / 2 = 0.5
    assert coverage_tvd(np.array([0, 1] * 50), 4) == pytest.approx(0.5)


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
    # Coverage: real images spread over the classes, one repeated image sits in one class.
    assert real.coverage_tvd < 0.05
    assert repeated.coverage_tvd == pytest.approx(0.9)
    assert evaluator.real_coverage_tvd < 0.05
    metrics = repeated.metrics()
    assert metrics.coverage_tvd == pytest.approx(0.9) and metrics.class_accuracy is None
    assert real.metrics().coverage_tvd == round(real.coverage_tvd, 4)


def test_shipped_classifier_card_is_typed_and_gives_the_floor_in_the_cards(evaluator) -> None:
    card = ClassifierCard.load(CLASSIFIER_DIR)
    assert card.sha256 == sha256_of(CLASSIFIER_DIR / MODEL_FILE)
    assert card.dataset == "fashion-mnist" and card.image == ImageShape(
        channels=1, height=28, width=28
    )
    assert card.class_names == data.FASHION_MNIST_CLASSES and card.feature_dim == 128
    assert card.train_images == 60_000 and card.test_images == 10_000
    # The floor comes out as it did before classifiers became per data set.
    for name in ("fashion-cgan", "fashion-dcgan"):
        metrics = ModelCard.load(MODELS_DIR / name).metrics
        assert metrics is not None and evaluator.floor == pytest.approx(metrics.fd_floor, abs=1e-4)


def test_the_classifier_is_picked_by_data_set_and_shape_or_the_error_gives_the_command(
    tmp_path,
) -> None:
    cgan = ModelCard.load(MODELS_DIR / "fashion-cgan")
    assert find_classifier(cgan) == CLASSIFIER_DIR
    rgb = cgan.model_copy(update={"image": ImageShape(channels=3, height=32, width=32)})
    with pytest.raises(NoClassifierError, match="fashion-mnist"):
        find_classifier(rgb)
    folder = cgan.model_copy(update={"dataset": "folder:data/my shapes"})
    with pytest.raises(NoClassifierError) as missing:
        find_classifier(folder, tmp_path)
    expected = train_command("folder:data/my shapes", 28, root=tmp_path)
    assert str(missing.value).endswith(expected)
    assert expected == (
        "python -m training.classifier --dataset 'folder:data/my shapes' --image-size 28 "
        f"--out {tmp_path}/my-shapes-28-classifier"
    )
    assert dataset_slug("fashion-mnist", 28) == "fashion"
    assert train_command("cifar10", 32, "data") == (
        "python -m training.classifier --dataset cifar10 --data-root data"
    )
