"""DINO (mmdet 3.3) that ``torch.compile`` traces whole through its backbone, neck, encoder and decoder.

Registered by ``import mmpe`` (with mmcv's compiled ops), like the backbones.
"""
import itertools
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.models.dense_heads import DINOHead
from mmdet.models.detectors import DINO
from mmdet.models.layers import CdnQueryGenerator, DeformableDetrTransformerEncoder
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor

from .deform_attn import use_deformable_attention_op


def cell_centres(h: int, w: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """(y, x), each (h, w) float32: the centres 0.5, ..., h - 0.5 (rows) and 0.5, ..., w - 0.5 (columns) of
    an h x w map; mmdet's ``meshgrid`` of ``torch.linspace(0.5, size - 0.5, size)``, the same values, from
    ``arange``, which ``torch.compile`` keeps dynamic in the size (linspace specialises on its number of
    steps: a new graph for every feature-map size)."""
    return torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device) + 0.5,
                          torch.arange(w, dtype=torch.float32, device=device) + 0.5, indexing='ij')


class EagerDetDataPreprocessor(DetDataPreprocessor):
    """mmdet's data preprocessor, run eagerly under ``torch.compile``. It pads a list of images of
    different sizes into one batch, computing the padded size with numpy (``_get_pad_shape``): traced,
    it compiles a new graph for every new batch size (guards on the sizes). Its tensor work is a
    normalisation and a copy."""

    @torch.compiler.disable
    def forward(self, data: dict, training: bool = False) -> dict:
        return super().forward(data, training)


class PEDeformableDetrTransformerEncoder(DeformableDetrTransformerEncoder):
    """mmdet's deformable DETR encoder whose reference points compile with dynamic feature-map sizes."""

    @staticmethod
    def get_encoder_reference_points(spatial_shapes, valid_ratios: Tensor, device) -> Tensor:
        """mmdet's reference points (the same values) from ``cell_centres``. spatial_shapes: L (H_l, W_l);
        valid_ratios (B, L, 2). Returns (B, sum_l H_l W_l, L, 2): normalised (x, y) of each cell centre."""
        points = []
        for lvl, (h, w) in enumerate(spatial_shapes):
            ref_y, ref_x = cell_centres(h, w, device)
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            points.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


class EagerCdnQueryGenerator(CdnQueryGenerator):
    """mmdet's denoising-query generator, run eagerly under ``torch.compile``. Its shapes follow the
    batch's ground-truth box counts, which mmdet's code reads back from tensors (``nonzero``, ``.item()``):
    traced, it breaks the graph 7 times and compiles again for new counts. Its outputs enter the
    decoder's graph as inputs (with dynamic shapes)."""

    @torch.compiler.disable
    def __call__(self, batch_data_samples: OptSampleList) -> tuple:
        return super().__call__(batch_data_samples)


class EagerLossDINOHead(DINOHead):
    """mmdet's DINO head whose loss runs eagerly under ``torch.compile``: Hungarian matching (scipy),
    targets and losses of data-dependent shapes (traced: about 25 graph breaks per training step, and
    new graphs as box counts change). Its forward, the class and box branches, compiles."""

    @torch.compiler.disable
    def loss_by_feat(self, *args, **kwargs) -> dict:
        return super().loss_by_feat(*args, **kwargs)


