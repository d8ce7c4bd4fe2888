"""Preloaded by the worker's forkserver (see `workers.training.fit_context`): importing it runs one tiny
fit, so that every fit process forked afterwards starts with the fit's imports and first-call set-up
done. It is imported only there, never by the worker itself."""

import gc
import logging

from microlearn_grpc.core.training import warm_up

try:
    warm_up()
except Exception:  # noqa: BLE001 - the forkserver must start anyway: fits are then merely colder
    logging.getLogger(__name__).warning("the fit processes' warm-up fit failed", exc_info=True)
# What the forkserver holds now is shared by every fork: keep the collector from walking (and so
# copying page by page) those objects in each fit process.
gc.freeze()
