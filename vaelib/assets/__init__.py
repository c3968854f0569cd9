"""Files shipped with vaelib: the demo corpus and the bundled tiny VAE."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def demo_dir() -> Path:
    """Folder of the bundled demo corpus (``train/``, ``eval/``, ``manifest.csv``)."""
    return ASSETS / "demo"


def bundled_model_dir() -> Path:
    """Folder of the bundled tiny VAE, in the Hugging Face layout (``vae/config.json`` + safetensors)."""
    return ASSETS / "tiny_vae"
