-- YAML pipelines (PipelineService). A pipeline runs in a coordinator: a job of kind 'pipeline' (so it
-- has a lease, attempts and the reconciler like any job: a lost coordinator is re-queued and resumes at
-- the first step these rows do not record as SUCCEEDED). Each step's outputs are written as soon as they
-- exist (an optimize step records its study before waiting on it), so a resumed step re-attaches to
-- what the lost attempt started instead of starting it again.

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('training', 'trial', 'batch_prediction', 'evaluation', 'study', 'pipeline'));

CREATE TABLE pipelines (
    id               text PRIMARY KEY,                  -- "pipe-" + hex
    display_name     text NOT NULL,
    yaml             text NOT NULL,                     -- as submitted
    source_name      text NOT NULL,                     -- the file name quoted in messages
    spec             jsonb NOT NULL,                    -- the parsed PipelineSpec (uploads attached)
    state            text NOT NULL DEFAULT 'PENDING'
                     CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    error            text,
    labels           jsonb NOT NULL DEFAULT '{}',
    request_id       text UNIQUE,
    job_id           text NOT NULL,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    CONSTRAINT pipelines_ended_iff_terminal
        CHECK ((state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')) = (ended_at IS NOT NULL))
);
CREATE INDEX pipelines_created_idx ON pipelines (created_at DESC, id DESC);

CREATE TABLE pipeline_steps (
    pipeline_id  text NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    step_index   integer NOT NULL CHECK (step_index >= 0),
    kind         text NOT NULL
                 CHECK (kind IN ('dataset', 'prepare', 'select', 'optimize', 'evaluate', 'deploy')),
    line         integer NOT NULL DEFAULT 0,            -- the step's line in the YAML
    state        text NOT NULL DEFAULT 'PENDING'
                 CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    error        text,
    outputs      jsonb NOT NULL DEFAULT '{}',           -- resource names and values it produced
    metrics      jsonb NOT NULL DEFAULT '{}',
    message      text NOT NULL DEFAULT '',
    attempts     integer NOT NULL DEFAULT 0,            -- how many coordinator attempts started it
    started_at   timestamptz,
    ended_at     timestamptz,
    PRIMARY KEY (pipeline_id, step_index)
);
