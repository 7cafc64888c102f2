"""Ray Serve deployment of the LFDM sampler: an HTTP ingress (FastAPI: validation, encoding, auth)
and a generator deployment (the pipeline on a GPU, dynamic batching of compatible requests)."""
