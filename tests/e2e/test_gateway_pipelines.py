"""The REST gateway's pipeline routes, in-process over a real gRPC server: RunPipeline as JSON (invalid YAML is
a 400 naming the line and field), listing, reading, cancelling and 404s."""

from __future__ import annotations

import pytest

from tests.e2e.test_gateway import assert_error, gateway, upload

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CSV = b"x1,x2,label\n" + b"".join(f"{i % 7},{i % 3},{'yes' if i % 2 else 'no'}\n".encode() for i in range(60))


async def test_pipelines_over_rest(platform, unique_name):
    async with gateway(platform.address) as client:
        dataset = (await upload(client, unique_name, CSV)).json()["dataset"]
        text = (f"steps:\n  - dataset: {{name: {dataset['name']}}}\n  - select: {{target: label}}\n"
                f"  - optimize: {{time_budget: 5, candidates: [logistic_regression]}}\n")
        checked = await client.post("/v1/pipelines", json={"yaml": text, "validate_only": True})
        assert checked.status_code == 200, checked.text
        assert [s["line"] for s in checked.json()["pipeline"]["steps"]] == [2, 3, 4]
        bad = await client.post("/v1/pipelines", json={"yaml": text.replace("time_budget: 5", "time_budget: soon"),
                                                        "source_name": "p.yaml"})
        assert_error(bad, 400, "INVALID_ARGUMENT",
                     'p.yaml line 4, steps[2].optimize.time_budget: must be a positive number, got "soon"')
        started = await client.post("/v1/pipelines", json={"yaml": text.replace("time_budget: 5",
                                                                                "time_budget: 300")})
        assert started.status_code == 200, started.text
        name = started.json()["pipeline"]["name"]
        assert (await client.get(f"/v1/{name}")).json()["pipeline"]["state"] in (
            "PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING")
        assert name in [p["name"] for p in (await client.get("/v1/pipelines")).json()["pipelines"]]
        cancelled = await client.post(f"/v1/{name}/cancel", json={"reason": "test over"})
        assert cancelled.status_code == 200, cancelled.text
        assert_error(await client.get("/v1/pipelines/pipe-nope"), 404, "NOT_FOUND", "pipe-nope")
