-- Serving: the model registry (registered models, numbered versions, aliases with their history),
-- deployments with their traffic targets, and the sampled prediction log with feedback.
--
-- Numbered 0005: 0004 is the studies migration. The runner applies whatever is missing in number
-- order, so a database that got 0005 first still gets 0004 later.
--
-- Serving processes cache what they serve; `serving_generation` is bumped by triggers whenever
-- anything that changes routing changes (aliases, deployments, their targets), so each process
-- polls one row to know when to reload. No code path can forget to bump it.

CREATE TABLE registered_models (
    name           text PRIMARY KEY,
    description    text NOT NULL DEFAULT '',
    task           text NOT NULL CHECK (task IN ('binary', 'multiclass', 'regression', 'clustering')),
    latest_version integer NOT NULL DEFAULT 0,      -- numbers are never reused after a delete
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
    registered_model text NOT NULL REFERENCES registered_models (name) ON DELETE CASCADE,
    version          integer NOT NULL CHECK (version >= 1),
    name             text GENERATED ALWAYS AS
                         ('registeredModels/' || registered_model || '/versions/' || version::text) STORED,
    model_id         text NOT NULL REFERENCES models (id),   -- a registered model cannot be deleted
    description      text NOT NULL DEFAULT '',
    labels           jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (registered_model, version),
    UNIQUE (registered_model, model_id)
);
CREATE INDEX model_versions_model_idx ON model_versions (model_id);

CREATE TABLE model_aliases (
    registered_model text NOT NULL,
    alias            text NOT NULL,
    version          integer NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (registered_model, alias),
    -- RESTRICT: a version an alias points at cannot be deleted.
    FOREIGN KEY (registered_model, version) REFERENCES model_versions (registered_model, version)
);

-- Earlier targets of an alias; RollbackAlias pops the newest. Entries of a deleted version go with it.
CREATE TABLE model_alias_history (
    id               bigserial PRIMARY KEY,
    registered_model text NOT NULL,
    alias            text NOT NULL,
    version          integer NOT NULL,
    set_at           timestamptz NOT NULL,
    unset_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (registered_model, alias) REFERENCES model_aliases (registered_model, alias) ON DELETE CASCADE,
    FOREIGN KEY (registered_model, version) REFERENCES model_versions (registered_model, version) ON DELETE CASCADE
);
CREATE INDEX model_alias_history_idx ON model_alias_history (registered_model, alias, id DESC);

CREATE TABLE deployments (
    name                    text PRIMARY KEY,
    description             text NOT NULL DEFAULT '',
    replicas                integer NOT NULL DEFAULT 0 CHECK (replicas >= 0),
    prediction_log_fraction double precision NOT NULL DEFAULT 1
                                CHECK (prediction_log_fraction BETWEEN 0 AND 1),
    labels                  jsonb NOT NULL DEFAULT '{}',
    task                    text NOT NULL,
    state                   text NOT NULL DEFAULT 'CREATING'
                                CHECK (state IN ('CREATING', 'READY', 'UPDATING', 'FAILED')),
    state_message           text NOT NULL DEFAULT '',
    etag                    text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- One row per traffic target: a pinned version, or an alias that is followed when it moves.
-- The foreign keys (MATCH SIMPLE: a NULL column skips the check) refuse deleting a version a
-- deployment pins or an alias a deployment follows.
CREATE TABLE deployment_targets (
    deployment       text NOT NULL REFERENCES deployments (name) ON DELETE CASCADE,
    position         integer NOT NULL,
    registered_model text NOT NULL REFERENCES registered_models (name),
    version          integer,
    alias            text,
    percent          integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
    PRIMARY KEY (deployment, position),
    CHECK ((version IS NULL) <> (alias IS NULL)),
    FOREIGN KEY (registered_model, version) REFERENCES model_versions (registered_model, version),
    FOREIGN KEY (registered_model, alias) REFERENCES model_aliases (registered_model, alias)
);

CREATE TABLE serving_generation (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint NOT NULL
);
INSERT INTO serving_generation (id, generation) VALUES (true, 1);

CREATE FUNCTION bump_serving_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE serving_generation SET generation = generation + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER model_aliases_bump AFTER INSERT OR UPDATE OR DELETE ON model_aliases
    FOR EACH STATEMENT EXECUTE FUNCTION bump_serving_generation();
CREATE TRIGGER deployment_targets_bump AFTER INSERT OR UPDATE OR DELETE ON deployment_targets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_serving_generation();
-- State changes (written by the serving processes themselves) do not bump: that would loop.
CREATE TRIGGER deployments_bump AFTER INSERT OR DELETE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION bump_serving_generation();
CREATE TRIGGER deployments_settings_bump AFTER UPDATE OF prediction_log_fraction ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION bump_serving_generation();

-- Sampled predictions (inputs, outputs, version), kept after their deployment is deleted.
CREATE TABLE prediction_log (
    deployment    text NOT NULL,
    request_id    text NOT NULL,
    model_version text NOT NULL,
    model_id      text NOT NULL,
    row_count     integer NOT NULL,
    inputs        jsonb NOT NULL,        -- {column: [values]}
    outputs       jsonb NOT NULL,        -- {"predictions": [...], "probabilities": {label: [...]}}
    latency_ms    double precision NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, request_id)
);
CREATE INDEX prediction_log_created_idx ON prediction_log (deployment, created_at DESC);

CREATE TABLE prediction_feedback (
    deployment   text NOT NULL,
    request_id   text NOT NULL,
    row_index    integer NOT NULL CHECK (row_index >= 0),
    actual_value double precision,
    actual_label text,
    observed_at  timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, request_id, row_index),
    FOREIGN KEY (deployment, request_id) REFERENCES prediction_log (deployment, request_id) ON DELETE CASCADE
);
