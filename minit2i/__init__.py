"""minit2i: text-to-image generation from scratch, the package under the book.

Each module is one chapter's concept; see the book for the explanations.
"""

__version__ = "0.1.0"

from .config import autocast, get_device, preset_name, seed_everything  # noqa: E402,F401
from .generation import generate  # noqa: E402,F401
