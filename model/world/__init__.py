"""The tiny world: a synthetic collection of images, clips and PDFs whose answers are known."""

from pathlib import Path

# The reference model trained on this world, shipped in the repository (see its README.md).
REFERENCE_MODEL = Path(__file__).resolve().parents[2] / "models" / "ume-r1-tiny-world"
