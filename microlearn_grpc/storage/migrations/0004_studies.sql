-- Hyperparameter studies. A study's search runs in a coordinator: a job of kind 'study' (so it has a
-- lease, attempts and the reconciler like any job: a lost coordinator is re-queued and resumes from
-- these rows). Every trial is a job of kind 'trial'; `study_trials` maps the study's trial numbers to
-- those jobs and keeps their results for the leaderboard. Optuna's own tables (the sampler's memory,
-- shared by any host) live in the `optuna` schema, created here and filled by Optuna's RDB storage.

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('training', 'trial', 'batch_prediction', 'evaluation', 'study'));

CREATE SCHEMA IF NOT EXISTS optuna;

CREATE TABLE studies (
    id                 text PRIMARY KEY,                  -- "study-" + hex
    display_name       text NOT NULL,
    spec               jsonb NOT NULL,                    -- the resolved StudySpec
    state              text NOT NULL DEFAULT 'PENDING'
                       CHECK (state IN ('PENDING', 'RUNNING', 'STOPPING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    error              text,
    dataset_id         text NOT NULL,
    labels             jsonb NOT NULL DEFAULT '{}',
    request_id         text UNIQUE,
    coordinator_job_id text NOT NULL,
    optuna_study_name  text NOT NULL UNIQUE,
    stop_requested     boolean NOT NULL DEFAULT false,
    cancel_running     boolean NOT NULL DEFAULT false,
    stop_reason        text,
    best_model_id      text,
    ensemble_model_id  text,
    ensemble_score     double precision,
    mlflow_run_id      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    ended_at           timestamptz,
    CONSTRAINT studies_ended_iff_terminal CHECK ((state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')) = (ended_at IS NOT NULL)),
    CONSTRAINT studies_succeeded_has_model CHECK (state <> 'SUCCEEDED' OR best_model_id IS NOT NULL)
);
CREATE INDEX studies_created_idx ON studies (created_at DESC, id DESC);
CREATE INDEX studies_dataset_idx ON studies (dataset_id, created_at DESC, id DESC);

CREATE TABLE study_trials (
    study_id         text NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    number           integer NOT NULL CHECK (number >= 0),
    optuna_trial_id  bigint NOT NULL,
    job_id           text NOT NULL UNIQUE,
    estimator        text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL DEFAULT 'PENDING'
                     CHECK (state IN ('PENDING', 'RUNNING', 'COMPLETE', 'PRUNED', 'FAILED', 'CANCELLED')),
    score            double precision,
    score_std        double precision NOT NULL DEFAULT 0,
    metrics          jsonb NOT NULL DEFAULT '{}',
    fit_time_seconds double precision NOT NULL DEFAULT 0,
    predict_time_seconds double precision NOT NULL DEFAULT 0,
    iterations       bigint NOT NULL DEFAULT 0,
    last_step        bigint NOT NULL DEFAULT 0,              -- last reported iteration (pruning)
    pruned_step      bigint NOT NULL DEFAULT 0,
    error            text,
    model_id         text,
    device           text NOT NULL DEFAULT '',
    worker_id        text NOT NULL DEFAULT '',
    events_after     text NOT NULL DEFAULT '',               -- last job event the coordinator consumed
    mlflow_run_id    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    PRIMARY KEY (study_id, number)
);
