"""LLM generation for MultiCSR's stages 1-2: generators (local Hugging Face model, OpenAI-compatible
endpoint), a loopback server, and the cached generate / score / self-curate pipeline."""

from .generators import Generator, GeneratorConfig, LocalGenerator, Messages, OpenAIGenerator, flatten_messages
from .pipeline import GenerationConfig, JsonlCache, build_pairs, curate, parse_score, parse_sentence
from .server import OpenAIServer

__all__ = [
    "Generator",
    "GeneratorConfig",
    "LocalGenerator",
    "OpenAIGenerator",
    "Messages",
    "flatten_messages",
    "GenerationConfig",
    "JsonlCache",
    "build_pairs",
    "curate",
    "parse_score",
    "parse_sentence",
    "OpenAIServer",
]
