-- Datasets: named, versioned, immutable tables stored as content-addressed Parquet.

CREATE TABLE dataset_names (
    display_name text PRIMARY KEY,
    last_version integer NOT NULL          -- monotonic: a deleted version number is never reused
);

CREATE TABLE datasets (
    id                text PRIMARY KEY,
    display_name      text NOT NULL REFERENCES dataset_names (display_name),
    version           integer NOT NULL,
    source_format     text NOT NULL,
    source_size_bytes bigint NOT NULL,
    source_sha256     text NOT NULL,
    artifact_key      text NOT NULL,      -- shared by versions whose Parquet bytes are identical
    size_bytes        bigint NOT NULL,
    sha256            text NOT NULL,
    row_count         bigint NOT NULL,
    column_count      integer NOT NULL,
    profile           jsonb NOT NULL,
    column_hints      jsonb NOT NULL DEFAULT '{}',
    parent_id         text,               -- lineage; kept as text so a forced parent delete leaves it dangling, not cascading
    recipe            text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',
    labels            jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (display_name, version)
);
CREATE INDEX datasets_created_idx ON datasets (created_at DESC, id DESC);
CREATE INDEX datasets_artifact_idx ON datasets (artifact_key);

-- Who uses a dataset (derived datasets now; jobs, models, deployments later). DeleteDataset
-- refuses while rows point at the dataset unless forced.
CREATE TABLE dataset_references (
    dataset_id text NOT NULL,
    referrer   text NOT NULL,             -- resource name, e.g. datasets/ds-…, jobs/…
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, referrer)
);
CREATE INDEX dataset_references_referrer_idx ON dataset_references (referrer);
