"""Per-scale mode coverage and conditional accuracy on hand-made predictions."""

from __future__ import annotations

import math

import pytest
import torch

from mgbench.errors import UsageError
from mgbench.metrics.modes import conditional_accuracy, joint_labels, mode_coverage

CLASSES = {"coarse": 4, "fine": 3}


def one_hot_logits(labels: torch.Tensor, k: int) -> torch.Tensor:
    return 10.0 * torch.nn.functional.one_hot(labels, k).float()


def test_a_single_class_sampler_covers_one_mode_with_kl_log_k() -> None:
    coarse = torch.full((600,), 2)
    fine = torch.arange(600) % 3
    out = mode_coverage({"coarse": one_hot_logits(coarse, 4), "fine": one_hot_logits(fine, 3)}, CLASSES,
                        joint=("coarse", "fine"))
    assert out["modes_coarse"] == 1
    assert out["kl_coarse"] == pytest.approx(math.log(4))
    assert out["modes_fine"] == 3
    assert out["kl_fine"] == pytest.approx(0.0, abs=1e-12)
    assert out["modes_joint"] == 3  # coarse 2 with each fine texture
    assert out["kl_joint"] == pytest.approx(math.log(12) - math.log(3))


def test_balanced_predictions_cover_everything_with_zero_kl() -> None:
    n = 12 * 50
    joint = torch.arange(n) % 12
    heads = {"coarse": joint // 3, "fine": joint % 3}  # labels work as well as logits
    out = mode_coverage(heads, CLASSES, joint=("coarse", "fine"))
    assert out == pytest.approx(
        {"modes_coarse": 4, "kl_coarse": 0.0, "modes_fine": 3, "kl_fine": 0.0, "modes_joint": 12, "kl_joint": 0.0}
    )


def test_kl_matches_hand_computation() -> None:
    # Histogram (3, 1, 0, 0) of 4 classes: KL = ¾ log(¾·4) + ¼ log(¼·4) = ¾ log 3.
    out = mode_coverage({"coarse": torch.tensor([0, 0, 0, 1])}, {"coarse": 4}, min_share=0)
    assert out == pytest.approx({"modes_coarse": 2, "kl_coarse": 0.75 * math.log(3)})
    assert "modes_joint" not in out


def test_classifier_errors_do_not_fake_modes_but_the_classic_count_is_fooled() -> None:
    # A collapsed sampler (class 0) seen through a classifier with 3 % errors spread evenly.
    preds = torch.zeros(1000, dtype=torch.long)
    preds[:30] = torch.arange(30) % 3 + 1  # 10 errors on each other class
    assert mode_coverage({"coarse": preds}, {"coarse": 4})["modes_coarse"] == 1
    assert mode_coverage({"coarse": preds}, {"coarse": 4}, min_share=0)["modes_coarse"] == 4


def test_threshold_is_a_share_of_the_uniform_expectation() -> None:
    # N = 400, K = 4: expected share 100, threshold 10% of it = 10 samples.
    preds = torch.cat([torch.zeros(381), torch.ones(10), torch.full((9,), 2)]).long()
    assert mode_coverage({"coarse": preds}, {"coarse": 4})["modes_coarse"] == 2
    assert mode_coverage({"coarse": preds}, {"coarse": 4}, min_count=20, min_share=0)["modes_coarse"] == 1


def test_joint_label_is_c_times_f_plus_f() -> None:
    assert joint_labels([torch.tensor([0, 1, 3]), torch.tensor([2, 0, 1])], [4, 3]).tolist() == [2, 3, 10]


def test_conditional_accuracy() -> None:
    requested = torch.tensor([0, 1, 2, 3])
    logits = one_hot_logits(torch.tensor([0, 1, 2, 0]), 4)
    assert conditional_accuracy(logits, requested) == 0.75
    assert conditional_accuracy(torch.tensor([0, 1, 2, 3]), requested) == 1.0


def test_bad_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        mode_coverage({"coarse": torch.zeros(5, 3)}, CLASSES)  # 3 logits, 4 classes
    with pytest.raises(UsageError):
        mode_coverage({"coarse": torch.tensor([0, 7])}, CLASSES)  # class out of range
    with pytest.raises(UsageError):
        mode_coverage({"shape": torch.tensor([0])}, CLASSES)  # unknown head
    with pytest.raises(UsageError):
        conditional_accuracy(torch.tensor([0, 1]), torch.tensor([0]))
