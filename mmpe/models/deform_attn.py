"""Multi-scale deformable attention (Deformable DETR, DINO) as a PyTorch custom operator.

mmcv's ``MultiScaleDeformableAttention`` calls its compiled CUDA kernel through an autograd
Function that dynamo cannot trace (open-mmlab/mmcv#3290), and its PyTorch fallback and its input
check read the levels' sizes back from a tensor (``.item()``): both break a compiled graph in every
encoder and decoder layer. Here the same computation is one operator, ``torch.ops.mmpe.ms_deform_attn``,
which dynamo and AOT autograd keep opaque (a fake implementation gives its output's shape), with a
backward operator of its own:

- CPU (and any device without mmcv's kernel): forward is mmcv's ``multi_scale_deformable_attn_pytorch``;
  backward is its gradient in closed form (``grid_sampler_2d_backward`` per level), recomputing the
  bilinear samples as mmcv's CUDA backward kernel does, so nothing of size (B h, C, N_q, L P) is kept
  between forward and backward.
- CUDA: mmcv's ``ms_deform_attn_forward`` / ``ms_deform_attn_backward`` kernels when mmcv was built
  with its CUDA ops (``mmcv_has_cuda_ops``), else the PyTorch path, with one warning.

Shapes: B batch, N_v = sum_l H_l W_l value tokens over L levels, h heads, C channels per head, N_q
queries, P sampling points per level and head.
"""
import functools
import logging
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttention,
    ext_module,
    multi_scale_deformable_attn_pytorch,
)
from mmengine.logging import print_log
from torch import Tensor

from .registry import register_model

# grid_sampler_2d's enums (aten/src/ATen/native/GridSampler.h): the modes multi_scale_deformable_attn_pytorch uses.
BILINEAR, ZEROS_PADDING = 0, 0


@functools.cache
def mmcv_has_cuda_ops() -> bool:
    """True when mmcv's compiled ``_ext`` was built with its CUDA kernels (MMCV_WITH_CUDA)."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() != 'not available'


@functools.cache
def _warn_no_cuda_kernels() -> None:
    print_log('mmcv was built without CUDA ops: mmpe::ms_deform_attn runs the PyTorch formula on CUDA tensors '
              '(slower, more memory). Build mmcv with CUDA ops: bash tools/setup_env.sh --cuda', 'current',
              logging.WARNING)


def pytorch_forward(value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor,
                    attention_weights: Tensor) -> Tensor:
    """``ms_deform_attn`` by mmcv's PyTorch formula (``multi_scale_deformable_attn_pytorch``), any device."""
    return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations.to(value.dtype),
                                               attention_weights.to(value.dtype))


@torch.library.custom_op('mmpe::ms_deform_attn', mutates_args=())
def ms_deform_attn(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
                   attention_weights: Tensor, im2col_step: int) -> Tensor:
    """Multi-scale deformable attention, mmcv's ``MultiScaleDeformableAttnFunction`` as an operator.

    value (B, N_v, h, C); spatial_shapes (L, 2) int64, (H_l, W_l) per level; level_start_index (L,)
    int64, where each level starts in N_v; sampling_locations (B, N_q, h, L, P, 2), (x, y) in [0, 1]
    of each level's map; attention_weights (B, N_q, h, L, P); im2col_step: images per CUDA kernel
    launch. Returns (B, N_q, h C) in value's dtype (locations and weights are cast to it, as mmcv's).
    Every device but CUDA runs ``pytorch_forward``.
    """
    return pytorch_forward(value, spatial_shapes, sampling_locations, attention_weights)


@ms_deform_attn.register_kernel('cuda')
def _ms_deform_attn_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                         im2col_step):
    if not mmcv_has_cuda_ops():
        _warn_no_cuda_kernels()
        return pytorch_forward(value, spatial_shapes, sampling_locations, attention_weights)
    return ext_module.ms_deform_attn_forward(value.contiguous(), spatial_shapes, level_start_index,
                                             sampling_locations.to(value.dtype).contiguous(),
                                             attention_weights.to(value.dtype).contiguous(), im2col_step=im2col_step)


@ms_deform_attn.register_fake
def _ms_deform_attn_fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                         im2col_step):
    batch, _, heads, channels = value.shape
    return value.new_empty(batch, sampling_locations.shape[1], heads * channels)


