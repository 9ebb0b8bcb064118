"""omnitrail's one HTTP service: CloudEvents ingest for channel producers and the read API for analysts and the CLI.

``app.create_app`` builds the FastAPI application; ``server.HttpServer`` runs it with uvicorn in a thread (inside
the worker, which owns an embedded store) or in the foreground (``omnitrail serve``). The OpenAPI document is
checked in beside this package (``openapi.json``; ``omnitrail openapi`` writes it, a test checks it is current).
"""
