-- Jobs: long-running work (training, trials, batch predictions, evaluations). The row is the truth;
-- the arq queue only carries its id. Workers hold a lease (heartbeat_at); the reconciler re-enqueues
-- or fails jobs whose lease expired, so every job ends SUCCEEDED, FAILED or CANCELLED.

CREATE TABLE jobs (
    id               text PRIMARY KEY,                  -- "job-" + hex; also the arq _job_id
    kind             text NOT NULL CHECK (kind IN ('training', 'trial', 'batch_prediction', 'evaluation')),
    state            text NOT NULL DEFAULT 'PENDING'
                     CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    spec             jsonb NOT NULL,                    -- the resolved request the worker runs
    dataset_id       text,                              -- text, not a foreign key: a forced dataset delete leaves history
    estimator        text,
    study_id         text,
    labels           jsonb NOT NULL DEFAULT '{}',
    request_id       text UNIQUE,                       -- idempotent submit; NULLs do not collide
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    worker_id        text,                              -- the lease holder while RUNNING
    device           text,
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    error            text,
    cancel_requested boolean NOT NULL DEFAULT false,
    metrics          jsonb NOT NULL DEFAULT '{}',
    outputs          jsonb NOT NULL DEFAULT '[]',
    mlflow_run_id    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,                       -- latest attempt
    ended_at         timestamptz,
    heartbeat_at     timestamptz,
    state_changed_at timestamptz NOT NULL DEFAULT now(), -- a requeued job is PENDING since the requeue, not since created_at
    -- Invariants the repository relies on; a bug elsewhere fails loudly instead of leaving a half-state.
    CONSTRAINT jobs_ended_iff_terminal CHECK ((state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')) = (ended_at IS NOT NULL)),
    CONSTRAINT jobs_running_has_lease CHECK (state <> 'RUNNING' OR (worker_id IS NOT NULL AND heartbeat_at IS NOT NULL)),
    CONSTRAINT jobs_failed_has_reason CHECK (state <> 'FAILED' OR error IS NOT NULL)
);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_state_idx ON jobs (state, created_at DESC, id DESC);
CREATE INDEX jobs_dataset_idx ON jobs (dataset_id, created_at DESC, id DESC) WHERE dataset_id IS NOT NULL;
CREATE INDEX jobs_estimator_idx ON jobs (estimator, created_at DESC, id DESC) WHERE estimator IS NOT NULL;
CREATE INDEX jobs_study_idx ON jobs (study_id, created_at DESC, id DESC) WHERE study_id IS NOT NULL;
-- What the reconciler scans: running leases by age, and pending jobs Redis may have lost.
CREATE INDEX jobs_lease_idx ON jobs (heartbeat_at) WHERE state = 'RUNNING';
CREATE INDEX jobs_pending_idx ON jobs (state_changed_at) WHERE state = 'PENDING';
