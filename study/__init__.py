"""LR-Net Study Kit: spec-driven MK-block networks, ablation studies, measurement and reports."""

__version__ = "0.1.0"
