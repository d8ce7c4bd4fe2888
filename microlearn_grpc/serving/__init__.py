"""Online serving inside a server process: input decoding (`inputs`), verified warm models
(`models`), routing kept in step with PostgreSQL (`router`) and sampled prediction logging
(`prediction_log`). The use cases that drive them are in `services/deploy.py`."""
