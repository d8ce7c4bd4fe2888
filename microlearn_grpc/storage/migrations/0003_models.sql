-- Trained models: the metadata of each stored artifact. The artifact itself lives in the artifact
-- store under `artifact_key`; `sha256` and `hmac` are checked before it is loaded or downloaded.
-- A model row is written in the same transaction that ends its job SUCCEEDED, so a job that lost
-- its lease (and will run again) never leaves a model behind.

CREATE TABLE models (
    id                 text PRIMARY KEY,                 -- "mdl-" + hex
    job_id             text,                             -- NULL for ensembles built by a study
    dataset_id         text NOT NULL,
    target             text NOT NULL DEFAULT '',
    estimator          text NOT NULL,
    task               text NOT NULL CHECK (task IN ('binary', 'multiclass', 'regression', 'clustering')),
    hyperparameters    jsonb NOT NULL DEFAULT '{}',
    metric             text NOT NULL DEFAULT '',
    metrics            jsonb NOT NULL DEFAULT '{}',
    metrics_std        jsonb NOT NULL DEFAULT '{}',
    train_metrics      jsonb NOT NULL DEFAULT '{}',
    feature_schema     jsonb NOT NULL DEFAULT '[]',
    class_labels       jsonb NOT NULL DEFAULT '[]',
    format             text NOT NULL,
    artifact_key       text NOT NULL,
    size_bytes         bigint NOT NULL CHECK (size_bytes >= 0),
    sha256             text NOT NULL,
    hmac               text NOT NULL,
    diagnostics        jsonb NOT NULL DEFAULT '{}',      -- confusion matrix, ROC/PR curves, residuals
    lineage            jsonb NOT NULL DEFAULT '{}',      -- dataset name@version, feature plan, seed, library versions
    mlflow_run_id      text,
    iterations         bigint NOT NULL DEFAULT 0,
    best_iteration     bigint NOT NULL DEFAULT 0,
    training_row_count bigint NOT NULL DEFAULT 0,
    fit_time_seconds   double precision NOT NULL DEFAULT 0,
    device             text NOT NULL DEFAULT 'cpu',
    study_id           text,
    trial_number       integer NOT NULL DEFAULT 0,
    labels             jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_created_idx ON models (created_at DESC, id DESC);
CREATE INDEX models_dataset_idx ON models (dataset_id, created_at DESC, id DESC);
CREATE INDEX models_estimator_idx ON models (estimator, created_at DESC, id DESC);
CREATE UNIQUE INDEX models_job_idx ON models (job_id) WHERE job_id IS NOT NULL;  -- one model per job, ever

-- A job holds its dataset only while it is active; a model holds it for as long as the model exists.
-- Triggers keep dataset_references in step, so no code path can forget to release one.
CREATE FUNCTION release_job_dataset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN
        DELETE FROM dataset_references WHERE referrer = 'jobs/' || NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_release_dataset AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION release_job_dataset();

CREATE FUNCTION hold_model_dataset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dataset_references (dataset_id, referrer) VALUES (NEW.dataset_id, 'models/' || NEW.id)
            ON CONFLICT DO NOTHING;
        RETURN NEW;
    END IF;
    DELETE FROM dataset_references WHERE referrer = 'models/' || OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER models_hold_dataset AFTER INSERT OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION hold_model_dataset();
