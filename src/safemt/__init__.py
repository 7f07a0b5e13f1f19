"""safemt: a reproducible workflow that rebuilds the SafeMT multi-turn multimodal safety benchmark."""

__version__ = "0.1.0"
