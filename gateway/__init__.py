"""MicroLearn's REST gateway: HTTP+JSON (FastAPI) in front of the gRPC services.

`gateway.app.create_app(channel_factory)` builds the app; `gateway.app.run_gateway(...)` serves
it with uvicorn (`python -m gateway`). Importing this package imports nothing heavy.
"""
