"""Checkpoint converters from timm / Microsoft / RoPE-ViT layouts to mmpe backbones."""
