"""The framework-free core: what an answer is, how it is coalesced, bounded and relayed, and the
ports it needs (a model, a publisher, a registry of running streams). No FastAPI, no httpx, no
Centrifugo here: the edges in `backend.llm`, `backend.centrifugo` and `backend.api` depend on
this package, never the reverse."""
