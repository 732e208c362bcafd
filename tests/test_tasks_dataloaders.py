"""The DataLoader exercise: the reference passes, the stub and plausible wrong answers fail with teaching messages."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from workshop.data.loaders import make_train_val_loaders
from workshop.env import data_loader_kwargs
from workshop.tasks import get_exercise
from workshop.tasks.dataloaders import NumberedDataset

EX = get_exercise("make_train_val_loaders")


def right(train_ds, val_ds, batch_size):
    return (
        DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True),
        DataLoader(val_ds, batch_size=batch_size, shuffle=False),
    )


def shuffled_validation(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True), DataLoader(val_ds, batch_size=batch_size, shuffle=True)


def train_not_shuffled(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, batch_size=batch_size, drop_last=True), DataLoader(val_ds, batch_size=batch_size)


def batch_size_hard_coded(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, batch_size=8, shuffle=True, drop_last=True), DataLoader(val_ds, batch_size=8)


def batch_size_default(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, shuffle=True, drop_last=True), DataLoader(val_ds)


def no_drop_last(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, batch_size=batch_size, shuffle=True), DataLoader(val_ds, batch_size=batch_size)


def drop_last_on_validation(train_ds, val_ds, batch_size):
    return (
        DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True),
        DataLoader(val_ds, batch_size=batch_size, drop_last=True),
    )


def swapped(train_ds, val_ds, batch_size):
    return right(val_ds, train_ds, batch_size)


def only_train(train_ds, val_ds, batch_size):
    return DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True)


def test_reference_passes() -> None:
    verdict = EX.run_checks(EX.reference)
    assert verdict.passed, verdict.message


def test_the_plain_answer_passes() -> None:
    verdict = EX.run_checks(right)
    assert verdict.passed, verdict.message


def test_untouched_stub_is_not_implemented() -> None:
    namespace: dict = {}
    exec(EX.stub, namespace)
    verdict = EX.run_checks(namespace["make_train_val_loaders"])
    assert not verdict.passed and "not implemented yet" in verdict.message


@pytest.mark.parametrize("n", [0, 4])
def test_hint_out_of_range_raises(n: int) -> None:
    with pytest.raises(ValueError):
        EX.hint(n)


@pytest.mark.parametrize(
    "wrong, check, words",
    [
        (shuffled_validation, "validation in order, every item once", ["validation loader shuffles", "[0, 1, 2, 3, 4, 5, 6]"]),
        (train_not_shuffled, "training shuffled", ["does not shuffle", "[0, 1, 2, 3, 4, 5, 6, 7]"]),
        (batch_size_hard_coded, "batch shapes", ["a batch of 8", "batch_size argument was not used"]),
        (batch_size_default, "batch shapes", ["a batch of 1", "batch_size argument was not used"]),
        (no_drop_last, "training drops the last incomplete batch", ["[4, 4, 2]", "incomplete last batch was kept"]),
        (drop_last_on_validation, "validation in order, every item once", ["never scored"]),
        (swapped, "batch shapes", ["reads val_ds", "loaders are swapped"]),
        (only_train, "batch shapes", ["a pair (train_loader, val_loader)", "DataLoader"]),
    ],
)
def test_wrong_answers_fail_with_a_reason(wrong, check: str, words: list[str]) -> None:
    verdict = EX.run_checks(wrong)
    assert not verdict.passed
    assert verdict.failed_check == check, verdict.message
    for word in words:
        assert word in verdict.message, verdict.message


def test_verdicts_are_deterministic() -> None:
    assert EX.run_checks(shuffled_validation).message == EX.run_checks(shuffled_validation).message


def test_reference_seed_repeats_the_order_and_keeps_small_train_sets() -> None:
    def order(seed: int) -> list[int]:
        train, _ = make_train_val_loaders(NumberedDataset(12), NumberedDataset(3), 4, seed=seed)
        return [i for batch in train for i in batch["mask"][:, 0, 0].tolist()]

    assert order(3) == order(3)
    assert order(3) != order(4)
    small, _ = make_train_val_loaders(NumberedDataset(3), NumberedDataset(3), 4)
    assert [len(b["mask"]) for b in small] == [3]  # no batch would be left with drop_last=True


def test_reference_pins_memory_only_for_cuda() -> None:
    train, val = make_train_val_loaders(NumberedDataset(4), NumberedDataset(4), 2, device=torch.device("cpu"))
    assert not train.pin_memory and not val.pin_memory
    on_cuda = data_loader_kwargs(torch.device("cuda"), 2)
    assert {k: on_cuda[k] for k in ("num_workers", "pin_memory", "persistent_workers")} == {
        "num_workers": 2, "pin_memory": True, "persistent_workers": True}
    assert callable(on_cuda["worker_init_fn"]), "workers are seeded per worker and epoch (issue 21)"
