"""The language models behind the `Model` port: a simulated one and any OpenAI-compatible server."""
