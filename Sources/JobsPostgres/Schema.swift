import Postgres

/// The tables every replica shares, created and migrated at start (`PostgresMigrator` holds an
/// advisory lock, so replicas starting together apply each version once), and the
/// notification channels they talk on.
enum Schema {
    /// NOTIFY channel: the payload is the id of a job whose row changed.
    static let jobChannel = "stylist_job"
    /// NOTIFY channel: `added` when a job joins the queue, `left` when one leaves it.
    static let queueChannel = "stylist_queue"
    /// NOTIFY channel: the payload is the id of a running job asked to stop.
    static let cancelChannel = "stylist_cancel"
    /// Advisory lock held by the one replica sweeping expired jobs.
    static let sweepLockKey: Int64 = 0x5354_594C_4953_5402

    /// Version 1. A job row keeps its `JobRecord` as JSON (`record`) plus the columns queries
    /// filter on; `version` comes from one sequence, and `stylist_queue_clock` takes a new
    /// version whenever a job leaves the queue, because that moves every queued job's position.
    static let migrations: [PostgresMigration] = [
        PostgresMigration(version: 1, sql: """
        CREATE SEQUENCE stylist_change_seq;
        CREATE SEQUENCE stylist_job_seq;
        CREATE TABLE stylist_jobs (
            id text PRIMARY KEY,
            seq bigint NOT NULL,
            status text NOT NULL,
            record text NOT NULL,
            version bigint NOT NULL,
            idempotency_key text UNIQUE,
            lease_owner text,
            lease_expires timestamptz,
            cancel_requested boolean NOT NULL DEFAULT false,
            expires_at timestamptz
        );
        CREATE INDEX stylist_jobs_queued ON stylist_jobs (seq) WHERE status = 'queued';
        CREATE INDEX stylist_jobs_running ON stylist_jobs (lease_expires) WHERE status = 'running';
        CREATE INDEX stylist_jobs_expiry ON stylist_jobs (expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE stylist_queue_clock (id int PRIMARY KEY, version bigint NOT NULL);
        INSERT INTO stylist_queue_clock VALUES (1, 0);
        CREATE TABLE stylist_tombstones (id text PRIMARY KEY, expired_at timestamptz NOT NULL);
        CREATE INDEX stylist_tombstones_age ON stylist_tombstones (expired_at);
        CREATE TABLE stylist_blobs (
            space text NOT NULL,
            owner_id text NOT NULL,
            name text NOT NULL,
            seq bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (space, owner_id, name, seq)
        );
        CREATE TABLE stylist_styles (
            id text PRIMARY KEY,
            created_at timestamptz NOT NULL,
            image_size bigint NOT NULL,
            record text NOT NULL
        );
        """),
    ]
}
