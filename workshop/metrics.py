"""Segmentation metrics: from logits to labels, a confusion matrix, then IoU, Dice and friends.

Stage in the data path::

    model -> logits (N,C,H,W) -> labels (N,H,W) -> confusion matrix (C,C) -> IoU, Dice, ...

Every dataset-level metric here is read off one confusion matrix, counted with ``torch.bincount``
(the same recipe as torchvision's ``references/segmentation``). Rows are the true class, columns the
predicted class, so ``cm[t, p]`` counts the pixels of class ``t`` predicted as ``p``. For class ``c``::

    TP = cm[c, c]     FP = column sum - TP     FN = row sum - TP
    IoU  = TP / (TP + FP + FN)
    Dice = 2 TP / (2 TP + FP + FN)          (equal to the F1 score of class c)

Pixels whose target equals ``ignore_index`` (default 255, e.g. object borders or padding) are left out
of every count.

Empty masks, the two rules:

* **Dataset level** (confusion matrix, :class:`SegmentationMetrics`): a class that appears in neither
  the prediction nor the target has ``TP + FP + FN == 0``, so its IoU and Dice are undefined and
  returned as ``NaN``. Means over classes use ``nanmean``, so such a class is left out of the mean
  instead of counting as 0 or 1.
* **Per image** (:func:`binary_iou`, :func:`binary_dice`): when both the prediction and the target are
  empty for the foreground, the image scores 1.0 (the model agreed perfectly that there is nothing
  there); when exactly one of them is empty it scores 0.0.

Metric values are ``float64`` tensors (counts are ``int64``), so large data sets stay exact; on
Apple's MPS, which has no float64, the functions that divide on the device give ``float32``.
Counting runs on the device of the input. On a GPU, :class:`SegmentationMetrics` never reads a
value back during ``update`` (a read waits for the GPU to finish: a host-device synchronisation),
so a training step is not slowed down; the counts are read once, in ``compute()``.

Example:
    >>> import torch
    >>> pred = torch.tensor([[[0, 1], [1, 1]]])
    >>> target = torch.tensor([[[0, 1], [0, 255]]])
    >>> confusion_matrix(pred, target, num_classes=2)
    tensor([[1, 1],
            [0, 1]])
    >>> iou_from_confusion(confusion_matrix(pred, target, num_classes=2))
    tensor([0.5000, 0.5000], dtype=torch.float64)

Taught in: notebooks/06_train_val_functions.ipynb (per-class reports in notebooks/09_multiclass.ipynb)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SegmentationMetrics",
    "binary_dice",
    "binary_iou",
    "confusion_matrix",
    "dice_from_confusion",
    "iou_from_confusion",
    "iou_score",
    "logits_to_labels",
    "per_class_accuracy",
    "pixel_accuracy",
    "precision_recall_f1",
]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _as_label_tensor(x: Any, what: str) -> Tensor:
    """Return ``x`` as an int64 tensor of class ids; numpy arrays and bool tensors are accepted."""
    x = torch.as_tensor(x)
    if x.is_floating_point() or x.is_complex():
        raise ValueError(
            f"{what} must hold integer class ids (int64), got dtype {x.dtype}. "
            "Turn logits into labels with logits_to_labels(), or convert a mask with mask.long()."
        )
    return x.long()


def has_float64(device: torch.device) -> bool:
    """Whether ``device`` computes in float64: CPU and CUDA do, Apple's MPS does not."""
    return device.type != "mps"


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` in float64, ``NaN`` where ``den == 0`` (``den`` holds pixel counts).

    On a device without float64 (Apple's MPS) the division is float32, on the same device: no
    copy to the host, and a relative error of about 1e-7 on the ratio.
    """
    dtype = torch.float64 if has_float64(num.device) else torch.float32
    num = num.to(dtype)
    den = den.to(dtype)
    nan = torch.full_like(num, float("nan"))
    # clamping keeps 0/0 out of the untaken branch; counts >= 1 are unchanged by it
    return torch.where(den > 0, num / den.clamp_min(1), nan)


def reads_are_free(where: Tensor | torch.device) -> bool:
    """True when reading values of a tensor (or of any tensor on a device) costs no host-device synchronisation.

    On a GPU (or MPS) ``bool(t)``, ``t.item()``, ``t[mask]`` or ``torch.bincount(t)`` make Python wait
    for the device to finish its queue. The per-step code of the losses, the metrics and the engine
    checks values at once where this returns True, and in a synchronisation-free way elsewhere.
    """
    device = where.device if isinstance(where, Tensor) else torch.device(where)
    return device.type == "cpu"


def _confusion_counts(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None) -> Tensor:
    """Confusion counts without any host-device synchronisation: ``(C * C + 1,)`` int64.

    The first ``C * C`` entries are the matrix (row-major, ``target * C + pred``); the last counts
    the valid pixels whose target or prediction lies outside ``[0, C)``. Ignored pixels go to a
    discarded bin. ``scatter_add_`` into a fixed number of bins replaces boolean-mask indexing
    (``t[keep]``, whose result size the host must learn) and ``torch.bincount`` (which reads the
    largest value back to size its output).

    Shape:
        - pred, target: any shape, the same
        - output: (C * C + 1,)
    """
    pred = pred.reshape(-1)
    target = target.reshape(-1)
    k = num_classes
    bad = (target < 0) | (target >= k) | (pred < 0) | (pred >= k)
    index = torch.where(bad, k * k, target * k + pred)
    if ignore_index is not None:
        index = torch.where(target == ignore_index, k * k + 1, index)
    counts = torch.zeros(k * k + 2, dtype=torch.int64, device=index.device)
    counts.scatter_add_(0, index, torch.ones_like(index))
    return counts[: k * k + 1]


def _tp_fp_fn(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """True positives, false positives and false negatives per class of a confusion matrix."""
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square (C, C), got shape {tuple(cm.shape)}")
    tp = cm.diagonal()
    fp = cm.sum(dim=0) - tp
    fn = cm.sum(dim=1) - tp
    return tp, fp, fn


def _squeeze_channel(target: Tensor) -> Tensor:
    """Accept a (N,1,H,W) mask as (N,H,W)."""
    if target.ndim == 4 and target.shape[1] == 1:
        return target[:, 0]
    return target


# ----------------------------------------------------------------------------------------------
# logits -> labels -> confusion matrix
# ----------------------------------------------------------------------------------------------
def logits_to_labels(logits: Tensor, threshold: float = 0.5) -> Tensor:
    """Turn model logits into one class id per pixel.

    One output channel means a binary model: a pixel is foreground (1) when its sigmoid probability
    is above ``threshold``. Several channels mean a multiclass model: the class with the largest
    logit wins (argmax; softmax would not change the winner).

    Args:
        logits: raw model output, before sigmoid/softmax.
        threshold: probability above which a binary pixel is foreground. Ignored when C > 1.

    Returns:
        Class ids, int64.

    Shape:
        - logits: (N, C, H, W)
        - output: (N, H, W)

    Example:
        >>> logits_to_labels(torch.tensor([[[[-2.0, 3.0]]]]))
        tensor([[[0, 1]]])

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    if not isinstance(logits, Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a (N, C, H, W) tensor, got {shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a probability and must lie in [0, 1], got {threshold}")
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0].detach()) > threshold).long()
    return logits.detach().argmax(dim=1)


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = 255
) -> Tensor:
    """Count (true class, predicted class) pairs over all pixels with one ``torch.bincount``.

    Each valid pixel gets the index ``target * num_classes + pred``; counting those indices and
    reshaping to (C, C) gives the matrix in one pass, on the device of the input.

    Args:
        pred: predicted class ids (e.g. from :func:`logits_to_labels`).
        target: true class ids; pixels equal to ``ignore_index`` are dropped.
        num_classes: number of classes C (a binary task has 2: background and foreground).
        ignore_index: target value to skip, or None to use every pixel.

    Returns:
        int64 matrix, rows = true class, columns = predicted class.

    Raises:
        ValueError: shapes differ, or a class id outside ``[0, num_classes)`` is found
            (the message lists the offending values).

    Shape:
        - pred: (N, H, W) (any shape works, as long as it matches target)
        - target: same shape as pred
        - output: (C, C)

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), num_classes=2)
        tensor([[1, 1],
                [0, 1]])

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    pred = _as_label_tensor(pred, "pred")
    target = _as_label_tensor(target, "target").to(pred.device)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if not reads_are_free(pred):  # a GPU: count without synchronising, then read the bad-value bin once
        counts = _confusion_counts(pred, target, num_classes, ignore_index)
        if int(counts[-1]) == 0:
            return counts[:-1].reshape(num_classes, num_classes)
        return _confusion_on_host(pred.cpu(), target.cpu(), num_classes, ignore_index)  # raises, naming the values
    return _confusion_on_host(pred, target, num_classes, ignore_index)


def _confusion_on_host(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None) -> Tensor:
    """The body of :func:`confusion_matrix` where reading values is free: check every id, then bincount."""
    pred = pred.reshape(-1)
    target = target.reshape(-1)
    if ignore_index is not None:
        keep = target != ignore_index
        pred = pred[keep]
        target = target[keep]
    for name, values in (("target", target), ("pred", pred)):
        bad = (values < 0) | (values >= num_classes)
        if bool(bad.any()):
            offending = sorted(torch.unique(values[bad]).tolist())
            allowed = f"the classes 0..{num_classes - 1}"
            if name == "target" and ignore_index is not None:
                allowed += f" or the ignore_index {ignore_index}"
            raise ValueError(
                f"{name} holds values {offending}, expected {allowed}; "
                "check num_classes and the mask values"
            )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


# ----------------------------------------------------------------------------------------------
# confusion matrix -> metrics
# ----------------------------------------------------------------------------------------------
def iou_from_confusion(cm: Tensor) -> Tensor:
    """Intersection over union (Jaccard index) per class: ``TP / (TP + FP + FN)``.

    Args:
        cm: confusion matrix from :func:`confusion_matrix`.

    Returns:
        IoU per class in [0, 1], float64; NaN for a class absent from prediction and target.

    Shape:
        - cm: (C, C)
        - output: (C,)

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    tp, fp, fn = _tp_fp_fn(cm)
    return _safe_divide(tp, tp + fp + fn)


def dice_from_confusion(cm: Tensor) -> Tensor:
    """Dice coefficient per class: ``2 TP / (2 TP + FP + FN)``.

    Dice and IoU rank models the same way: ``Dice = 2 IoU / (1 + IoU)``, so Dice >= IoU.

    Args:
        cm: confusion matrix from :func:`confusion_matrix`.

    Returns:
        Dice per class in [0, 1], float64; NaN for a class absent from prediction and target.

    Shape:
        - cm: (C, C)
        - output: (C,)

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    tp, fp, fn = _tp_fp_fn(cm)
    return _safe_divide(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1(cm: Tensor) -> dict[str, Tensor]:
    """Precision, recall and F1 per class.

    ``precision = TP / (TP + FP)`` (of the pixels predicted as c, how many are c),
    ``recall = TP / (TP + FN)`` (of the pixels that are c, how many were found),
    ``f1 = 2 TP / (2 TP + FP + FN)`` (harmonic mean of the two; the same number as Dice).
    Precision is NaN for a class never predicted, recall NaN for a class never present.

    Args:
        cm: confusion matrix from :func:`confusion_matrix`.

    Returns:
        ``{"precision": ..., "recall": ..., "f1": ...}``, each float64.

    Shape:
        - cm: (C, C)
        - each output: (C,)

    Taught in: notebooks/09_multiclass.ipynb
    """
    tp, fp, fn = _tp_fp_fn(cm)
    return {
        "precision": _safe_divide(tp, tp + fp),
        "recall": _safe_divide(tp, tp + fn),
        "f1": _safe_divide(2 * tp, 2 * tp + fp + fn),
    }


def pixel_accuracy(cm: Tensor) -> Tensor:
    """Fraction of (non-ignored) pixels whose class was predicted correctly.

    Beware: with 95 % background, predicting "background everywhere" scores 0.95. That is why
    segmentation reports IoU/Dice.

    Args:
        cm: confusion matrix from :func:`confusion_matrix`.

    Returns:
        Scalar float64 tensor; NaN when the matrix is empty.

    Shape:
        - cm: (C, C)
        - output: () scalar

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    tp, _, _ = _tp_fp_fn(cm)
    return _safe_divide(tp.sum(), cm.sum())


def per_class_accuracy(cm: Tensor) -> Tensor:
    """Accuracy within each true class: ``TP / (pixels of class c)``.

    This is the "class accuracy" of the segmentation literature (and of torchvision's references);
    its mean over classes is the "mean accuracy". It equals recall.

    Args:
        cm: confusion matrix from :func:`confusion_matrix`.

    Returns:
        float64 per class; NaN for a class with no pixels in the target.

    Shape:
        - cm: (C, C)
        - output: (C,)

    Taught in: notebooks/09_multiclass.ipynb
    """
    tp, _, fn = _tp_fp_fn(cm)
    return _safe_divide(tp, tp + fn)


# ----------------------------------------------------------------------------------------------
# per-image binary scores
# ----------------------------------------------------------------------------------------------
def _binary_counts(
    pred: Tensor, target: Tensor, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image intersection, predicted-foreground and true-foreground pixel counts."""
    pred = _as_label_tensor(pred, "pred")
    target = _as_label_tensor(target, "target").to(pred.device)
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            "pred and target must both be (N, H, W) masks of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    for name, values in (("target", target[valid]), ("pred", pred[valid])):
        bad = (values != 0) & (values != 1)
        if bool(bad.any()):
            offending = sorted(torch.unique(values[bad]).tolist())
            raise ValueError(
                f"{name} of a binary metric must hold 0 (background) and 1 (foreground)"
                f"{' or the ignore_index' if name == 'target' else ''}, found {offending}"
            )
    p = (pred == 1) & valid
    t = (target == 1) & valid
    inter = (p & t).flatten(1).sum(dim=1)
    return inter, p.flatten(1).sum(dim=1), t.flatten(1).sum(dim=1)


def binary_iou(pred: Tensor, target: Tensor, ignore_index: int | None = 255) -> Tensor:
    """IoU of the foreground, one value per image.

    Both prediction and target empty -> 1.0 (perfect agreement); exactly one empty -> 0.0.
    Pixels whose target is ``ignore_index`` are left out.

    Args:
        pred: predicted mask, 0 = background, 1 = foreground.
        target: true mask, values 0, 1 or ``ignore_index``.
        ignore_index: target value to skip, or None.

    Returns:
        float64 IoU per image in [0, 1].

    Shape:
        - pred: (N, H, W)
        - target: (N, H, W)
        - output: (N,)

    Example:
        >>> binary_iou(torch.tensor([[[1, 1, 0]]]), torch.tensor([[[1, 0, 0]]]))
        tensor([0.5000], dtype=torch.float64)

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    inter, sum_p, sum_t = _binary_counts(pred, target, ignore_index)
    union = sum_p + sum_t - inter
    iou = _safe_divide(inter, union)
    return torch.where(union == 0, torch.ones_like(iou), iou)


def binary_dice(pred: Tensor, target: Tensor, ignore_index: int | None = 255) -> Tensor:
    """Dice of the foreground, one value per image: ``2 |P ∩ T| / (|P| + |T|)``.

    Both prediction and target empty -> 1.0 (perfect agreement); exactly one empty -> 0.0.
    Pixels whose target is ``ignore_index`` are left out.

    Args:
        pred: predicted mask, 0 = background, 1 = foreground.
        target: true mask, values 0, 1 or ``ignore_index``.
        ignore_index: target value to skip, or None.

    Returns:
        float64 Dice per image in [0, 1].

    Shape:
        - pred: (N, H, W)
        - target: (N, H, W)
        - output: (N,)

    Example:
        >>> binary_dice(torch.tensor([[[1, 1, 0]]]), torch.tensor([[[1, 0, 0]]]))
        tensor([0.6667], dtype=torch.float64)

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    inter, sum_p, sum_t = _binary_counts(pred, target, ignore_index)
    total = sum_p + sum_t
    dice = _safe_divide(2 * inter, total)
    return torch.where(total == 0, torch.ones_like(dice), dice)


def iou_score(logits: Tensor, target: Tensor, threshold: float = 0.5, ignore_index: int | None = 255) -> float:
    """Foreground IoU of a binary model on one batch: ``|P ∩ T| / |P ∪ T|``.

    ``P`` is the set of pixels predicted as foreground (``sigmoid(logits) > threshold``: the
    threshold is a probability, so it is compared with probabilities, not with logits), ``T`` the
    pixels whose target is 1. Both are counted over the whole batch, every pixel of every image,
    which is the number :class:`SegmentationMetrics` gives for the same batch. When both sets are
    empty the model agreed that there is nothing to find, and the score is 1.0. Pixels whose target
    is ``ignore_index`` are left out.

    Args:
        logits: raw model output for one foreground channel (before the sigmoid).
        target: 0/1 class ids (or ``ignore_index``).
        threshold: probability above which a pixel is foreground.
        ignore_index: target value to skip, or None.

    Returns:
        IoU in [0, 1], a Python float.

    Shape:
        - logits: (N, 1, H, W)
        - target: (N, H, W) int64 (a (N, 1, H, W) mask works too)

    Example:
        >>> logits = torch.tensor([[[[3.0, 3.0, -3.0]]]])      # predicted: 1 1 0
        >>> iou_score(logits, torch.tensor([[[1, 0, 0]]]))     # 1 shared pixel / 2 in the union
        0.5

    Taught in: notebooks/06_train_val_functions.ipynb
    """
    probs = torch.sigmoid(logits.detach().float())
    pred = probs > threshold  # (N, 1, H, W) bool
    target = target.reshape(pred.shape)
    truth = target == 1
    if ignore_index is not None:
        valid = target != ignore_index
        pred = pred & valid
    intersection = (pred & truth).sum().item()
    union = (pred | truth).sum().item()
    return 1.0 if union == 0 else intersection / union


# ----------------------------------------------------------------------------------------------
# accumulator
# ----------------------------------------------------------------------------------------------
class SegmentationMetrics:
    """Accumulate a confusion matrix over batches, then report IoU, Dice and per-class numbers.

    Use one instance per evaluation pass: ``reset()``, ``update()`` for every batch, ``compute()``
    at the end. Counting first and dividing once at the end gives the dataset-level IoU, which is
    not the same as averaging per-batch IoUs.

    Args:
        num_classes: number of CLASSES. A binary task has 2 (background, foreground) even though
            its model outputs a single channel.
        ignore_index: target value to skip, or None.
        threshold: probability threshold for single-channel (binary) logits.
        class_names: one name per class for :meth:`report`; default ``class_0``, ``class_1``, ...

    Attributes:
        confusion: cumulative (C, C) int64 confusion matrix, rows = true, columns = predicted.

    Example:
        >>> metrics = SegmentationMetrics(num_classes=2)
        >>> logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])      # (N=1, C=1, H=2, W=2)
        >>> metrics.update(logits, torch.tensor([[[1, 0], [0, 0]]]))
        >>> metrics.compute()["iou"]
        0.5

    Taught in: notebooks/06_train_val_functions.ipynb (per-class report in 09_multiclass.ipynb)
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        threshold: float = 0.5,
        class_names: list[str] | None = None,
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes counts classes and must be >= 2, got {num_classes!r} "
                "(a binary task has 2 classes, background and foreground, even with 1 output channel)"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability and must lie in [0, 1], got {threshold}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"class_names needs one name per class ({num_classes}), got {len(class_names)}: "
                f"{list(class_names)}"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.threshold = threshold
        self.class_names = (
            list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
        )
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self._invalid: Tensor | None = None  # on a GPU: pixels with class ids outside [0, C), read in compute()

    def reset(self) -> None:
        """Forget everything counted so far (keeps the device of the matrix)."""
        self.confusion = torch.zeros_like(self.confusion)
        self._invalid = None

    @torch.no_grad()
    def update(self, logits_or_labels: Tensor, target: Tensor) -> None:
        """Add one batch to the confusion matrix.

        Args:
            logits_or_labels: model logits (float, (N,C,H,W)) or predicted class ids (int, (N,H,W)).
            target: true class ids; a (N,1,H,W) mask is accepted too.

        Shape:
            - logits_or_labels: (N, C, H, W) float or (N, H, W) int
            - target: (N, H, W)
        """
        pred = logits_or_labels
        if isinstance(pred, Tensor) and pred.is_floating_point():
            if pred.ndim != 4:
                raise ValueError(
                    "float input is read as logits and must be (N, C, H, W), got "
                    f"{tuple(pred.shape)}; pass labels as an int tensor (N, H, W)"
                )
            channels = pred.shape[1]
            if channels == 1 and self.num_classes != 2:
                raise ValueError(
                    f"1-channel (binary) logits need num_classes=2, this metric has {self.num_classes}"
                )
            if channels > 1 and channels != self.num_classes:
                raise ValueError(
                    f"logits have {channels} channels but num_classes is {self.num_classes}"
                )
            pred = logits_to_labels(pred, self.threshold)
        target = _squeeze_channel(torch.as_tensor(target))
        if isinstance(pred, Tensor) and not reads_are_free(pred):
            # a GPU: no value is read back here (no synchronisation per batch); compute() checks once
            pred = _as_label_tensor(pred, "pred")
            target = _as_label_tensor(target, "target").to(pred.device)
            if pred.shape != target.shape:
                raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
            counts = _confusion_counts(pred, target, self.num_classes, self.ignore_index)
            k = self.num_classes
            self.confusion = self.confusion.to(counts.device) + counts[:-1].reshape(k, k)
            self._invalid = counts[-1] if self._invalid is None else self._invalid + counts[-1]
            return
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.confusion = self.confusion.to(cm.device) + cm

    def _check_counted_values(self) -> None:
        """Raise, once, if a GPU batch held class ids outside ``[0, C)`` (counted without reading)."""
        if self._invalid is None:
            return
        bad = int(self._invalid)
        if bad:
            allowed = f"the classes 0..{self.num_classes - 1}"
            if self.ignore_index is not None:
                allowed += f" or the ignore_index {self.ignore_index}"
            raise ValueError(f"{bad} pixel(s) held values outside {allowed}; check num_classes and the mask values")

    def compute(self) -> dict[str, Any]:
        """Read the metrics off the accumulated confusion matrix.

        Returns:
            ``{"iou", "dice", "pixel_accuracy"}`` as floats and ``{"per_class_iou",
            "per_class_dice"}`` as lists of floats. For 2 classes "iou"/"dice" are the foreground
            (class 1) values; for more classes they are the nanmean over classes (classes absent
            from both prediction and target are left out). Values are NaN before any update.
            The matrix is read off the device once, and the values are computed on the CPU.

        Raises:
            ValueError: a batch counted on a GPU held class ids outside ``[0, num_classes)``.
        """
        self._check_counted_values()
        cm = self.confusion.cpu()  # one read of the device per compute(), whatever the number of batches
        iou = iou_from_confusion(cm)
        dice = dice_from_confusion(cm)
        if self.num_classes == 2:
            iou_value, dice_value = iou[1], dice[1]
        else:
            iou_value, dice_value = iou.nanmean(), dice.nanmean()
        return {
            "iou": float(iou_value),
            "dice": float(dice_value),
            "pixel_accuracy": float(pixel_accuracy(cm)),
            "per_class_iou": iou.tolist(),
            "per_class_dice": dice.tolist(),
        }

    def report(self) -> list[dict[str, Any]]:
        """One row per class, ready for ``pandas.DataFrame(metrics.report())``.

        Returns:
            Rows with keys name, iou, dice, precision, recall, f1, accuracy (floats, NaN where
            undefined) and support (int: pixels of that class in the target).
        """
        self._check_counted_values()
        cm = self.confusion.cpu()
        iou = iou_from_confusion(cm).tolist()
        dice = dice_from_confusion(cm).tolist()
        prf = {key: value.tolist() for key, value in precision_recall_f1(cm).items()}
        accuracy = per_class_accuracy(cm).tolist()
        support = cm.sum(dim=1).tolist()
        return [
            {
                "name": self.class_names[c],
                "iou": iou[c],
                "dice": dice[c],
                "precision": prf["precision"][c],
                "recall": prf["recall"][c],
                "f1": prf["f1"][c],
                "accuracy": accuracy[c],
                "support": int(support[c]),
            }
            for c in range(self.num_classes)
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.confusion.sum())})"
        )
