"""The Azure ML scoring contract: a bundle's score.py (init/run), its inference-schema decorators,
the swagger document and the POST /score route."""
