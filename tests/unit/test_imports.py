"""Start-up stays light: a server process does not import pandas or scikit-learn until a request
needs them (each adds tens of MB of resident memory to every process)."""

from __future__ import annotations

import subprocess
import sys


def test_server_modules_do_not_import_pandas_or_sklearn():
    code = ("import sys, microlearn_grpc.server, microlearn_grpc.bootstrap, microlearn_grpc.launcher, "
            "microlearn_grpc.services.dataset_servicer, microlearn_grpc.services.selector_servicer, workers.settings; "
            "heavy = sorted(m for m in ('pandas', 'sklearn', 'torch', 'xgboost', 'lightgbm') if m in sys.modules); "
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at start-up: {result.stdout.strip()}"
