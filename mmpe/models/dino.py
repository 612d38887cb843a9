"""DINO (mmdet 3.3) that ``torch.compile`` traces whole through its backbone, neck, encoder and decoder.

Registered by ``import mmpe`` (with mmcv's compiled ops), like the backbones.
"""
import itertools
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DINOHead
from mmdet.models.detectors import DINO
from mmdet.models.layers import CdnQueryGenerator
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor

from .deform_attn import use_deformable_attention_op


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
    """mmdet's ``DINO`` with two changes that remove every graph break from its encoder and decoder
    (and change nothing in its results: the state dict, initialisation and outputs are DINO's):

    - its deformable attention modules are ``PEMultiScaleDeformableAttention`` (the
      ``mmpe::ms_deform_attn`` operator instead of mmcv's extension, which dynamo cannot trace);
    - ``spatial_shapes``, the levels' (H_l, W_l), are Python ints (mmdet: a tensor, read back with
      ``.item()`` in every layer, made by ``torch._shape_as_tensor(feat).to(device)``, which dynamo
      cannot trace either). mmdet's encoder and ``gen_encoder_output_proposals`` take them as they are.

    The parts of training that depend on the ground truth run eagerly (``torch.compiler.disable``):
    the denoising queries (``EagerCdnQueryGenerator``) and the loss (``EagerLossDINOHead``: Hungarian
    matching in scipy, targets and losses of data-dependent shapes). Traced, they broke the graph about
    30 times per training forward and compiled new graphs as box counts changed; now the graph breaks
    only at the calls of these two (5 breaks, 6 graphs: dynamo splits each frame enclosing a call).
    Prediction, post-processing included, is one graph.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the same modules, with the methods that depend on the ground truth run eagerly
        self.dn_query_generator.__class__ = EagerCdnQueryGenerator
        if type(self.bbox_head) is DINOHead:
            self.bbox_head.__class__ = EagerLossDINOHead

    def _init_layers(self) -> None:
        super()._init_layers()
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
