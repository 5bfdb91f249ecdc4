"""The tiny world: a synthetic collection of images, clips and PDFs whose answers are known.

The reference model trained on it is located by `model.hub` (every command may suggest it).
"""

from model.hub import IN_REPOSITORY, REFERENCE_MODEL, REFERENCE_MODEL_ENV

__all__ = ["IN_REPOSITORY", "REFERENCE_MODEL", "REFERENCE_MODEL_ENV"]
