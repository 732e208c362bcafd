"""A tiny, learnable segmentation problem for engine and fault tests (fast on a CPU)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class Squares(Dataset):
    """16x16 noisy images; the mask is the bright 7x7 square (learnable in a few steps)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            y, x = torch.randint(0, 9, (2,), generator=g).tolist()
            mask = torch.zeros(16, 16, dtype=torch.long)
            mask[y : y + 7, x : x + 7] = 1
            image = (2 * mask.float() - 1).expand(3, 16, 16) + 0.3 * torch.randn(3, 16, 16, generator=g)
            self.items.append({"image": image, "mask": mask})
        self.transform = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]
