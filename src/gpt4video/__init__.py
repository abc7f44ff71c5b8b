"""gpt4video: an implementation of GPT4Video (arXiv 2311.16511).

Nothing here loads a model at import time; import the pieces you need.
"""

__version__ = "0.1.0"
