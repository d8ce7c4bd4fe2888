"""MicroLearn server side: configuration, ML core, storage adapters, services, bootstrap."""
