"""The training query sampler: which query slots a batch trains on."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_query_slots(max_turns: int, dropped_ratio: float, generator: torch.Generator,
                       enabled: bool = True) -> Tensor:
    """Indices ``(n,)`` of the kept slots in ascending order, ``1 <= n <= max_turns``.

    One draw per batch (every scene of the batch uses the same slots): slot j is kept when its
    uniform draw exceeds ``dropped_ratio``; if none is kept, one slot chosen uniformly is. With
    ``enabled`` False every slot is kept and the generator is not touched. Returned on the
    generator's device.
    """
    device = generator.device
    if not enabled:
        return torch.arange(max_turns, device=device)
    keep = torch.rand(max_turns, generator=generator, device=device) > dropped_ratio  # (T,)
    if not keep.any():
        keep[torch.randint(max_turns, (1,), generator=generator, device=device)] = True
    return keep.nonzero().squeeze(1)  # (n,)