def pytorch_backward(grad_output: Tensor, value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor,
                     attention_weights: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The gradient of ``pytorch_forward`` in closed form, any device. Per level l, with
    V_l (B h, C, H_l, W_l), grid G_l = 2 loc_l - 1 and samples S_l = grid_sample(V_l, G_l)
    (B h, C, N_q, P): out = sum_l sum_p A_l S_l, so dA_l = sum_C dout S_l and
    (dV_l, dG_l) = grid_sampler_2d_backward(dout A_l), d loc_l = 2 dG_l."""
    value = value.contiguous()
    # under autocast the gradient may arrive in another dtype than value's (grid_sampler_2d_backward needs one)
    grad_output = grad_output.to(value.dtype)
    locations, weights = sampling_locations.to(value.dtype), attention_weights.to(value.dtype)
    batch, _, heads, channels = value.shape
    _, num_query, _, num_levels, num_points, _ = locations.shape
    shapes = spatial_shapes.tolist()
    grids = (2 * locations - 1).transpose(1, 2).flatten(0, 1)  # (B h, N_q, L, P, 2)
    weights = weights.transpose(1, 2).reshape(batch * heads, 1, num_query, num_levels, num_points)
    grad_out = grad_output.reshape(batch, num_query, heads * channels).transpose(1, 2)
    grad_out = grad_out.reshape(batch * heads, channels, num_query, 1)
    sizes = [h * w for h, w in shapes]
    grad_value = torch.empty_like(value)
    grad_grids, grad_weights = [], []
    for level, ((height, width), value_l, grad_value_l) in enumerate(
            zip(shapes, value.split(sizes, 1), grad_value.split(sizes, 1))):
        value_l = value_l.flatten(2).transpose(1, 2).reshape(batch * heads, channels, height, width)
        grid_l = grids[:, :, level].contiguous()  # (B h, N_q, P, 2)
        samples = F.grid_sample(value_l, grid_l, mode='bilinear', padding_mode='zeros', align_corners=False)
        grad_weights.append((grad_out * samples).sum(1))  # (B h, N_q, P)
        grad_map, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad_out * weights[:, :, :, level], value_l, grid_l, BILINEAR, ZEROS_PADDING, False, [True, True])
        grad_value_l.copy_(grad_map.view(batch, heads, channels, height * width).permute(0, 3, 1, 2))
        grad_grids.append(grad_grid)
    grad_locations = 2 * torch.stack(grad_grids, 2).view(batch, heads, num_query, num_levels, num_points, 2)
    grad_weights = torch.stack(grad_weights, 2).view(batch, heads, num_query, num_levels, num_points)
    return grad_value, grad_locations.transpose(1, 2).contiguous(), grad_weights.transpose(1, 2).contiguous()


@torch.library.custom_op('mmpe::ms_deform_attn_backward', mutates_args=())
def ms_deform_attn_backward(grad_output: Tensor, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                            sampling_locations: Tensor, attention_weights: Tensor,
                            im2col_step: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``ms_deform_attn`` (same arguments, plus grad_output (B, N_q, h C)) with respect
    to value, sampling_locations and attention_weights, in value's dtype. Every device but CUDA
    runs ``pytorch_backward``."""
    return pytorch_backward(grad_output, value, spatial_shapes, sampling_locations, attention_weights)


@ms_deform_attn_backward.register_kernel('cuda')
def _ms_deform_attn_backward_cuda(grad_output, value, spatial_shapes, level_start_index, sampling_locations,
                                  attention_weights, im2col_step):
    if not mmcv_has_cuda_ops():
        return pytorch_backward(grad_output, value, spatial_shapes, sampling_locations, attention_weights)
    value = value.contiguous()
    locations = sampling_locations.to(value.dtype).contiguous()
    weights = attention_weights.to(value.dtype).contiguous()
    grads = torch.zeros_like(value), torch.zeros_like(locations), torch.zeros_like(weights)
    ext_module.ms_deform_attn_backward(value, spatial_shapes, level_start_index, locations, weights,
                                       grad_output.to(value.dtype).contiguous(), *grads, im2col_step=im2col_step)
    return grads


@ms_deform_attn_backward.register_fake
def _ms_deform_attn_backward_fake(grad_output, value, spatial_shapes, level_start_index, sampling_locations,
                                  attention_weights, im2col_step):
    return (value.new_empty(value.shape), value.new_empty(sampling_locations.shape),
            value.new_empty(attention_weights.shape))


def _setup_context(ctx, inputs, output) -> None:
    *tensors, ctx.im2col_step = inputs
    ctx.save_for_backward(*tensors)


def _backward(ctx, grad_output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_locations, grad_weights = ms_deform_attn_backward(
        grad_output, value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
        ctx.im2col_step)
    return (grad_value, None, None, grad_locations.to(sampling_locations.dtype),
            grad_weights.to(attention_weights.dtype), None)


ms_deform_attn.register_autograd(_backward, setup_context=_setup_context)


@register_model
class PEMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` computed by the ``mmpe::ms_deform_attn`` operator on
    every device: a drop-in (same arguments, parameters, state-dict keys and initialisation; outputs
    equal to mmcv's) that compiles without graph breaks.

    ``spatial_shapes`` is mmcv's (L, 2) tensor or a sequence of (H_l, W_l) Python ints (what
    ``mmpe.models.dino.PEDINO`` passes): then nothing in the forward reads a size back from a tensor,
    and ``level_start_index`` may be None. ``use_deformable_attention_op`` turns the mmcv modules of
    a built model into this class.
    """

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, reference_points: Optional[Tensor] = None,
                spatial_shapes: Union[Tensor, Sequence[Tuple[int, int]], None] = None,
                level_start_index: Optional[Tensor] = None, **kwargs) -> Tensor:
        """query (N_q, B, C_e) or, with ``batch_first``, (B, N_q, C_e); value likewise with N_v
        (default: query); reference_points (B, N_q, L, 2) normalised (x, y) or (B, N_q, L, 4) boxes
        (cx, cy, w, h); key_padding_mask (B, N_v), True = padding. Returns query's shape: the dropped
        out projection plus ``identity`` (default: query without query_pos). ``key`` is unused (mmcv)."""
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
        batch, num_query, _ = query.shape
        num_value = value.shape[1]
        if torch.is_tensor(spatial_shapes):  # mmcv's check, without reading the tensor back on the host
            torch._assert_async((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum() == num_value,
                                'spatial_shapes do not add up to the number of values')
        else:
            if sum(height * width for height, width in spatial_shapes) != num_value:
                raise ValueError(f'spatial_shapes={tuple(map(tuple, spatial_shapes))} cover '
                                 f'{sum(h * w for h, w in spatial_shapes)} positions, but value has {num_value}')
            spatial_shapes = torch.tensor(spatial_shapes, dtype=torch.long, device=value.device)
        if level_start_index is None:
            level_start_index = F.pad(spatial_shapes.prod(1).cumsum(0)[:-1], (1, 0))

        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(batch, num_value, self.num_heads, -1)
        sampling_offsets = self.sampling_offsets(query).view(batch, num_query, self.num_heads, self.num_levels,
                                                             self.num_points, 2)
        attention_weights = self.attention_weights(query).view(batch, num_query, self.num_heads, -1).softmax(-1)
        attention_weights = attention_weights.view(batch, num_query, self.num_heads, self.num_levels, self.num_points)
        if reference_points.shape[-1] == 2:  # offsets in pixels of each level
            offset_normalizer = spatial_shapes.flip(-1)  # (L, 2): (W_l, H_l)
            sampling_locations = (reference_points[:, :, None, :, None, :]
                                  + sampling_offsets / offset_normalizer[None, None, None, :, None, :])
        elif reference_points.shape[-1] == 4:  # offsets relative to the reference box
            boxes = reference_points[:, :, None, :, None]
            sampling_locations = boxes[..., :2] + sampling_offsets / self.num_points * boxes[..., 2:] * 0.5
        else:
            raise ValueError(f'reference_points must end in 2 (points) or 4 (boxes), got shape '
                             f'{tuple(reference_points.shape)}')
        output = ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                                self.im2col_step)
        output = self.output_proj(output)
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output) + identity


def use_deformable_attention_op(model: torch.nn.Module) -> int:
    """Turn every mmcv ``MultiScaleDeformableAttention`` in ``model`` into a
    ``PEMultiScaleDeformableAttention`` in place (its class only: the parameters, buffers and any
    hooks stay, as ``torch.nn.utils.parametrize`` swaps classes). Returns how many were turned."""
    modules = [m for m in model.modules() if type(m) is MultiScaleDeformableAttention]
    for module in modules:
        module.__class__ = PEMultiScaleDeformableAttention
    return len(modules)