@MODELS.register_module()
class PEDINO(DINO):
    """mmdet's ``DINO`` with changes that remove every graph break from its encoder and decoder and
    keep the number of graphs bounded over changing image sizes (and change nothing in its results:
    the state dict, initialisation and outputs are DINO's):

    - its deformable attention modules are ``PEMultiScaleDeformableAttention`` (the
      ``mmpe::ms_deform_attn`` operator instead of mmcv's extension, which dynamo cannot trace);
    - ``spatial_shapes``, the levels' (H_l, W_l), are Python ints (mmdet: a tensor, read back with
      ``.item()`` in every layer, made by ``torch._shape_as_tensor(feat).to(device)``, which dynamo
      cannot trace either);
    - the encoder's reference points and the proposals' grid are ``cell_centres`` (an ``arange``;
      mmdet's ``linspace`` made every feature-map size a new graph), and the data preprocessor runs
      eagerly (``EagerDetDataPreprocessor``).

    The parts of training that depend on the ground truth run eagerly (``torch.compiler.disable``):
    the denoising queries (``EagerCdnQueryGenerator``) and the loss (``EagerLossDINOHead``: Hungarian
    matching in scipy, targets and losses of data-dependent shapes). Traced, they broke the graph about
    30 times per training forward and compiled new graphs as box counts changed; now the graph breaks
    only at the calls of these two (5 breaks, 6 graphs: dynamo splits each frame enclosing a call).
    Prediction, post-processing included, is one graph.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the same modules, with the methods that depend on the ground truth or on Python-side
        # image sizes run eagerly
        self.dn_query_generator.__class__ = EagerCdnQueryGenerator
        if type(self.bbox_head) is DINOHead:
            self.bbox_head.__class__ = EagerLossDINOHead
        if type(self.data_preprocessor) is DetDataPreprocessor:
            self.data_preprocessor.__class__ = EagerDetDataPreprocessor

    def _init_layers(self) -> None:
        super()._init_layers()
        if type(self.encoder) is DeformableDetrTransformerEncoder:
            self.encoder.__class__ = PEDeformableDetrTransformerEncoder
        use_deformable_attention_op(self)

    def pre_transformer(self, mlvl_feats: Tuple[Tensor],
                        batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """mmdet's ``DeformableDETR.pre_transformer`` with ``spatial_shapes`` a tuple of (H_l, W_l)
        ints. mlvl_feats: L maps (B, C, H_l, W_l). Returns the encoder's inputs (``feat``,
        ``feat_pos`` (B, N_v, C), ``feat_mask`` (B, N_v) or None when no image is padded,
        ``spatial_shapes``, ``level_start_index`` (L,), ``valid_ratios`` (B, L, 2)) and the
        decoder's (``memory_mask``, ``spatial_shapes``, ``level_start_index``, ``valid_ratios``)."""
        batch_size = mlvl_feats[0].size(0)
        input_h, input_w = batch_data_samples[0].batch_input_shape
        img_shapes = [sample.img_shape for sample in batch_data_samples]
        if all(h == input_h and w == input_w for h, w in img_shapes):
            masks = [None] * len(mlvl_feats)
            pos_embeds = [self.positional_encoding(None, input=feat) for feat in mlvl_feats]
        else:  # padding masks, non-zero where ignored (DETR's convention)
            image_masks = mlvl_feats[0].new_ones((batch_size, input_h, input_w))
            for img_id, (h, w) in enumerate(img_shapes):
                image_masks[img_id, :h, :w] = 0
            masks = [F.interpolate(image_masks[None], size=feat.shape[-2:]).to(torch.bool).squeeze(0)
                     for feat in mlvl_feats]
            pos_embeds = [self.positional_encoding(mask) for mask in masks]

        spatial_shapes = tuple((feat.shape[2], feat.shape[3]) for feat in mlvl_feats)
        feat_flatten = torch.cat([feat.flatten(2).transpose(1, 2) for feat in mlvl_feats], 1)
        lvl_pos_embed_flatten = torch.cat([pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                                           for lvl, pos in enumerate(pos_embeds)], 1)
        mask_flatten = None if masks[0] is None else torch.cat([mask.flatten(1) for mask in masks], 1)
        starts = itertools.accumulate((h * w for h, w in spatial_shapes[:-1]), initial=0)
        level_start_index = torch.tensor(list(starts), device=feat_flatten.device)
        if masks[0] is None:
            valid_ratios = mlvl_feats[0].new_ones(batch_size, len(mlvl_feats), 2)
        else:
            valid_ratios = torch.stack([self.get_valid_ratio(mask) for mask in masks], 1)
        levels = dict(spatial_shapes=spatial_shapes, level_start_index=level_start_index, valid_ratios=valid_ratios)
        encoder_inputs_dict = dict(feat=feat_flatten, feat_mask=mask_flatten, feat_pos=lvl_pos_embed_flatten, **levels)
        decoder_inputs_dict = dict(memory_mask=mask_flatten, **levels)
        return encoder_inputs_dict, decoder_inputs_dict

    def gen_encoder_output_proposals(self, memory: Tensor, memory_mask: Optional[Tensor],
                                     spatial_shapes) -> Tuple[Tensor, Tensor]:
        """mmdet's ``DeformableDETR.gen_encoder_output_proposals`` (the same values) with the grid from
        ``cell_centres``. memory (B, N_v, C); memory_mask (B, N_v), True where padded, or None;
        spatial_shapes: L (H_l, W_l). Returns the memory for the proposals (B, N_v, C) and the proposals
        (B, N_v, 4): inverse-sigmoid (cx, cy, w, h), inf where padded or out of (0.01, 0.99)."""
        batch_size = memory.size(0)
        proposals, start = [], 0
        for lvl, (h, w) in enumerate(spatial_shapes):
            grid_y, grid_x = cell_centres(h, w, memory.device)
            grid = torch.stack((grid_x, grid_y), -1).expand(batch_size, -1, -1, -1)  # (B, H_l, W_l, 2)
            if memory_mask is None:
                grid = grid / memory.new_tensor([w, h])
            else:  # normalised by the valid part of each image
                unpadded = ~memory_mask[:, start:start + h * w].view(batch_size, h, w)
                valid_wh = torch.stack((unpadded[:, 0, :].sum(1), unpadded[:, :, 0].sum(1)), -1)
                grid = grid / valid_wh.view(batch_size, 1, 1, 2)
            size = torch.full_like(grid, 0.05 * 2.0**lvl)
            proposals.append(torch.cat((grid, size), -1).view(batch_size, -1, 4))
            start += h * w
        proposals = torch.cat(proposals, 1)
        valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
        proposals = torch.log(proposals / (1 - proposals))
        if memory_mask is not None:
            proposals = proposals.masked_fill(memory_mask.unsqueeze(-1), float('inf'))
            memory = memory.masked_fill(memory_mask.unsqueeze(-1), 0.0)
        proposals = proposals.masked_fill(~valid, float('inf'))
        memory = self.memory_trans_norm(self.memory_trans_fc(memory.masked_fill(~valid, 0.0)))
        return memory, proposals
