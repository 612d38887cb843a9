"""ViTDet's simple feature pyramid: multi-scale maps from the single map of a plain ViT."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from .registry import register_model

SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


@register_model
class PESimpleFPN(BaseModule):
    """Simple feature pyramid (ViTDet, Li et al. 2022) on one backbone map, e.g. for DINO.

    Each scale factor resamples the input map (B, C, h, w): 4.0 by two stride-2 transposed
    convs (C -> C/2 -> C/4, norm and GELU between), 2.0 by one (C -> C/2), 1.0 as is,
    0.5 by 2x2 max pooling; then a 1x1 lateral and a 3x3 output ConvModule (with norm, no
    activation) give ``out_channels``. Outputs beyond the scale factors halve the previous
    output by stride-2 sub-sampling (ViTDet's last-level max pool). Spatial sizes are
    ceil(h * scale) for downsampling, so a stride-16 map of ceil(H/16) gives ceil(H/32), ...

    Args:
        in_channels: C of the backbone map.
        out_channels: channels of every output level.
        scale_factors: one level per factor, from largest map to smallest, each in
            (4.0, 2.0, 1.0, 0.5). Default (2.0, 1.0, 0.5): strides 8, 16, 32 from stride 16.
        num_outs: total outputs (>= len(scale_factors)); 4 gives strides 8-64 (DINO-4scale),
            5 adds 128.
        norm_cfg: mmcv norm config of the ConvModules and of the 4.0 branch.
        init_cfg: mmengine init config.
    Input: a tuple holding exactly one map (B, C, h, w). Output: tuple of ``num_outs`` maps.
    """

    def __init__(self, in_channels: int, out_channels: int, *, scale_factors: Sequence[float] = (2.0, 1.0, 0.5),
                 num_outs: int = 4, norm_cfg: Optional[dict] = dict(type='GN', num_groups=32, requires_grad=True),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        bad = [s for s in scale_factors if s not in SCALE_FACTORS]
        if bad or not scale_factors:
            raise ValueError(f'PESimpleFPN scale_factors={tuple(scale_factors)}: each must be one of {SCALE_FACTORS}')
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} must be at least len(scale_factors)={len(scale_factors)}')
        self.num_outs = num_outs
        self.branches = nn.ModuleList()
        branch_channels = []
        for scale in scale_factors:
            if scale == 4.0:
                branch = nn.Sequential(
                    nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2),
                    build_norm_layer(norm_cfg, in_channels // 2)[1], nn.GELU(),
                    nn.ConvTranspose2d(in_channels // 2, in_channels // 4, 2, stride=2))
                branch_channels.append(in_channels // 4)
            elif scale == 2.0:
                branch = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
                branch_channels.append(in_channels // 2)
            elif scale == 1.0:
                branch = nn.Identity()
                branch_channels.append(in_channels)
            else:
                branch = nn.MaxPool2d(2, stride=2, ceil_mode=True)
                branch_channels.append(in_channels)
            self.branches.append(branch)
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None) for c in branch_channels)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=None)
            for _ in branch_channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != 1:
            raise ValueError(f'PESimpleFPN takes exactly one backbone map, got {len(inputs)}; '
                             f'give the backbone a single out index')
        x = inputs[0]
        outs = [fpn(lateral(branch(x)))
                for branch, lateral, fpn in zip(self.branches, self.lateral_convs, self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
